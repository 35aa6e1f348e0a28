//! Runs every example binary (`CARGO_BIN_EXE_<name>`): the layouts copy and the admin-link
//! copy between real registries.

use std::path::{Path, PathBuf};
use std::process::Command;

use ferry_test_support::fixtures::Content;

use crate::admin_link::{SharedStorage, push_image};

fn sample_layout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/hello")
}

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_copy-between-layouts"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "example failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn copy_between_layouts_mounts_with_the_chain_it_builds() {
    let dir = tempfile::tempdir().unwrap();
    // Copy the sample into the temp dir first so source and destination share a filesystem.
    let src = dir.path().join("src");
    let out = run(&[
        sample_layout().to_str().unwrap(),
        "v1",
        src.to_str().unwrap(),
    ]);
    assert!(out.contains("chain: MountChain[]"), "{out}");
    assert!(out.contains("0 mounted"), "an empty chain streams: {out}");

    let dst = dir.path().join("dst");
    let out = run(&[
        src.to_str().unwrap(),
        "v1",
        dst.to_str().unwrap(),
        "shared-storage",
    ]);
    assert!(
        out.contains("chain: MountChain[SharedStorageMount]"),
        "{out}"
    );
    assert!(
        out.contains("3 mounted"),
        "config and both layers mounted: {out}"
    );
    assert!(out.contains("by shared-storage (hardlink) from"), "{out}");
    assert!(dst.join("index.json").exists());
}

#[test]
fn sync_layouts_mirrors_a_directory_keeping_the_newest_versions() {
    use ferry_test_support::ImageBuilder;
    use ferry_test_support::fixtures::{layer_blob, write_oci_layout};
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let base = layer_blob(1, 4096);
    for repo in ["team/app", "team/lib"] {
        let images: Vec<_> = (0..3)
            .map(|i| {
                ImageBuilder::new()
                    .shared_layer(base.clone())
                    .layer(100)
                    .seed(i + repo.len() as u64 * 10)
                    .build()
            })
            .collect();
        write_oci_layout(
            &src.join(repo),
            &[
                (Some("1.0.0"), &images[0]),
                (Some("1.1.0"), &images[1]),
                (Some("2.0.0"), &images[2]),
            ],
        )
        .unwrap();
    }
    let dst = dir.path().join("dst");
    let out = Command::new(env!("CARGO_BIN_EXE_sync-layouts"))
        .args([src.to_str().unwrap(), dst.to_str().unwrap(), "^1", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2 synced, 0 unchanged, 4 filtered, 0 failed"),
        "{stdout}"
    );
    for repo in ["team/app", "team/lib"] {
        let index = std::fs::read_to_string(dst.join(repo).join("index.json")).unwrap();
        assert!(
            index.contains("\"1.1.0\"") && !index.contains("\"1.0.0\""),
            "{index}"
        );
    }
    // The blobs were linked, not copied.
    assert!(
        stdout
            .lines()
            .filter(|l| l.starts_with("Synced"))
            .all(|l| l.contains("(3 mounted")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_link_copy_mounts_through_the_admin_api() {
    let storage = SharedStorage::start().await;
    let admin = storage.admin(Some("example-token")).await;
    let image = push_image(&storage.a, "team/app", 10).await;
    storage.b.clear_log();

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_admin-link-copy"))
        .args([
            "--plain-http",
            &format!("{}/team/app:v1", storage.a.addr()),
            &format!("{}/mirror/app:v1", storage.b.addr()),
            &admin.url(),
        ])
        .env("REGISTRY_ADMIN_TOKEN", "example-token")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "example failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "chain: MountChain[CrossRepoMount, Resting(30s, Timeout(30s, AdminLinkMount({}))), SharedStorageMount]",
            admin.url()
        )),
        "{stdout}"
    );
    // Config and both layers mounted; only the manifest's bytes travel.
    assert!(
        stdout.contains(&format!(
            "4 nodes, 3 mounted, {} bytes streamed",
            image.descriptor().size()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "by admin-link (admin link) from {}/team/app",
            storage.a.addr()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("root {}", image.descriptor().digest())),
        "{stdout}"
    );
    assert!(
        !storage
            .b
            .requests()
            .iter()
            .any(|r| r.path.contains("/blobs/uploads")),
        "blob uploads reached b"
    );
}

#[test]
fn admin_link_copy_says_how_to_call_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_admin-link-copy"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("usage: admin-link-copy"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `ferry` binary with `AdminLinkFactory` registered in one line (`ferry-with-admin-link`)
/// lists the strategy and its settings in its help, like ferry's own.
#[test]
fn a_strategy_registered_in_one_line_is_in_the_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry-with-admin-link"))
        .args(["cp", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(
        help.contains("admin-link: a registry admin API links the blob"),
        "--mount lists it: {help}"
    );
    assert!(
        help.contains("admin-link.url: the admin endpoint") && help.contains("(required)"),
        "--mount-opt lists its settings: {help}"
    );
    assert!(
        help.contains("(admin-link) a repository the admin API links from"),
        "--dry-run names it: {help}"
    );
    assert!(
        help.contains("cross-repo:") && help.contains("shared-storage (also hardlink, reflink):"),
        "ferry's own strategies stay: {help}"
    );
}

/// The registered strategy mounts a copy between two real registries on one storage, chosen
/// by `--mount` and configured by `--mount-opt`, and its name is in the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strategy_registered_in_one_line_runs_from_the_command_line() {
    let storage = SharedStorage::start().await;
    let admin = storage.admin(Some("example-token")).await;
    push_image(&storage.a, "team/app", 10).await;
    storage.b.clear_log();
    let config = tempfile::tempdir().unwrap();
    let file = config.path().join("ferry.toml");
    std::fs::write(
        &file,
        format!(
            "[mount.admin-link]\nurl = \"{}\"\ntoken = \"example-token\"\nregistries = [\"{}\", \"{}\"]\n",
            admin.url(),
            storage.a.addr(),
            storage.b.addr()
        ),
    )
    .unwrap();

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry-with-admin-link"))
        .args([
            "cp",
            "--plain-http",
            "--no-cache",
            "--config",
            file.to_str().unwrap(),
            "--mount",
            "admin-link",
            &format!("{}/team/app:v1", storage.a.addr()),
            &format!("{}/mirror/app:v1", storage.b.addr()),
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mounted: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("Mounted"))
        .collect();
    assert_eq!(mounted.len(), 3, "config and both layers: {stdout}");
    for line in mounted {
        assert!(
            line.ends_with(&format!(
                "from {}/team/app via admin link (admin-link)",
                storage.a.addr()
            )),
            "{line}"
        );
    }
    assert!(
        !storage
            .b
            .requests()
            .iter()
            .any(|r| r.path.contains("/blobs/uploads")),
        "no blob was uploaded to b"
    );

    // Without its required setting, the error says which and how to give it.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferry-with-admin-link"))
        .args([
            "cp",
            "--plain-http",
            "--no-cache",
            "--mount",
            "admin-link",
            &format!("{}/team/app:v1", storage.a.addr()),
            &format!("{}/other/app:v1", storage.b.addr()),
        ])
        .env("XDG_CONFIG_HOME", config.path().join("none"))
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("mount strategy `admin-link` needs its `url` setting")
            && stderr.contains("`--mount-opt admin-link.url=VALUE`"),
        "{stderr}"
    );
}
