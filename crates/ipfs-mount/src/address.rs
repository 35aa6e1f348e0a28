//! IPFS addresses of OCI blobs: `ipfs://CID` urls, raw CIDs derived from digests, CID maps.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use cid::Cid;
use ferry_core::{Descriptor, Digest, Error, Result};
use multihash::Multihash;
use oci_spec::image::DigestAlgorithm;

/// Multicodec of a raw block: the bytes are the content.
pub const RAW_CODEC: u64 = 0x55;
/// Multicodec of dag-pb, the node format of UnixFS files.
pub const DAG_PB_CODEC: u64 = 0x70;
/// Multihash code of identity (the "hash" is the content itself).
pub const IDENTITY: u64 = 0x00;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;
/// Multihash code of sha2-512.
pub const SHA2_512: u64 = 0x13;

/// Where an address of a blob came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressOrigin {
    /// An `ipfs://CID` entry of the descriptor's `urls` (the convention nerdctl uses).
    Url,
    /// A CID map given by the user (`--ipfs-cid-map`).
    CidMap,
    /// The raw-codec CIDv1 derived from the blob's digest: it names the blob when the blob is
    /// stored as a single raw block.
    Derived,
}

/// An IPFS address of a blob: a CID, and where ferry learned it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IpfsAddress {
    /// The content identifier.
    pub cid: Cid,
    /// Where the address came from.
    pub origin: AddressOrigin,
}

impl IpfsAddress {
    /// Parses an `ipfs://CID` url. Paths inside a DAG (`ipfs://CID/file`) are refused: a blob's
    /// address names the blob itself.
    pub fn parse_url(url: &str) -> Result<Self> {
        let rest = url
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("ipfs://"))
            .map(|_| &url[7..])
            .ok_or_else(|| {
                Error::invalid(
                    "IPFS address",
                    url,
                    "expected `ipfs://CID`, as nerdctl writes",
                )
            })?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (cid_text, tail) = rest.split_at(end);
        if !(tail.is_empty() || tail == "/") {
            return Err(Error::invalid(
                "IPFS address",
                url,
                "paths, queries and fragments are not supported; give the CID of the blob itself",
            ));
        }
        let cid =
            parse_cid(cid_text).map_err(|reason| Error::invalid("IPFS address", url, reason))?;
        Ok(Self {
            cid,
            origin: AddressOrigin::Url,
        })
    }

    /// The raw-codec CIDv1 address of `digest`, when its algorithm has a multihash code.
    pub fn derived(digest: &Digest) -> Option<Self> {
        cid_for_digest(digest).map(|cid| Self {
            cid,
            origin: AddressOrigin::Derived,
        })
    }

    /// The address as an `ipfs://` url.
    pub fn url(&self) -> String {
        self.to_string()
    }

    /// The address as a place a mount reports a blob came from (scheme
    /// [`StoreInfo::IPFS`](ferry_core::StoreInfo::IPFS), shown as its `ipfs://` url).
    pub fn place(&self) -> ferry_core::StoreInfo {
        ferry_core::StoreInfo::new(ferry_core::StoreInfo::IPFS, "", self.cid.to_string())
    }

    /// Whether the CID names a single raw block (else a dag-pb UnixFS file).
    pub fn is_raw(&self) -> bool {
        self.cid.codec() == RAW_CODEC
    }
}

impl fmt::Display for IpfsAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ipfs://{}", self.cid)
    }
}

fn parse_cid(text: &str) -> std::result::Result<Cid, String> {
    Cid::try_from(text).map_err(|e| format!("`{text}` is not a CID: {e}"))
}

/// The raw-codec CIDv1 (codec 0x55) with the sha2-256 multihash of `digest`: the CID of the
/// blob when IPFS holds it as a single raw block (`ipfs add --raw-leaves` of a file no larger
/// than one chunk, or `ipfs block put`).
///
/// Fails with [`Error::InvalidInput`] for a digest of another algorithm.
pub fn cid_for_sha256(digest: &Digest) -> Result<Cid> {
    if digest.algorithm() != &DigestAlgorithm::Sha256 {
        return Err(Error::invalid(
            "digest",
            digest.to_string(),
            "a raw CID is derived from a sha256 digest only",
        ));
    }
    cid_for_digest(digest).ok_or_else(|| {
        Error::invalid(
            "digest",
            digest.to_string(),
            "its hex part is not a sha256 value",
        )
    })
}

/// The raw-codec CIDv1 of `digest`, for sha256 (multihash sha2-256) and sha512 (sha2-512);
/// `None` for other algorithms.
pub fn cid_for_digest(digest: &Digest) -> Option<Cid> {
    let code = match digest.algorithm() {
        DigestAlgorithm::Sha256 => SHA2_256,
        DigestAlgorithm::Sha512 => SHA2_512,
        _ => return None,
    };
    let bytes = decode_hex(digest.digest())?;
    let multihash = Multihash::<64>::wrap(code, &bytes).ok()?;
    Some(Cid::new_v1(RAW_CODEC, multihash))
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The IPFS addresses a descriptor carries and a CID map gives, in the order to try them: its
/// `ipfs://` urls first, then the map's entry. Other urls are ignored; a malformed `ipfs://`
/// url is skipped with a warning. The derived raw CID is not included: see
/// [`IpfsAddress::derived`].
pub fn addresses_of(descriptor: &Descriptor, map: &CidMap) -> Vec<IpfsAddress> {
    let mut out: Vec<IpfsAddress> = Vec::new();
    let push = |a: IpfsAddress, out: &mut Vec<IpfsAddress>| {
        if !out.iter().any(|o| o.cid == a.cid) {
            out.push(a);
        }
    };
    for url in descriptor.urls().iter().flatten() {
        if !url
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("ipfs://"))
        {
            continue;
        }
        match IpfsAddress::parse_url(url) {
            Ok(a) => push(a, &mut out),
            Err(e) => tracing::warn!(digest = %descriptor.digest(), "skipping url: {e}"),
        }
    }
    if let Some(cid) = map.get(descriptor.digest()) {
        push(
            IpfsAddress {
                cid: *cid,
                origin: AddressOrigin::CidMap,
            },
            &mut out,
        );
    }
    out
}

/// Digest → CID, from a JSON object file such as
/// `{"sha256:9f86d0…": "bafybeigdyrzt5…"}` (`--ipfs-cid-map FILE`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidMap {
    map: HashMap<Digest, Cid>,
}

impl CidMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a map file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| Error::io(format!("reading the IPFS CID map `{}`", path.display()), e))?;
        Self::from_json(&bytes, &path.display().to_string())
    }

    /// Parses a map from JSON; `name` names its origin in error messages.
    pub fn from_json(json: &[u8], name: &str) -> Result<Self> {
        let raw: HashMap<String, String> = serde_json::from_slice(json).map_err(|e| {
            Error::invalid(
                "IPFS CID map",
                name,
                format!("expected a JSON object of digest to CID strings: {e}"),
            )
        })?;
        let mut map = HashMap::with_capacity(raw.len());
        for (digest, cid) in raw {
            let d = Digest::try_from(digest.as_str()).map_err(|e| {
                Error::invalid(
                    "IPFS CID map",
                    name,
                    format!("key `{digest}` is not a digest: {e}"),
                )
            })?;
            let text = cid.strip_prefix("ipfs://").unwrap_or(&cid);
            let c = parse_cid(text.trim_end_matches('/')).map_err(|reason| {
                Error::invalid("IPFS CID map", name, format!("entry `{digest}`: {reason}"))
            })?;
            map.insert(d, c);
        }
        Ok(Self { map })
    }

    /// Adds or replaces an entry.
    pub fn insert(&mut self, digest: Digest, cid: Cid) {
        self.map.insert(digest, cid);
    }

    /// The CID of `digest`, if the map has one.
    pub fn get(&self, digest: &Digest) -> Option<&Cid> {
        self.map.get(digest)
    }

    /// How many entries the map has.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
