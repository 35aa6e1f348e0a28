//! `ferry cp` between OCI layouts, and the errors a user meets.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::support::*;

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn copies_between_layouts_by_hardlink_with_the_documented_output() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    let m = layout_with_image(&src, "v1", 2);
    let run = ferry(&[
        "cp",
        &format!("oci:{}:v1", s(&src)),
        &format!("oci:{}:v2", s(&dst)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", run.stdout);
    let mounted: Vec<&&str> = lines.iter().filter(|l| l.starts_with("Mounted ")).collect();
    assert_eq!(mounted.len(), 3, "{}", run.stdout);
    for l in mounted {
        assert!(
            l.ends_with(&format!(
                "from {} via hardlink (shared-storage)",
                src.canonicalize().unwrap().display()
            )),
            "{l}"
        );
    }
    assert_eq!(
        lines[3],
        format!(
            "Copied  {} application/vnd.oci.image.manifest.v1+json",
            &m.digest().digest()[..12]
        )
    );
    assert_eq!(
        lines[4],
        format!(
            "Copied [oci-layout] {}:v1 => [oci-layout] {}:v2",
            s(&src),
            s(&dst)
        )
    );
    assert_eq!(lines[5], format!("Digest: {}", m.digest()));
    assert_eq!(tags(&dst), ["v2"]);
    // The layers are the same files.
    let idx = index_json(&dst);
    assert_eq!(idx["manifests"][0]["digest"], m.digest().to_string());
    let any_layer = std::fs::read_dir(src.join("blobs/sha256"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let name = any_layer.file_name().unwrap();
    let linked = dst.join("blobs/sha256").join(name);
    if std::fs::metadata(&linked).is_ok() {
        let same = std::fs::metadata(&any_layer).unwrap().ino()
            == std::fs::metadata(&linked).unwrap().ino();
        let is_manifest = name.to_string_lossy() == m.digest().digest();
        assert!(same || is_manifest, "blobs are hardlinked");
    }

    // skopeo reads the result with the same digest.
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", &format!("oci:{}:v2", s(&dst))])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ferry_core::sha256(&out.stdout), *m.digest());

    // A second copy finds everything present.
    let run = ferry(&[
        "cp",
        &format!("oci:{}:v1", s(&src)),
        &format!("oci:{}:v2", s(&dst)),
    ]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("Exists  "), "{}", run.stdout);
}

#[test]
fn mount_none_streams_and_json_reports_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    let m = layout_with_image(&src, "v1", 2);
    let run = ferry(&[
        "cp",
        "--mount",
        "none",
        "--format",
        "json",
        &format!("oci:{}:v1", s(&src)),
        &format!("oci:{}", s(&dst)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&run.stdout).expect("stdout is one JSON document");
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    assert!(
        nodes.iter().all(|n| n["action"] == "copied"),
        "{}",
        run.stdout
    );
    assert_eq!(report["root"]["digest"], m.digest().to_string());
    assert_eq!(
        report["tags"][0], "v1",
        "the source tag is kept when the destination names none"
    );
    assert_eq!(report["chain"], "MountChain[]");
    assert_eq!(tags(&dst), ["v1"]);
}

#[test]
fn dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    layout_with_image(&src, "v1", 1);
    let run = ferry(&[
        "cp",
        "--dry-run",
        &format!("oci:{}:v1", s(&src)),
        &format!("oci:{}:v1", s(&dst)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.starts_with("Would "))
            .count(),
        3,
        "{}",
        run.stdout
    );
    assert!(!dst.exists(), "a dry run creates no layout");
}

#[test]
fn platform_selects_one_manifest_of_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let (idx, amd, arm) = layout_with_index(&src);
    let whole = dir.path().join("whole");
    let run = ferry(&[
        "cp",
        &format!("oci:{}:multi", s(&src)),
        &format!("oci:{}", s(&whole)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(blob_file(&whole, &amd).exists() && blob_file(&whole, &arm).exists());
    assert!(run.stdout.ends_with(&format!("Digest: {}\n", idx.digest())));

    let one = dir.path().join("one");
    let run = ferry(&[
        "cp",
        "--platform",
        "linux/arm64",
        &format!("oci:{}:multi", s(&src)),
        &format!("oci:{}:arm", s(&one)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(blob_file(&one, &arm).exists());
    assert!(!blob_file(&one, &amd).exists());
    assert!(!blob_file(&one, &idx).exists());
    assert!(run.stdout.ends_with(&format!("Digest: {}\n", arm.digest())));

    let run = ferry(&[
        "cp",
        "--platform",
        "linux/riscv64",
        &format!("oci:{}:multi", s(&src)),
        &format!("oci:{}:x", s(&one)),
    ]);
    assert_eq!(run.code, 3);
    assert!(
        run.stderr.contains("platform `linux/riscv64`")
            && run.stderr.contains("linux/amd64, linux/arm64"),
        "{}",
        run.stderr
    );
    let run = ferry(&[
        "cp",
        "--platform",
        "arm64",
        &format!("oci:{}:multi", s(&src)),
        &format!("oci:{}:x", s(&one)),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

/// An index of indexes in a layout: `--platform` descends into the child indexes, and a
/// platform that is nowhere is refused with every platform that was found.
#[test]
fn platform_is_found_through_an_index_of_indexes_in_a_layout() {
    use ferry_test_support::Content;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let index = nested_index(11);
    ferry_test_support::fixtures::write_oci_layout(&src, &[(Some("nested"), &index)]).unwrap();
    let arm_v7 = &index.indexes[1].indexes[0].images[0];
    let dst = dir.path().join("dst");
    let run = ferry(&[
        "cp",
        "--platform",
        "linux/arm/v7",
        &format!("oci:{}:nested", s(&src)),
        &format!("oci:{}:v7", s(&dst)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .ends_with(&format!("Digest: {}\n", arm_v7.manifest.digest())),
        "{}",
        run.stdout
    );
    let mut copied: Vec<String> = arm_v7
        .all()
        .iter()
        .map(|b| b.digest().digest().to_string())
        .collect();
    copied.sort();
    let mut held: Vec<String> = std::fs::read_dir(dst.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    held.sort();
    assert_eq!(held, copied, "only the linux/arm/v7 image is copied");

    let run = ferry(&[
        "cp",
        "--platform",
        "linux/riscv64",
        &format!("oci:{}:nested", s(&src)),
        &format!("oci:{}:x", s(&dst)),
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("linux/amd64, linux/arm64, linux/ppc64le, linux/arm/v7"),
        "every platform found is listed: {}",
        run.stderr
    );
}

#[test]
fn unknown_reference_syntax_is_refused_with_a_hint() {
    for bad in ["docker://alpine", "containers-storage:x", "oci:"] {
        let run = ferry(&["cp", bad, "oci:/nonexistent/x:v1"]);
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        assert!(run.stderr.contains("oci:PATH"), "{bad}: {}", run.stderr);
    }
}

#[test]
fn a_missing_layout_or_tag_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let run = ferry(&[
        "cp",
        &format!("oci:{}:v1", s(&missing)),
        &format!("oci:{}:v1", s(&dir.path().join("d"))),
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains(&s(&missing)), "{}", run.stderr);

    let src = dir.path().join("src");
    layout_with_image(&src, "v1", 1);
    let run = ferry(&[
        "cp",
        &format!("oci:{}:v9", s(&src)),
        &format!("oci:{}:v1", s(&dir.path().join("d"))),
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("v9"), "{}", run.stderr);
    assert!(
        !dir.path().join("d").join("index.json").exists() || tags(&dir.path().join("d")).is_empty()
    );
}

#[test]
fn a_corrupt_blob_fails_the_copy_naming_it_and_nothing_is_tagged() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    let m = layout_with_image(&src, "v1", 1);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob_file(&src, &m)).unwrap()).unwrap();
    let layer_digest = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let layer_path = src
        .join("blobs/sha256")
        .join(layer_digest.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&layer_path).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&layer_path, bytes).unwrap();

    for mount in ["auto", "none"] {
        let run = ferry(&[
            "cp",
            "--mount",
            mount,
            &format!("oci:{}:v1", s(&src)),
            &format!("oci:{}:v1", s(&dst)),
        ]);
        assert_eq!(run.code, 5, "{mount}: {}", run.stderr);
        assert!(
            run.stderr.contains(&layer_digest),
            "{mount}: the error names the digest: {}",
            run.stderr
        );
        assert!(
            !dst.join("blobs/sha256")
                .join(layer_digest.trim_start_matches("sha256:"))
                .exists(),
            "{mount}"
        );
        assert!(
            !blob_file(&dst, &m).exists(),
            "{mount}: the manifest is not pushed"
        );
        assert!(tags(&dst).is_empty(), "{mount}: nothing tagged");
    }
}

#[test]
fn a_manifest_over_the_limit_and_malformed_json_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    let m = layout_with_image(&src, "v1", 1);
    let run = ferry(&[
        "cp",
        "--manifest-limit",
        "100",
        &format!("oci:{}:v1", s(&src)),
        &format!("oci:{}:v1", s(&dst)),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("over the limit of 100 bytes"),
        "{}",
        run.stderr
    );

    // Malformed JSON, honestly digested: the manifest parses as nothing.
    let bad = dir.path().join("bad");
    rt().block_on(async {
        let layout = ferry_fs_store::OciLayout::open_or_create(&bad).unwrap();
        let d = put(
            &layout,
            ferry_core::model::OCI_MANIFEST,
            bytes::Bytes::from_static(b"{\"schemaVersion\": 2, "),
        )
        .await;
        ferry_core::WriteStore::tag(&layout, &d, "v1")
            .await
            .unwrap();
    });
    let run = ferry(&[
        "cp",
        &format!("oci:{}:v1", s(&bad)),
        &format!("oci:{}:v1", s(&dst)),
    ]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("not a manifest JSON document"),
        "{}",
        run.stderr
    );
    let _ = m;
}

#[test]
fn digests_and_tags_that_try_to_leave_the_layout_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    layout_with_image(&src, "v1", 1);
    let dst = dir.path().join("dst");
    for bad in [
        format!("oci:{}@sha256:../../../../etc/passwd", s(&src)),
        format!("oci:{}@sha256:{}", s(&src), "0".repeat(63) + "/"),
    ] {
        let run = ferry(&["cp", &bad, &format!("oci:{}:v1", s(&dst))]);
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
    }
    for bad_tag in ["-lead", "a b", ".hidden"] {
        let run = ferry(&[
            "cp",
            &format!("oci:{}:v1", s(&src)),
            &format!("oci:{}:{bad_tag}", s(&dst)),
        ]);
        assert_eq!(run.code, 2, "{bad_tag}: {}", run.stderr);
        assert!(run.stderr.contains("tag"), "{}", run.stderr);
    }
    // A source manifest naming a blob by a digest that would escape the layout.
    let evil = dir.path().join("evil");
    rt().block_on(async {
        let layout = ferry_fs_store::OciLayout::open_or_create(&evil).unwrap();
        let body = serde_json::json!({
            "schemaVersion": 2, "mediaType": ferry_core::model::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
                       "digest": "sha256:../../../../../../tmp/ferry-escape"},
            "layers": []
        });
        let d = put(
            &layout,
            ferry_core::model::OCI_MANIFEST,
            bytes::Bytes::from(body.to_string()),
        )
        .await;
        ferry_core::WriteStore::tag(&layout, &d, "v1")
            .await
            .unwrap();
    });
    let run = ferry(&[
        "cp",
        &format!("oci:{}:v1", s(&evil)),
        &format!("oci:{}:v1", s(&dst)),
    ]);
    assert_ne!(run.code, 0);
    assert!(!Path::new("/tmp/ferry-escape").exists());
    assert!(tags(&dst).is_empty() || !dst.exists());
}

/// Every file and directory under `dir`, relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() && !path.is_symlink() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A `:` whose following text is not a valid tag is refused as ambiguous instead of being
/// read as part of the path (`oci:dir/l:../../escape` would write `dir/escape`), before
/// anything is written; directories whose names hold `:` are named as the README says.
#[test]
fn ambiguous_layout_references_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let m = layout_with_image(&src, "v1", 1);
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("dir")).unwrap();
    let source = format!("oci:{}:v1", s(&src));
    let before = tree(dir.path());
    for (bad, named) in [
        (
            format!("oci:{}/dir/l:../../escape", s(&work)),
            "`../../escape`",
        ),
        (format!("oci:{}/dir:/etc/passwd", s(&work)), "`/etc/passwd`"),
        (
            format!("oci:{}/dir/a:b/../../x:v1", s(&work)),
            "`b/../../x`",
        ),
        (format!("oci:{}/dir/x:y+z", s(&work)), "`y+z`"),
        (format!("oci:{}/dir/x:..", s(&work)), "`..`"),
    ] {
        for (from, to) in [
            (source.as_str(), bad.as_str()),
            (bad.as_str(), source.as_str()),
        ] {
            let run = ferry(&["cp", from, to]);
            assert_eq!(run.code, 2, "`{bad}` must be refused: {}", run.stderr);
            assert!(
                run.stderr.contains(named) && run.stderr.contains("not a valid tag"),
                "`{bad}`: the error names {named} as not a valid tag: {}",
                run.stderr
            );
            assert_eq!(tree(dir.path()), before, "`{bad}` wrote something");
        }
    }

    // A directory whose name holds `:`: with a tag, the text after its last `:` is the tag;
    // without one, a final `/` ends the path.
    let colons = work.join("dir:with:colons");
    let run = ferry(&["cp", &source, &format!("oci:{}:v2", s(&colons))]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(tags(&colons), ["v2"]);
    let run = ferry(&["cp", &source, &format!("oci:{}/", s(&work.join("a:b")))]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(tags(&work.join("a:b")), ["v1"], "the source's tag");
    let run = ferry(&[
        "cp",
        &format!("oci:{}/", s(&colons)),
        &format!("oci:{}:v3", s(&work.join("a:b/c"))),
    ]);
    assert_eq!(
        run.code, 0,
        "a layout with one image needs no tag: {}",
        run.stderr
    );
    assert!(run.stdout.ends_with(&format!("Digest: {}\n", m.digest())));
}

#[test]
fn an_index_that_lists_itself_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let (idx, _, _) = layout_with_index(&src);
    // Rewrite the index so that it lists its own digest; the file keeps its old name.
    let path = blob_file(&src, &idx);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["manifests"][0] = serde_json::to_value(&idx).unwrap();
    std::fs::write(&path, v.to_string()).unwrap();
    let mut index = index_json(&src);
    index["manifests"][0]["size"] = serde_json::json!(std::fs::metadata(&path).unwrap().len());
    std::fs::write(src.join("index.json"), index.to_string()).unwrap();
    let dst = dir.path().join("dst");
    let run = ferry(&[
        "cp",
        &format!("oci:{}:multi", s(&src)),
        &format!("oci:{}:v1", s(&dst)),
    ]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(
        run.stderr.contains(&idx.digest().to_string()),
        "{}",
        run.stderr
    );
    assert!(tags(&dst).is_empty() || !dst.exists());
}

#[test]
fn help_has_examples_and_completions_are_printed() {
    let run = ferry(&["cp", "--help"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("Examples:") && run.stdout.contains("ferry cp oci:./image:v1"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Exit codes:"));
    for shell in ["bash", "zsh", "fish"] {
        let run = ferry(&["completions", shell]);
        assert_eq!(run.code, 0);
        assert!(
            run.stdout.contains("ferry") && run.stdout.contains("cp"),
            "{shell}"
        );
    }
}

#[test]
fn debug_logs_every_mount_attempt_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    layout_with_image(&src, "v1", 1);
    let run = ferry(&[
        "cp",
        "--debug",
        &format!("oci:{}:v1", s(&src)),
        &format!("oci:{}:v1", s(&dir.path().join("d"))),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let attempts = |strategy: &str| {
        let field = format!("strategy=\"{strategy}\"");
        run.stderr
            .lines()
            .filter(|l| l.contains("mount attempt") && l.contains(&field) && l.contains("outcome="))
            .count()
    };
    assert_eq!(
        attempts("shared-storage"),
        2,
        "one per blob: {}",
        run.stderr
    );
    assert_eq!(
        attempts("cross-repo"),
        2,
        "every strategy of the chain is asked: {}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("mount attempt"),
        "logs stay off stdout"
    );
}
