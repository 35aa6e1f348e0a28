//! The image of ferry, written by ferry (`ferry-image`) from the ferry binary under test:
//! skopeo reads the layout, umoci unpacks it without root, the unpacked binary runs, and
//! `ferry cp` publishes it to a real registry.

use std::time::{Duration, SystemTime};

use ferry_image::{ImageSpec, UID};
use ferry_test_support::{Registry, skopeo, umoci};

use crate::support::*;

const HOST_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

fn json(out: std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_image_of_ferry_is_read_by_skopeo_unpacked_by_umoci_runs_and_is_published_by_ferry() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("image");
    // Any PEM bundle will do where the machine has none.
    let ca = if std::path::Path::new(HOST_CA).exists() {
        std::path::PathBuf::from(HOST_CA)
    } else {
        let p = dir.path().join("ca.pem");
        std::fs::write(
            &p,
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        p
    };
    let spec = ImageSpec {
        binary: env!("CARGO_BIN_EXE_ferry").into(),
        ca_certificates: ca.clone(),
        version: "9.8.7-test".into(),
        source: "https://example.invalid/ferry".into(),
        revision: "0123456789abcdef0123456789abcdef01234567".into(),
        created: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    };
    let built = rt().block_on(ferry_image::build(&spec, &layout)).unwrap();
    let reference = format!("oci:{}:9.8.7-test", layout.display());

    // skopeo: the platform, the labels, the manifest's annotations, the config.
    let inspect = json(skopeo(&["inspect", &reference]).unwrap());
    assert_eq!(inspect["Digest"], built.manifest.digest().to_string());
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Created"], "2023-11-14T22:13:20Z");
    let raw = json(skopeo(&["inspect", "--raw", &reference]).unwrap());
    let annotations = &raw["annotations"];
    assert_eq!(
        annotations["org.opencontainers.image.version"],
        "9.8.7-test"
    );
    assert_eq!(annotations["org.opencontainers.image.source"], spec.source);
    assert_eq!(
        annotations["org.opencontainers.image.revision"],
        spec.revision
    );
    let config = json(skopeo(&["inspect", "--config", &reference]).unwrap());
    assert_eq!(config["config"]["User"], format!("{UID}:{UID}"));
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["ferry"]));

    // umoci, without root: a runtime bundle whose process is ferry as the non-root user.
    let bundle = dir.path().join("bundle");
    umoci(&[
        "unpack",
        "--rootless",
        "--image",
        &format!("{}:9.8.7-test", layout.display()),
        bundle.to_str().unwrap(),
    ])
    .unwrap();
    let runtime: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(runtime["process"]["user"]["uid"], UID);
    assert_eq!(runtime["process"]["user"]["gid"], UID);
    assert_eq!(runtime["process"]["args"], serde_json::json!(["ferry"]));
    assert_eq!(runtime["process"]["cwd"], "/home/ferry");
    let rootfs = bundle.join("rootfs");
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(
        passwd.contains(&format!("ferry:x:{UID}:{UID}:")),
        "{passwd}"
    );
    assert_eq!(
        std::fs::read(rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap(),
        std::fs::read(&ca).unwrap()
    );
    let version = std::process::Command::new(rootfs.join("usr/local/bin/ferry"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("ferry {}", env!("CARGO_PKG_VERSION"))
    );

    // ferry publishes it, byte for byte.
    let registry = Registry::start().unwrap();
    let to = format!("{}/tools/ferry:9.8.7-test", registry.addr());
    let cp = ferry(&["cp", "--plain-http", &reference, &to]);
    assert_eq!(cp.code, 0, "{}", cp.stderr);
    let published = json(
        skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--no-tags",
            &format!("docker://{to}"),
        ])
        .unwrap(),
    );
    assert_eq!(published["Digest"], built.manifest.digest().to_string());
}
