//! Tags written at the same time by several processes and instances: none is lost.

use std::process::Command;

use ferry_core::{Descriptor, ReadStore, WriteStore};
use ferry_fs_store::OciLayout;

use crate::support::{Image, layout, tempdir};

/// Set in a child process of [`two_processes_tagging_one_layout_lose_no_tag`]: the layout path.
const WRITER_LAYOUT: &str = "FERRY_FS_STORE_TAG_WRITER_LAYOUT";
/// Set in a child process: the prefix of the tags it writes.
const WRITER_PREFIX: &str = "FERRY_FS_STORE_TAG_WRITER_PREFIX";
const TAGS_PER_WRITER: usize = 20;

/// The body of a writer process: the parent test re-executes this test binary with
/// [`WRITER_LAYOUT`] set and only this test selected. Run without it (a normal test run), it
/// has nothing to do.
#[tokio::test]
async fn tag_writer_child() {
    let (Ok(path), Ok(prefix)) = (std::env::var(WRITER_LAYOUT), std::env::var(WRITER_PREFIX))
    else {
        return;
    };
    let store = OciLayout::open(&path).expect("open layout in the writer");
    let manifest = store.resolve("base").await.expect("base tag");
    for i in 0..TAGS_PER_WRITER {
        store
            .tag(&manifest, &format!("{prefix}-{i}"))
            .await
            .expect("tag in the writer");
    }
}

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

    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|prefix| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "concurrency::tag_writer_child",
                    "--test-threads=1",
                ])
                .env(WRITER_LAYOUT, store.path())
                .env(WRITER_PREFIX, prefix)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn writer process")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "writer failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("1 passed"),
            "the writer did not run:\n{stdout}"
        );
    }
    assert_eq!(tags(&store).await, expected(&["a", "b"]));
    // Every tag points at the image.
    for (_, desc) in store.tags().await.unwrap() {
        assert_eq!(desc.digest(), image.manifest.digest());
    }
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
