//! Running the binary and building layouts for it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use bytes::Bytes;
use ferry_conformance::random_bytes;
use ferry_core::model::{OCI_INDEX, OCI_MANIFEST};
use ferry_core::{Descriptor, WriteStore};
use ferry_fs_store::OciLayout;
use serde_json::json;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn ferry(args: &[&str]) -> Run {
    ferry_with(args, &[], None)
}

/// The one `error:` line of a failed run.
pub fn error_line(run: &Run) -> &str {
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    lines[0]
}

/// Runs ferry with extra environment variables and optional stdin, with its own empty
/// blob-location cache, docker configuration and `certs.d` roots, and no proxy, unless `env`
/// sets them.
pub fn ferry_with(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    use std::io::Write;
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args)
        .env("XDG_CACHE_HOME", cache.path())
        .env("XDG_CONFIG_HOME", cache.path().join("no-config"))
        .env("DOCKER_CONFIG", cache.path().join("no-docker-config"))
        .env("FERRY_CERTS_D", cache.path().join("no-certs.d"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("RUST_LOG");
    for var in ferry_test_support::squid::PROXY_VARS {
        cmd.env_remove(var);
    }
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out: Output = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `command` to its end with `input` on its stdin, its stdout and stderr captured.
pub fn output_with_stdin(mut command: Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub async fn put(layout: &OciLayout, media_type: &str, data: Bytes) -> Descriptor {
    let d = Descriptor::new(
        media_type.into(),
        data.len() as u64,
        ferry_core::sha256(&data),
    );
    layout
        .push(&d, ferry_core::bytes_stream(data))
        .await
        .unwrap();
    d
}

/// An image with `layers` random layers of `size` bytes; returns the manifest descriptor.
pub async fn image(layout: &OciLayout, layers: usize, size: usize, arch: &str) -> Descriptor {
    let mut ls = Vec::new();
    for _ in 0..layers {
        ls.push(
            put(
                layout,
                "application/vnd.oci.image.layer.v1.tar",
                random_bytes(size),
            )
            .await,
        );
    }
    let config = json!({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                        "nonce": format!("{:?}", random_bytes(8))});
    let config = put(
        layout,
        "application/vnd.oci.image.config.v1+json",
        Bytes::from(config.to_string()),
    )
    .await;
    let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": ls});
    put(layout, OCI_MANIFEST, Bytes::from(m.to_string())).await
}

/// A layout at `dir` with one image tagged `tag`.
pub fn layout_with_image(dir: &Path, tag: &str, layers: usize) -> Descriptor {
    rt().block_on(async {
        let layout = OciLayout::open_or_create(dir).unwrap();
        let m = image(&layout, layers, 4096, "amd64").await;
        layout.tag(&m, tag).await.unwrap();
        m
    })
}

/// A layout with a two-platform index tagged `multi`; returns (index, amd64, arm64).
pub fn layout_with_index(dir: &Path) -> (Descriptor, Descriptor, Descriptor) {
    rt().block_on(async {
        let layout = Arc::new(OciLayout::open_or_create(dir).unwrap());
        let amd = image(&layout, 1, 1000, "amd64").await;
        let arm = image(&layout, 1, 1000, "arm64").await;
        let entry = |d: &Descriptor, arch: &str| {
            let mut v = serde_json::to_value(d).unwrap();
            v["platform"] = json!({"os": "linux", "architecture": arch});
            v
        };
        let idx = json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
                         "manifests": [entry(&amd, "amd64"), entry(&arm, "arm64")]});
        let idx = put(&layout, OCI_INDEX, Bytes::from(idx.to_string())).await;
        layout.tag(&idx, "multi").await.unwrap();
        (idx, amd, arm)
    })
}

pub fn blob_file(layout: &Path, d: &Descriptor) -> PathBuf {
    layout
        .join("blobs")
        .join("sha256")
        .join(d.digest().digest())
}

pub fn index_json(layout: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap()
}

pub fn tags(layout: &Path) -> Vec<String> {
    index_json(layout)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

/// Starts ferry without waiting, its output discarded, with `env` (which should set
/// `XDG_CACHE_HOME` when the cache matters) and no docker configuration.
pub fn spawn_ferry(args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    cmd.args(args)
        .env("DOCKER_CONFIG", "/nonexistent/ferry-test-docker-config")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// A small seeded generator (splitmix64) for test schedules that must replay from a seed.
pub struct Seeded(pub u64);

impl Seeded {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Every file under `<layout>/blobs/` holds the content its name promises; returns the
/// digests found.
pub fn blobs_match_their_names(layout: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let blobs = layout.join("blobs");
    if !blobs.exists() {
        return found;
    }
    for alg in std::fs::read_dir(&blobs).unwrap() {
        let alg = alg.unwrap();
        assert_eq!(
            alg.file_name(),
            "sha256",
            "only `blobs/sha256` in `{}`",
            layout.display()
        );
        for f in std::fs::read_dir(alg.path()).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(f.path()).unwrap();
            assert_eq!(
                ferry_core::sha256(&bytes).digest(),
                name.as_str(),
                "`{}` holds other content than its name (a partial blob?)",
                f.path().display()
            );
            found.push(format!("sha256:{name}"));
        }
    }
    found
}

/// An index of indexes: a first child index with linux/amd64 and linux/arm64 images, a second
/// with a linux/ppc64le image and, one level further down, an index with linux/arm/v7 (at
/// `indexes[1].indexes[0].images[0]`). No entry of the outer index names a platform.
pub fn nested_index(seed: u64) -> ferry_test_support::Index {
    use ferry_test_support::IndexBuilder;
    IndexBuilder::new()
        .index(
            IndexBuilder::new().platforms(&["linux/amd64", "linux/arm64"], &[1500], seed),
            None,
        )
        .index(
            IndexBuilder::new()
                .platforms(&["linux/ppc64le"], &[1500], seed + 1)
                .index(
                    IndexBuilder::new().platforms(&["linux/arm/v7"], &[1500], seed + 2),
                    None,
                ),
            None,
        )
        .build()
}
