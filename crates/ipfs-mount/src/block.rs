//! Block verification: a block is accepted only when it hashes to its CID's multihash.

use cid::Cid;
use sha2::Digest as _;

use crate::address::{IDENTITY, SHA2_256, SHA2_512};
use crate::error::IpfsError;

/// An incremental hasher for a CID's multihash.
pub(crate) enum BlockHasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Identity(Vec<u8>),
}

impl BlockHasher {
    pub(crate) fn for_cid(cid: &Cid) -> Result<Self, IpfsError> {
        match cid.hash().code() {
            SHA2_256 => Ok(Self::Sha256(sha2::Sha256::new())),
            SHA2_512 => Ok(Self::Sha512(sha2::Sha512::new())),
            IDENTITY => Ok(Self::Identity(Vec::new())),
            code => Err(IpfsError::UnsupportedHash {
                cid: cid.to_string(),
                code,
            }),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
            Self::Identity(v) => v.extend_from_slice(data),
        }
    }

    /// Whether everything fed hashes to `cid`'s multihash.
    pub(crate) fn matches(self, cid: &Cid) -> bool {
        let expected = cid.hash().digest();
        match self {
            Self::Sha256(h) => h.finalize().as_slice() == expected,
            Self::Sha512(h) => h.finalize().as_slice() == expected,
            Self::Identity(v) => v == expected,
        }
    }
}

/// Checks that `data` is the block `cid` names.
pub(crate) fn verify_block(gateway: &str, cid: &Cid, data: &[u8]) -> Result<(), IpfsError> {
    let mut h = BlockHasher::for_cid(cid)?;
    h.update(data);
    if h.matches(cid) {
        Ok(())
    } else {
        Err(IpfsError::BlockMismatch {
            gateway: gateway.to_string(),
            cid: cid.to_string(),
        })
    }
}
