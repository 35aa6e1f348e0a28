//! A directory of layouts as a catalog, and deleting a layout's tags: what a sync into and out
//! of `oci-dir:` relies on.

use ferry_core::{Catalog, ListTags, ReadStore};
use ferry_fs_store::{OciDir, OciLayout};
use futures::StreamExt;

use crate::support::{Image, run, tempdir};

#[tokio::test]
async fn a_directory_lists_its_layouts_at_any_depth_and_creates_them_on_write() {
    let dir = tempdir();
    let image = Image::build("dir");
    for name in ["team/app", "team/tools/cli", "solo"] {
        let layout = OciLayout::open_or_create(dir.path().join(name)).unwrap();
        image.push(&layout, "v1").await;
    }
    // Neither hidden directories nor a layout's insides are layouts.
    OciLayout::open_or_create(dir.path().join(".hidden/app")).unwrap();
    std::fs::create_dir_all(dir.path().join("empty/dir")).unwrap();
    let catalog = OciDir::open(dir.path()).unwrap();
    let names: Vec<String> = catalog.list("").map(|r| r.unwrap()).collect().await;
    assert_eq!(names, ["solo", "team/app", "team/tools/cli"]);
    let team: Vec<String> = catalog.list("team/").map(|r| r.unwrap()).collect().await;
    assert_eq!(team, ["team/app", "team/tools/cli"]);

    let store = catalog.open_read("team/tools/cli").await.unwrap();
    assert_eq!(
        store.resolve("v1").await.unwrap().digest(),
        image.manifest.digest()
    );
    // Writing a new repository creates its layout, only when asked to.
    assert!(
        catalog
            .open_write("new/repo", false)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!dir.path().join("new").exists());
    let created = catalog.open_write("new/repo", true).await.unwrap().unwrap();
    image.push(created.as_ref(), "v2").await;
    assert!(dir.path().join("new/repo/oci-layout").is_file());
    // Every layout of the directory is on its filesystem.
    assert_eq!(created.info().authority, catalog.info().authority);
    for bad in ["../escape", "/abs", "a/./b", ".ferry/x", ""] {
        assert!(catalog.open_write(bad, true).await.is_err(), "{bad}");
    }
    // A layout is not a directory of layouts.
    assert!(OciDir::open(dir.path().join("solo")).is_err());
    assert!(
        OciDir::open(dir.path().join("missing"))
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn deleting_a_tag_removes_its_entry_and_keeps_the_layout_readable() {
    let dir = tempdir();
    let path = dir.path().join("layout");
    let layout = OciLayout::open_or_create(&path).unwrap();
    let a = Image::build("a");
    let b = Image::build("b");
    a.push(&layout, "keep").await;
    a.push(&layout, "also-a").await;
    b.push(&layout, "drop").await;
    let deleter = layout
        .capabilities()
        .delete_tag
        .expect("layouts delete tags");
    deleter.delete_tag("drop").await.unwrap();
    deleter.delete_tag("also-a").await.unwrap();
    let mut tags = layout.list_tags().await.unwrap();
    tags.sort();
    assert_eq!(tags, ["keep"]);
    assert!(deleter.delete_tag("drop").await.unwrap_err().is_not_found());
    assert!(deleter.delete_tag("bad tag").await.is_err());
    // The content stays; other tools read the layout.
    assert!(layout.exists(&b.manifest).await.unwrap());
    let listed = run("umoci", &["ls", "--layout", &path.display().to_string()]);
    assert_eq!(listed.trim(), "keep");
    run(
        "skopeo",
        &["inspect", &format!("oci:{}:keep", path.display())],
    );
}
