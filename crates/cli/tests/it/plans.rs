//! `ferry cp --dry-run`: a plan made with reads only (what exists, what would be mounted and
//! from where, what would be streamed, with totals), and the warning for a corrupt source
//! healed from another place.

use std::collections::BTreeSet;
use std::path::Path;

use ferry_core::Descriptor;
use ferry_core::model::short_digest;
use ferry_test_support::fixtures::{Blob, write_oci_layout};
use ferry_test_support::{Content, ImageBuilder, LoggedRequest, Registry};

use crate::support::*;

fn layout_of(dir: &Path, tag: &str, content: &dyn Content) -> String {
    write_oci_layout(dir, &[(Some(tag), content)]).unwrap();
    format!("oci:{}:{tag}", dir.display())
}

/// The text line of `blob` with verb `verb` and what follows its media type.
fn line(verb: &str, d: &Descriptor, tail: &str) -> String {
    format!(
        "{verb:<7} {} {}{tail}",
        short_digest(d.digest()),
        d.media_type()
    )
}

/// The node lines of a run (every line but the summary), sorted.
fn node_lines(stdout: &str) -> BTreeSet<String> {
    stdout
        .lines()
        .filter(|l| {
            ["Exists ", "Would ", "Copied ", "Mounted "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(str::to_string)
        .collect()
}

/// Every request not a `GET` or `HEAD`.
fn writes(requests: &[LoggedRequest]) -> Vec<&LoggedRequest> {
    requests
        .iter()
        .filter(|q| q.method != "GET" && q.method != "HEAD")
        .collect()
}

fn size(blobs: &[&Blob]) -> u64 {
    blobs.iter().map(|b| b.descriptor.size()).sum()
}

#[test]
fn a_dry_run_inside_one_registry_plans_mounts_and_what_exists_with_reads_only() {
    let reg = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new()
        .layers(&[3000, 5000, 7000])
        .seed(61)
        .build();
    // Another image in b/app shares the first layer.
    let base = ImageBuilder::new()
        .shared_layer(image.layers[0].clone())
        .seed(62)
        .build();
    let r = reg.addr();
    let run = ferry(&[
        "cp",
        "--plain-http",
        &layout_of(&dir.path().join("a"), "v1", &image),
        &format!("{r}/a/app:v1"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = ferry(&[
        "cp",
        "--plain-http",
        &layout_of(&dir.path().join("b"), "base", &base),
        &format!("{r}/b/app:base"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let mark = reg.mark();
    let run = ferry(&[
        "cp",
        "--plain-http",
        "--dry-run",
        &format!("{r}/a/app:v1"),
        &format!("{r}/b/app:v1"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mount = " from a/app (cross-repo)";
    let expected: BTreeSet<String> = [
        line("Would mount", &image.config.descriptor, mount),
        line("Exists", &image.layers[0].descriptor, ""),
        line("Would mount", &image.layers[1].descriptor, mount),
        line("Would mount", &image.layers[2].descriptor, mount),
        line("Would copy", &image.manifest.descriptor, ""),
    ]
    .into();
    assert_eq!(node_lines(&run.stdout), expected, "{}", run.stdout);
    assert!(
        run.stdout.ends_with(&format!(
            "Planned [registry] {r}/a/app:v1 => [registry] {r}/b/app:v1\nDigest: {}\n\
             Plan: 0 blobs to stream (0 bytes), 3 blobs to mount, 1 blob present; \
             1 manifest to push ({} bytes), 0 manifests present\n",
            image.manifest.descriptor.digest(),
            image.manifest.descriptor.size()
        )),
        "{}",
        run.stdout
    );
    let seen = reg.requests_since(mark);
    assert!(
        writes(&seen).is_empty(),
        "a dry run only reads: {:#?}",
        writes(&seen)
    );
    assert!(!seen.is_empty());
    // Nothing was tagged or mounted: the destination still lacks `v1` and the mountable
    // blobs.
    let after = ferry(&[
        "cp",
        "--plain-http",
        "--dry-run",
        &format!("{r}/a/app:v1"),
        &format!("{r}/b/app:v1"),
    ]);
    assert_eq!(node_lines(&after.stdout), expected);

    // The same plan as JSON: per node its action, strategy, from and size, and the totals.
    let run = ferry(&[
        "cp",
        "--plain-http",
        "--dry-run",
        "--format",
        "json",
        &format!("{r}/a/app:v1"),
        &format!("{r}/b/app:v1"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["dry_run"], true);
    let node = |d: &Descriptor| {
        report["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["descriptor"]["digest"] == d.digest().to_string())
            .unwrap()
            .clone()
    };
    let mounted = node(&image.layers[1].descriptor);
    assert_eq!(mounted["action"], "would-mount");
    assert_eq!(mounted["strategy"], "cross-repo");
    assert_eq!(mounted["from"]["scheme"], "registry");
    assert_eq!(mounted["from"]["authority"], reg.addr());
    assert_eq!(mounted["from"]["namespace"], "a/app");
    assert_eq!(mounted["method"], "cross-repository");
    assert_eq!(
        mounted["descriptor"]["size"],
        image.layers[1].descriptor.size()
    );
    assert_eq!(node(&image.layers[0].descriptor)["action"], "exists");
    assert_eq!(node(&image.manifest.descriptor)["action"], "would-copy");
    assert_eq!(
        report["plan"],
        serde_json::json!({
            "copy_blobs": 0, "copy_bytes": 0,
            "mount_blobs": 3,
            "mount_bytes": size(&[&image.config, &image.layers[1], &image.layers[2]]),
            "try_blobs": 0, "try_bytes": 0,
            "present_blobs": 1,
            "copy_manifests": 1, "copy_manifest_bytes": image.manifest.descriptor.size(),
            "present_manifests": 0,
        })
    );
}

#[test]
fn a_dry_run_into_another_registry_plans_to_stream_every_byte() {
    let (a, b) = (Registry::start().unwrap(), Registry::start().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new().layers(&[2000, 9000]).seed(63).build();
    let (ra, rb) = (a.addr(), b.addr());
    let run = ferry(&[
        "cp",
        "--plain-http",
        &layout_of(&dir.path().join("a"), "v1", &image),
        &format!("{ra}/app:v1"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let run = ferry(&[
        "cp",
        "--plain-http",
        "--dry-run",
        &format!("{ra}/app:v1"),
        &format!("{rb}/mirror/app:v1"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let expected: BTreeSet<String> = [
        line("Would copy", &image.config.descriptor, ""),
        line("Would copy", &image.layers[0].descriptor, ""),
        line("Would copy", &image.layers[1].descriptor, ""),
        line("Would copy", &image.manifest.descriptor, ""),
    ]
    .into();
    assert_eq!(node_lines(&run.stdout), expected, "{}", run.stdout);
    let blobs = size(&[&image.config, &image.layers[0], &image.layers[1]]);
    assert!(
        run.stdout.contains(&format!(
            "Plan: 3 blobs to stream ({blobs} bytes), 0 blobs to mount, 0 blobs present; \
             1 manifest to push ({} bytes), 0 manifests present\n",
            image.manifest.descriptor.size()
        )),
        "{}",
        run.stdout
    );
    let seen = b.requests();
    assert!(
        writes(&seen).is_empty(),
        "a dry run only reads: {:#?}",
        writes(&seen)
    );
    assert!(
        !b.root().join("docker").exists(),
        "the destination registry stored nothing"
    );
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_dry_run_between_layouts_on_one_filesystem_plans_hardlinks_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let image = ImageBuilder::new().layers(&[4000, 6000]).seed(64).build();
    let src_ref = layout_of(&src, "v1", &image);
    let src_path = std::fs::canonicalize(&src).unwrap();
    let from = format!(" from {} via hardlink (shared-storage)", src_path.display());
    let expected: BTreeSet<String> = [
        line("Would mount", &image.config.descriptor, &from),
        line("Would mount", &image.layers[0].descriptor, &from),
        line("Would mount", &image.layers[1].descriptor, &from),
        line("Would copy", &image.manifest.descriptor, ""),
    ]
    .into();
    let totals = format!(
        "Plan: 0 blobs to stream (0 bytes), 3 blobs to mount, 0 blobs present; 1 manifest to \
         push ({} bytes), 0 manifests present",
        image.manifest.descriptor.size()
    );

    // Into a layout that does not exist yet: it is not created.
    let fresh = dir.path().join("fresh");
    let run = ferry(&[
        "cp",
        "--dry-run",
        &src_ref,
        &format!("oci:{}:v1", fresh.display()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(node_lines(&run.stdout), expected, "{}", run.stdout);
    assert!(run.stdout.contains(&totals), "{}", run.stdout);
    assert!(!fresh.exists(), "a dry run creates no layout");

    // Into an existing layout holding another image: no file appears or changes.
    let other = ImageBuilder::new().layers(&[100]).seed(65).build();
    let existing = dir.path().join("existing");
    layout_of(&existing, "other", &other);
    let before = files(&existing);
    let index = std::fs::read(existing.join("index.json")).unwrap();
    let run = ferry(&[
        "cp",
        "--dry-run",
        &src_ref,
        &format!("oci:{}:v1", existing.display()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(node_lines(&run.stdout), expected, "{}", run.stdout);
    assert_eq!(
        files(&existing),
        before,
        "a dry run writes no file at the destination"
    );
    assert_eq!(std::fs::read(existing.join("index.json")).unwrap(), index);

    // The copy itself does what was planned.
    let run = ferry(&["cp", &src_ref, &format!("oci:{}:v1", existing.display())]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let done = node_lines(&run.stdout);
    assert_eq!(
        done.iter()
            .filter(|l| l.starts_with("Mounted ") && l.ends_with(&from))
            .count(),
        3,
        "{}",
        run.stdout
    );
}

/// The blob file of `d` in the layout at `layout`.
fn blob_path(layout: &Path, d: &Descriptor) -> std::path::PathBuf {
    layout.join("blobs/sha256").join(d.digest().digest())
}

#[test]
fn a_corrupt_source_blob_healed_from_a_cached_layout_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache/locations.redb");
    let cache_s = cache.display().to_string();
    let image = ImageBuilder::new().layers(&[5000, 8000]).seed(66).build();
    let src = dir.path().join("src");
    let src_ref = layout_of(&src, "v1", &image);
    // A first copy puts the blobs in `mirror` (hardlinked) and records where they are.
    let mirror = dir.path().join("mirror");
    let run = ferry(&[
        "cp",
        "--cache",
        &cache_s,
        &src_ref,
        &format!("oci:{}:v1", mirror.display()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // The source's file of the second layer is replaced by corrupt bytes of the same size
    // (a new file renamed over it, so mirror's hardlink keeps the good inode).
    let layer = &image.layers[1];
    let path = blob_path(&src, &layer.descriptor);
    let mut bad = layer.bytes.to_vec();
    bad[100] ^= 0xff;
    let tmp = src.join("corrupt.tmp");
    std::fs::write(&tmp, &bad).unwrap();
    std::fs::rename(&tmp, &path).unwrap();

    let third = dir.path().join("third");
    let run = ferry(&[
        "cp",
        "--cache",
        &cache_s,
        &src_ref,
        &format!("oci:{}:v1", third.display()),
    ]);
    assert_eq!(
        run.code, 0,
        "the copy succeeds from the good copy: {}",
        run.stderr
    );
    let src_path = std::fs::canonicalize(&src).unwrap();
    let mirror_path = std::fs::canonicalize(&mirror).unwrap();
    assert!(
        run.stdout.contains(&line(
            "Mounted",
            &layer.descriptor,
            &format!(
                " from {} via hardlink (shared-storage)",
                mirror_path.display()
            )
        )),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read(blob_path(&third, &layer.descriptor)).unwrap(),
        layer.bytes
    );
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    let digest = layer.descriptor.digest().to_string();
    assert_eq!(
        run.stderr.lines().filter(|l| l.contains(&digest)).count(),
        1,
        "said once: {}",
        run.stderr
    );
    let warning = warnings[0];
    for part in [
        format!("the source's copy of `{}`", layer.descriptor.digest()),
        format!("at `{}` is corrupt", src_path.display()),
        "does not match".to_string(),
        format!("taken from `{}` instead", mirror_path.display()),
    ] {
        assert!(warning.contains(&part), "`{part}` missing from: {warning}");
    }

    // The JSON report carries it, on the node; the exit code stays 0.
    let fourth = dir.path().join("fourth");
    let run = ferry(&[
        "cp",
        "--cache",
        &cache_s,
        "--format",
        "json",
        &src_ref,
        &format!("oci:{}:v1", fourth.display()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("warning: "))
            .count(),
        1,
        "{}",
        run.stderr
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let node = report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["descriptor"]["digest"] == layer.descriptor.digest().to_string())
        .unwrap();
    let warning = &node["warnings"][0];
    assert_eq!(warning["kind"], "corrupt-copy");
    assert_eq!(warning["digest"], layer.descriptor.digest().to_string());
    assert_eq!(warning["location"]["scheme"], "oci-layout");
    assert_eq!(
        warning["location"]["namespace"],
        src_path.display().to_string()
    );
    assert_eq!(warning["is_source"], true);
    // The most recent good copy the cache knows: the one the previous copy made.
    assert_eq!(
        warning["healed_from"]["namespace"],
        std::fs::canonicalize(&third).unwrap().display().to_string()
    );
    assert!(
        warning["reason"]
            .as_str()
            .unwrap()
            .contains("does not match")
    );
    assert_eq!(node["warnings"].as_array().unwrap().len(), 1);

    // `ferry sync` says it too, on stderr and on the image of its JSON report.
    let fifth = dir.path().join("fifth");
    let run = ferry(&[
        "sync",
        "--cache",
        &cache_s,
        "--format",
        "json",
        &format!("oci:{}", src.display()),
        &format!("oci:{}", fifth.display()),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("warning: ") && l.contains(&digest))
            .count(),
        1,
        "{}",
        run.stderr
    );
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let warning = &report["images"][0]["warnings"][0];
    assert_eq!(warning["kind"], "corrupt-copy");
    assert_eq!(warning["digest"], digest);
    assert_eq!(warning["location"]["scheme"], "oci-layout");
    assert_eq!(
        warning["location"]["namespace"],
        src_path.display().to_string()
    );
}
