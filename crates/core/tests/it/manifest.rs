//! Manifest parsing: regressions found by the `manifest_successors` fuzz target (`fuzz/`).

use bytes::Bytes;
use ferry_core::model::{OCI_ARTIFACT_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use ferry_core::{Descriptor, Error, Manifest, sha256};

fn parse(media_type: &str, bytes: &'static [u8]) -> ferry_core::Result<Manifest> {
    let descriptor = Descriptor::new(media_type.into(), bytes.len() as u64, sha256(bytes));
    Manifest::parse(&descriptor, Bytes::from_static(bytes))
}

/// serde reads a struct from a JSON array, field by position: `[]` was an empty artifact
/// manifest, and an array holding a config and layers in the right places an image manifest
/// whose successors the engine would have copied. Registries refuse such documents.
#[test]
fn a_json_array_is_not_a_manifest() {
    let config = r#"{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}"#;
    let positional: &'static str =
        format!(r#"[2, "{OCI_MANIFEST}", null, {config}, [{config}]]"#).leak();
    let index_positional: &'static str =
        format!(r#"[2, "{OCI_INDEX}", null, null, null, null, [{config}]]"#).leak();
    for (media_type, bytes) in [
        (OCI_ARTIFACT_MANIFEST, "[]"),
        (OCI_ARTIFACT_MANIFEST, " \n[]"),
        (OCI_MANIFEST, positional),
        (OCI_INDEX, index_positional),
    ] {
        let err = parse(media_type, bytes.as_bytes()).unwrap_err();
        assert!(
            matches!(err, Error::InvalidManifest { .. }),
            "{media_type} `{bytes}`: {err:?}"
        );
        assert!(err.to_string().contains("JSON object"), "{err}");
    }
}

/// Objects, with or without leading whitespace, still parse.
#[test]
fn json_objects_still_parse() {
    let m = parse(OCI_ARTIFACT_MANIFEST, b"  \r\n\t{}").unwrap();
    assert!(m.successors().is_empty());
    let m = parse(OCI_INDEX, br#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
    assert!(m.successors().is_empty());
}
