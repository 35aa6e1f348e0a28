//! Archives that must not be trusted: entries with absolute paths, `..`, links, devices,
//! other names, names repeated with other content (exit 2, the entry named, nothing
//! written); a truncated archive and a blob that fails its digest (exit 5, nothing tagged);
//! from a file and from a stream.

use std::path::Path;

use crate::archives::{member, members};
use crate::support::*;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// An entry to write: its raw name, type, content and link target.
struct Raw<'a> {
    name: &'a str,
    kind: tar::EntryType,
    data: &'a [u8],
    link: Option<&'a str>,
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        kind: tar::EntryType::Regular,
        data,
        link: None,
    }
}

/// Writes the entries as they are: the names unchecked, as a hostile archive would.
fn write_raw(path: &Path, entries: &[Raw<'_>]) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    for e in entries {
        let mut header = tar::Header::new_ustar();
        let ustar = header.as_ustar_mut().unwrap();
        ustar.name[..e.name.len()].copy_from_slice(e.name.as_bytes());
        if let Some(link) = e.link {
            ustar.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(e.kind);
        header.set_size(e.data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, e.data).unwrap();
    }
    builder.into_inner().unwrap();
}

/// A good archive of one image, written by ferry from a layout; returns it and the image's
/// manifest digest.
fn good_archive(dir: &Path) -> (std::path::PathBuf, String) {
    let layout = dir.join("layout");
    let m = layout_with_image(&layout, "v1", 2);
    let archive = dir.join("good.tar");
    let run = ferry(&[
        "cp",
        &format!("oci:{}:v1", s(&layout)),
        &format!("oci-archive:{}", s(&archive)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    (archive, m.digest().to_string())
}

/// The good archive's entries, each as (name, content).
fn good_entries(archive: &Path) -> Vec<(String, Vec<u8>)> {
    members(archive)
        .into_iter()
        .map(|(name, _)| {
            let content = member(archive, &name);
            (name, content)
        })
        .collect()
}

/// Copies `archive` from a file and from stdin into fresh layouts; both must fail with
/// `code`, name `named` (when given), and leave the layout without a tag. Refused entries
/// (exit 2) of a file leave no layout at all.
fn refused(dir: &Path, archive: &Path, code: i32, named: Option<&str>) {
    let out = dir.join(format!(
        "out-{}",
        archive.file_name().unwrap().to_string_lossy()
    ));
    let run = ferry(&[
        "cp",
        &format!("oci-archive:{}", s(archive)),
        &format!("oci:{}:v1", s(&out)),
    ]);
    assert_eq!(run.code, code, "{}: {}", archive.display(), run.stderr);
    if let Some(named) = named {
        assert!(
            run.stderr.contains(named),
            "{}: {}",
            archive.display(),
            run.stderr
        );
    }
    if code == 2 {
        assert!(
            !out.exists(),
            "a file's entries are checked before anything is written"
        );
    } else if out.exists() {
        assert_eq!(tags(&out), Vec::<String>::new(), "nothing is tagged");
    }

    let streamed = dir.join(format!(
        "stream-{}",
        archive.file_name().unwrap().to_string_lossy()
    ));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["cp", "--no-cache", "oci-archive:-"])
        .arg(format!("oci:{}:v1", s(&streamed)))
        .stdin(std::fs::File::open(archive).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdin {}: {stderr}",
        archive.display()
    );
    if let Some(named) = named {
        assert!(
            stderr.contains(named),
            "stdin {}: {stderr}",
            archive.display()
        );
    }
    if streamed.exists() {
        assert_eq!(tags(&streamed), Vec::<String>::new(), "nothing is tagged");
    }
}

#[test]
fn unsafe_entries_are_refused_naming_the_entry_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (good, _) = good_archive(dir.path());
    let entries = good_entries(&good);
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    let hex = "0".repeat(64);
    let blob = format!("blobs/sha256/{hex}");
    let cases: Vec<(&str, Raw<'_>)> = vec![
        ("absolute", file("/etc/passwd", b"root")),
        ("dotdot", file("../escape", b"x")),
        ("inner-dotdot", file("blobs/sha256/../../escape", b"x")),
        ("other-name", file("notes.txt", b"hello")),
        (
            "symlink",
            Raw {
                name: &blob,
                kind: tar::EntryType::Symlink,
                data: b"",
                link: Some("/etc/passwd"),
            },
        ),
        (
            "hardlink",
            Raw {
                name: "oci-layout",
                kind: tar::EntryType::Link,
                data: b"",
                link: Some("index.json"),
            },
        ),
        (
            "device",
            Raw {
                name: "blobs/sha256/dev",
                kind: tar::EntryType::Char,
                data: b"",
                link: None,
            },
        ),
        (
            "repeated",
            file("oci-layout", br#"{"imageLayoutVersion":"1.1.0"}"#),
        ),
    ];
    for (case, bad) in cases {
        // The bad entry first, then the whole good archive: nothing may be written.
        let path = dir.path().join(format!("{case}.tar"));
        let mut all = vec![file("oci-layout", layout), bad];
        all.extend(
            entries
                .iter()
                .filter(|(n, _)| n != "oci-layout")
                .map(|(n, d)| file(n, d)),
        );
        write_raw(&path, &all);
        let named = all[1].name.to_string();
        refused(dir.path(), &path, 2, Some(&format!("`{named}`")));
    }
}

#[test]
fn truncated_archives_and_blobs_that_fail_their_digest_tag_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (good, manifest) = good_archive(dir.path());
    let bytes = std::fs::read(&good).unwrap();
    let entries = members(&good);

    // Cut inside the largest layer, and cut at a clean entry boundary before the index.
    let (layer, _) = entries
        .iter()
        .max_by_key(|(_, size)| *size)
        .unwrap()
        .clone();
    let at = find(&bytes, layer.as_bytes()) + 512 + 100;
    let inside = dir.path().join("cut-inside.tar");
    std::fs::write(&inside, &bytes[..at]).unwrap();
    refused(dir.path(), &inside, 5, None);

    let index_header = find(&bytes, b"index.json");
    let boundary = dir.path().join("cut-boundary.tar");
    std::fs::write(&boundary, &bytes[..index_header]).unwrap();
    refused(dir.path(), &boundary, 5, None);

    // A byte of a layer flipped: its digest fails.
    let mut spoiled = bytes.clone();
    spoiled[find(&bytes, layer.as_bytes()) + 512 + 600] ^= 0xff;
    let corrupt = dir.path().join("corrupt.tar");
    std::fs::write(&corrupt, &spoiled).unwrap();
    refused(
        dir.path(),
        &corrupt,
        5,
        Some(&layer["blobs/sha256/".len()..]),
    );

    // A sync of it fails the image with exit 5 and tags nothing.
    let out = dir.path().join("dir");
    let run = ferry(&[
        "sync",
        &format!("oci-archive:{}", s(&corrupt)),
        &format!("oci-dir:{}", s(&out)),
    ]);
    assert_eq!(run.code, 5, "{}\n{}", run.stdout, run.stderr);
    let layout = out.join("layout");
    if layout.exists() {
        assert_eq!(tags(&layout), Vec::<String>::new());
    }

    // The good archive still copies, digest kept.
    let fine = dir.path().join("fine");
    let run = ferry(&[
        "cp",
        &format!("oci-archive:{}", s(&good)),
        &format!("oci:{}:v1", s(&fine)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(index_json(&fine)["manifests"][0]["digest"], manifest);
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{} not found", String::from_utf8_lossy(needle)))
}
