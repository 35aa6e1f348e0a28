//! The layout's `index.json` parser and tagging on arbitrary bytes: no panic; after
//! `set_tag(descriptor, tag)` and a round trip through the bytes the layout writes, `tag`
//! resolves to that descriptor's content and every other tag still resolves as before; a
//! digest read from it names a file only inside `blobs/<algorithm>/`.
#![no_main]

use std::path::{Component, Path};
use std::str::FromStr;

use ferry_core::{Descriptor, Digest};
use ferry_fs_store::layout::{IndexJson, blob_path_in, validate_tag};
use libfuzzer_sys::fuzz_target;

const FRESH: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

fn check(index: &IndexJson, descriptor: &Descriptor, tag: &str) {
    let before = index.tags();
    let mut tagged = index.clone();
    tagged.set_tag(descriptor, tag);
    let written = tagged.to_vec();
    let reread = IndexJson::parse(&written).expect("the layout reads what it writes");

    // The tag resolves to the same content; an entry that already described it keeps its
    // other fields (platform, annotations).
    let resolved = reread.resolve_tag(tag);
    let same = resolved.as_ref().is_some_and(|r| {
        r.digest() == descriptor.digest()
            && r.size() == descriptor.size()
            && r.media_type() == descriptor.media_type()
    });
    assert!(
        same,
        "after tagging `{tag}`, it resolves to {resolved:?}, not {descriptor:?}; wrote {}",
        String::from_utf8_lossy(&written)
    );
    let after = reread.tags();
    assert_eq!(
        after.iter().filter(|(t, _)| t == tag).count(),
        1,
        "`{tag}` names more than one entry: {after:?}"
    );
    // Tags other than `tag` keep resolving to what they resolved to.
    for (other, _) in before.iter().filter(|(t, _)| t != tag) {
        assert_eq!(
            reread.resolve_tag(other),
            index.resolve_tag(other),
            "tagging `{tag}` moved `{other}`"
        );
    }
    assert!(reread.resolve_digest(descriptor.digest()).is_some());
}

fuzz_target!(|data: &[u8]| {
    let Ok(index) = IndexJson::parse(data) else {
        return;
    };
    let tags = index.tags();
    for (tag, descriptor) in &tags {
        let first = tags.iter().find(|(t, _)| t == tag).map(|(_, d)| d);
        assert_eq!(index.resolve_tag(tag).as_ref(), first);
        assert!(index.resolve_digest(descriptor.digest()).is_some());
        // A digest from index.json names a file only inside `blobs/<algorithm>/`.
        if let Ok(path) = blob_path_in(Path::new("/layout"), descriptor.digest()) {
            let rest = path.strip_prefix("/layout/blobs").expect("under blobs/");
            let parts: Vec<_> = rest.components().collect();
            assert_eq!(parts.len(), 2, "{path:?}");
            assert!(matches!(parts[0], Component::Normal(_)), "{path:?}");
            assert!(matches!(parts[1], Component::Normal(_)), "{path:?}");
            let hex = parts[1].as_os_str().to_str().expect("UTF-8");
            assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{path:?}");
        }
    }

    // Tag a descriptor the index does not list, and one it lists (retagging), under a new
    // tag and under a tag the index already has.
    let fresh = Descriptor::new(
        "application/vnd.oci.image.manifest.v1+json".into(),
        1234,
        Digest::from_str(FRESH).expect("digest"),
    );
    let mut descriptors = vec![fresh];
    descriptors.extend(tags.first().map(|(_, d)| d.clone()));
    let mut names = vec!["latest".to_string()];
    // `WriteStore::tag` refuses malformed tags before it touches the index.
    names.extend(
        tags.iter()
            .rev()
            .map(|(t, _)| t.clone())
            .find(|t| validate_tag(t).is_ok()),
    );
    for descriptor in &descriptors {
        for tag in &names {
            check(&index, descriptor, tag);
        }
    }
});
