//! Addresses: `ipfs://` urls, raw CIDs derived from digests, CID maps.

use ferry_core::{Digest, Error, sha256};
use ferry_ipfs_mount::{
    AddressOrigin, Cid, CidMap, IpfsAddress, RAW_CODEC, SHA2_256, addresses_of, cid_for_digest,
    cid_for_sha256,
};

use crate::support::layer;
use ferry_test_support::helia::Helia;

#[test]
fn raw_cid_of_a_sha256_digest_is_the_cidv1_raw_sha2_256() {
    // `echo hello | ipfs block put --cid-codec raw` names this block so.
    let digest = sha256(b"hello\n");
    let cid = cid_for_sha256(&digest).unwrap();
    assert_eq!(
        cid.to_string(),
        "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
    );
    assert_eq!(cid.version(), cid::Version::V1);
    assert_eq!(cid.codec(), RAW_CODEC);
    assert_eq!(cid.hash().code(), SHA2_256);
    assert_eq!(hex(cid.hash().digest()), digest.digest());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn only_sha256_digests_give_a_cid_for_sha256() {
    let sha512 = Digest::try_from(format!("sha512:{}", "ab".repeat(64))).unwrap();
    let err = cid_for_sha256(&sha512).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    // cid_for_digest also covers sha512, with the sha2-512 multihash.
    let cid = cid_for_digest(&sha512).unwrap();
    assert_eq!(cid.hash().code(), 0x13);
    assert_eq!(cid.hash().digest(), &[0xab; 64][..]);
}

#[tokio::test]
async fn derived_cid_matches_the_cid_helia_gives_a_raw_block() {
    let helia = Helia::start();
    let data = crate::support::random(10_000);
    let from_helia = helia.add_raw(&data).await;
    assert_eq!(cid_for_sha256(&sha256(&data)).unwrap(), from_helia);
    // A file of one chunk added with raw leaves is that same raw block.
    let as_file = helia.add(&data, 262_144).await;
    assert_eq!(as_file, from_helia);
}

#[test]
fn ipfs_urls_parse_and_others_are_refused() {
    let cid = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
    let a = IpfsAddress::parse_url(&format!("ipfs://{cid}")).unwrap();
    assert_eq!(a.cid.to_string(), cid);
    assert_eq!(a.origin, AddressOrigin::Url);
    assert_eq!(a.to_string(), format!("ipfs://{cid}"));
    assert!(!a.is_raw());
    assert_eq!(
        IpfsAddress::parse_url(&format!("IPFS://{cid}/"))
            .unwrap()
            .cid,
        a.cid
    );
    // CIDv0 (base58, dag-pb) as older tools write.
    let v0 =
        IpfsAddress::parse_url("ipfs://QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG").unwrap();
    assert_eq!(v0.cid.version(), cid::Version::V0);
    for bad in [
        format!("https://gw.example/ipfs/{cid}"),
        format!("ipfs://{cid}/layer.tar"),
        "ipfs://not-a-cid".to_string(),
        "ipfs://".to_string(),
    ] {
        let err = IpfsAddress::parse_url(&bad).unwrap_err();
        assert!(err.to_string().contains(&format!("`{bad}`")), "{err}");
    }
}

#[test]
fn addresses_come_from_urls_then_the_map_without_duplicates() {
    let data = b"layer";
    let url_cid: Cid = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
        .parse()
        .unwrap();
    let map_cid = cid_for_sha256(&sha256(b"other")).unwrap();
    let desc = layer(
        data,
        &[
            "https://cdn.example/layer".into(),
            format!("ipfs://{url_cid}"),
            "ipfs://broken".into(),
            format!("ipfs://{url_cid}/"),
        ],
    );
    let mut map = CidMap::new();
    assert!(addresses_of(&desc, &map).iter().all(|a| a.cid == url_cid));
    map.insert(desc.digest().clone(), map_cid);
    let found = addresses_of(&desc, &map);
    assert_eq!(
        found.iter().map(|a| (a.cid, a.origin)).collect::<Vec<_>>(),
        vec![
            (url_cid, AddressOrigin::Url),
            (map_cid, AddressOrigin::CidMap)
        ]
    );
    // No url, no map entry: nothing (the derived CID is the strategy's choice).
    assert!(addresses_of(&layer(b"x", &[]), &CidMap::new()).is_empty());
    assert_eq!(
        IpfsAddress::derived(desc.digest()).unwrap().origin,
        AddressOrigin::Derived
    );
}

#[test]
fn cid_map_loads_from_a_json_file_and_names_bad_entries() {
    let dir = tempfile::tempdir().unwrap();
    let digest = sha256(b"blob");
    let cid = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
    let path = dir.path().join("cids.json");
    std::fs::write(
        &path,
        serde_json::json!({ digest.to_string(): format!("ipfs://{cid}") }).to_string(),
    )
    .unwrap();
    let map = CidMap::load(&path).unwrap();
    assert_eq!(map.len(), 1);
    assert_eq!(map.get(&digest).unwrap().to_string(), cid);

    std::fs::write(&path, r#"{"sha256:nothex": "bafy"}"#).unwrap();
    let err = CidMap::load(&path).unwrap_err().to_string();
    assert!(err.contains("sha256:nothex"), "{err}");
    std::fs::write(&path, format!(r#"{{"{digest}": "not-a-cid"}}"#)).unwrap();
    let err = CidMap::load(&path).unwrap_err().to_string();
    assert!(err.contains("not-a-cid"), "{err}");
    std::fs::write(&path, "[1, 2]").unwrap();
    assert!(CidMap::load(&path).is_err());
    let missing = dir.path().join("missing.json");
    let err = CidMap::load(&missing).unwrap_err().to_string();
    assert!(err.contains("missing.json"), "{err}");
}
