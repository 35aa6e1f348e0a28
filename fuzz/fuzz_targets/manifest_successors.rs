//! `Manifest::parse` and `successors()` on arbitrary bytes under every manifest media type
//! ferry walks (and one it does not): no panic, the exact bytes are kept, an index has
//! `manifests`, an image manifest has a `config`, and the successors are exactly subject,
//! manifests, config and layers, no more than the input could describe.
#![no_main]

use bytes::Bytes;
use ferry_core::model::{MANIFEST_MEDIA_TYPES, OCI_ARTIFACT_MANIFEST, is_index, short_digest};
use ferry_core::{Descriptor, Digest, Manifest};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde::de::IgnoredAny;
use sha2::{Digest as _, Sha256};
use std::str::FromStr;

/// The shortest JSON a descriptor can be written in: `{"mediaType":"","digest":"a:b","size":0}`
/// is 40 bytes, so an input of `n` bytes describes fewer than `n / 32` descriptors.
const MIN_DESCRIPTOR_BYTES: usize = 32;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shape {
    media_type: Option<String>,
    config: Option<IgnoredAny>,
    manifests: Option<IgnoredAny>,
}

fuzz_target!(|data: &[u8]| {
    let hex: String = Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let digest = Digest::from_str(&format!("sha256:{hex}")).expect("digest");
    let bytes = Bytes::copy_from_slice(data);
    let media_types = MANIFEST_MEDIA_TYPES
        .iter()
        .copied()
        .chain(["application/octet-stream"]);
    for media_type in media_types {
        let descriptor = Descriptor::new(media_type.into(), data.len() as u64, digest.clone());
        let Ok(manifest) = Manifest::parse(&descriptor, bytes.clone()) else {
            continue;
        };
        assert_eq!(manifest.bytes, bytes, "the bytes must be kept as given");
        assert_eq!(manifest.descriptor, descriptor);
        // What was accepted is a JSON object of the declared kind. (Read with `IgnoredAny`,
        // which skips other fields as leniently as the parser does: invalid UTF-8 or numbers
        // out of range there are accepted, as Go's encoding/json accepts them.)
        let shape: Shape = serde_json::from_slice(data).expect("an accepted manifest is JSON");
        let declared = MANIFEST_MEDIA_TYPES.contains(&media_type);
        if declared && let Some(inner) = &shape.media_type {
            assert_eq!(inner, media_type, "mediaType differs");
        }
        if is_index(media_type) {
            assert!(shape.manifests.is_some(), "an index without `manifests`");
        } else if declared && media_type != OCI_ARTIFACT_MANIFEST {
            assert!(
                shape.config.is_some(),
                "{media_type} accepted without `config`"
            );
        }
        let successors = manifest.successors();
        let expected = manifest.subject.iter().count()
            + manifest.manifests.len()
            + manifest.config.iter().count()
            + manifest.layers.len();
        assert_eq!(successors.len(), expected);
        assert!(
            successors.len() <= data.len() / MIN_DESCRIPTOR_BYTES,
            "{} successors from {} bytes",
            successors.len(),
            data.len()
        );
        // The order the engine relies on: subject first, then manifests, config, layers.
        let mut order = manifest
            .subject
            .iter()
            .chain(&manifest.manifests)
            .chain(&manifest.config)
            .chain(&manifest.layers);
        for s in &successors {
            assert_eq!(Some(s), order.next());
            // What the engine and the report print of every node.
            let _ = short_digest(s.digest());
            let printed = s.digest().to_string();
            assert_eq!(Digest::from_str(&printed).ok().as_ref(), Some(s.digest()));
        }
    }
});
