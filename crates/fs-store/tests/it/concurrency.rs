//! Tags written at the same time by several processes and instances: none is lost.

use std::process::Command;

use ferry_core::{Descriptor, WriteStore};
use ferry_fs_store::OciLayout;

use crate::support::{Image, layout, tempdir};

/// How many tags each writer writes.
const TAGS_PER_WRITER: usize = 20;

/// The program that writes tags from another process (`src/bin/tag_writer.rs`).
const TAG_WRITER: &str = env!("CARGO_BIN_EXE_ferry-fs-store-tag-writer");

async fn tags(store: &OciLayout) -> Vec<String> {
    let mut t: Vec<String> = store
        .tags()
        .await
        .unwrap()
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    t.sort();
    t
}

fn expected(prefixes: &[&str]) -> Vec<String> {
    let mut t: Vec<String> = prefixes
        .iter()
        .flat_map(|p| (0..TAGS_PER_WRITER).map(move |i| format!("{p}-{i}")))
        .chain(["base".to_string()])
        .collect();
    t.sort();
    t
}

#[tokio::test]
async fn two_processes_tagging_one_layout_lose_no_tag() {
    let dir = tempdir();
    let store = layout(dir.path(), "shared");
    let image = Image::build("processes");
    image.push(store.as_ref(), "base").await;

    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|prefix| {
            Command::new(TAG_WRITER)
                .arg(store.path())
                .arg(prefix)
                .arg(TAGS_PER_WRITER.to_string())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn writer process")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "writer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(tags(&store).await, expected(&["a", "b"]));
    // Every tag points at the image.
    for (_, desc) in store.tags().await.unwrap() {
        assert_eq!(desc.digest(), image.manifest.digest());
    }
}

/// The writer program is an entry point of its own, not a test: without its inputs, or when
/// it cannot write, it fails and says why, so a writer that did nothing can never look like
/// one that succeeded.
#[tokio::test]
async fn the_tag_writer_fails_when_it_cannot_write() {
    let dir = tempdir();
    let empty = layout(dir.path(), "no-base");
    let missing = dir.path().join("missing");
    for (args, says) in [
        (vec![], "usage"),
        (
            vec![missing.display().to_string(), "a".into(), "1".into()],
            "missing",
        ),
        (
            vec![empty.path().display().to_string(), "a".into(), "1".into()],
            "base",
        ),
        (
            vec![empty.path().display().to_string(), "a".into(), "x".into()],
            "COUNT",
        ),
    ] {
        let out = Command::new(TAG_WRITER).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert!(tags(&empty).await.is_empty(), "nothing was tagged");
}

#[tokio::test]
async fn separate_instances_tagging_at_once_lose_no_tag() {
    let dir = tempdir();
    let store = layout(dir.path(), "shared");
    let image = Image::build("instances");
    image.push(store.as_ref(), "base").await;
    let writers = ["x", "y", "z"].map(|prefix| {
        let instance = OciLayout::open(store.path()).unwrap();
        let manifest: Descriptor = image.manifest.clone();
        tokio::spawn(async move {
            for i in 0..TAGS_PER_WRITER {
                instance
                    .tag(&manifest, &format!("{prefix}-{i}"))
                    .await
                    .unwrap();
            }
        })
    });
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(tags(&store).await, expected(&["x", "y", "z"]));
}
