//! `oci-archive:` for `ferry sync` and `ferry cp` between real registries: a bundle of many
//! repositories through one file and through a pipe, each blob once; one image out of a
//! bundle; whole-stream compression; a delta after one moved tag, with receipts; a source
//! that fails once and one that keeps failing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use ferry_test_support::fixtures::push;
use ferry_test_support::{Content, Fault, FaultPlan, FaultProxy, ImageBuilder, Registry};

use crate::support::*;
use crate::sync::{Corpus, remote_digest, remote_tags, sync, uploads};

/// Every member of an uncompressed tar: name and size, in order.
pub(crate) fn members(path: &Path) -> Vec<(String, u64)> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(file);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                e.size(),
            )
        })
        .collect()
}

/// The bytes of the member `name` of an uncompressed tar.
pub(crate) fn member(path: &Path, name: &str) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(file);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path_bytes().as_ref() == name.as_bytes() {
            let mut out = Vec::new();
            e.read_to_end(&mut out).unwrap();
            return out;
        }
    }
    panic!("no member `{name}` in {}", path.display());
}

/// The digests of the blobs of a tar, each with how often it appears.
pub(crate) fn blob_counts(path: &Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (name, _) in members(path) {
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            *out.entry(format!("sha256:{hex}")).or_default() += 1;
        }
    }
    out
}

/// Every digest of the corpus: manifests, configs and layers.
fn corpus_digests(corpus: &Corpus) -> BTreeSet<String> {
    corpus
        .images
        .iter()
        .flat_map(|i| i.image.all())
        .map(|b| b.digest().to_string())
        .collect()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Files in `dir` other than `keep`: what a failed or finished export left behind.
fn leftovers(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

/// Checks that every image of `corpus` is at `reg` under `prefix` with its digest.
fn assert_imported(corpus: &Corpus, reg: &Registry, prefix: &str) {
    for i in &corpus.images {
        assert_eq!(
            remote_digest(reg.addr(), &format!("{prefix}{}:{}", i.repo, i.tag)),
            i.image.manifest.digest().to_string(),
            "{prefix}{}:{}",
            i.repo,
            i.tag
        );
    }
}

#[test]
fn a_bundle_of_repositories_goes_through_one_file_with_each_blob_once() {
    let src = Registry::start().unwrap();
    let dst = Registry::start().unwrap();
    let corpus = Corpus::new(&["app", "db", "web/api"], &["1.0", "1.1"], 71, 24 * 1024);
    corpus.push_to(&src, "team/");
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.tar");

    let export = sync(&[
        "--plain-http",
        &format!("{}/team/", src.addr()),
        &format!("oci-archive:{}", s(&bundle)),
    ]);
    assert_eq!(export.code, 0, "{}\n{}", export.stdout, export.stderr);
    assert_eq!(
        export
            .stdout
            .lines()
            .filter(|l| l.starts_with("Synced "))
            .count(),
        6,
        "{}",
        export.stdout
    );
    assert!(
        export.stderr.contains("Wrote oci-archive:"),
        "{}",
        export.stderr
    );
    assert_eq!(leftovers(dir.path(), &["bundle.tar"]), Vec::<String>::new());

    // Each blob and manifest once, and nothing else besides the index files.
    let counts = blob_counts(&bundle);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert_eq!(
        counts.keys().cloned().collect::<BTreeSet<_>>(),
        corpus_digests(&corpus)
    );
    let names: Vec<String> = members(&bundle).into_iter().map(|(n, _)| n).collect();
    let last: Vec<&str> = names[names.len() - 3..]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(last, ["oci-layout", "manifest.json", "index.json"]);

    // Every tag with its tag, full name and repository; Docker's list for `docker load`.
    let index: serde_json::Value = serde_json::from_slice(&member(&bundle, "index.json")).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 6);
    for i in &corpus.images {
        let entry = entries
            .iter()
            .find(|e| {
                e["annotations"]["dev.ferry.archive.repository"] == i.repo.as_str()
                    && e["annotations"]["org.opencontainers.image.ref.name"] == i.tag.as_str()
            })
            .unwrap_or_else(|| panic!("{}:{} in {index}", i.repo, i.tag));
        assert_eq!(entry["digest"], i.image.manifest.digest().to_string());
        assert_eq!(
            entry["annotations"]["io.containerd.image.name"],
            format!("{}/team/{}:{}", src.addr(), i.repo, i.tag)
        );
        assert_eq!(entry["platform"]["os"], "linux");
    }
    let docker: serde_json::Value =
        serde_json::from_slice(&member(&bundle, "manifest.json")).unwrap();
    assert_eq!(docker.as_array().unwrap().len(), 6);

    // The import restores every repository under the destination prefix, each blob uploaded
    // once (the others mounted).
    let import = sync(&[
        "--plain-http",
        &format!("oci-archive:{}", s(&bundle)),
        &format!("{}/mirror/", dst.addr()),
    ]);
    assert_eq!(import.code, 0, "{}\n{}", import.stdout, import.stderr);
    assert_imported(&corpus, &dst, "mirror/");
    let uploaded = uploads(&dst.requests());
    assert!(uploaded.values().all(|&n| n == 1), "{uploaded:?}");
    assert_eq!(
        uploaded.keys().cloned().collect::<BTreeSet<_>>(),
        corpus.unique_blobs()
    );
}

#[test]
fn a_pipe_carries_a_bundle_between_registries_in_one_pass() {
    let src = Registry::start().unwrap();
    let dst = Registry::start().unwrap();
    let corpus = Corpus::new(&["app", "db"], &["1.0", "1.1", "2.0"], 72, 40 * 1024);
    corpus.push_to(&src, "team/");
    let cache = tempfile::tempdir().unwrap();
    let ferry_bin = env!("CARGO_BIN_EXE_ferry");
    let mut export = Command::new(ferry_bin)
        .args(["sync", "--plain-http", "--no-cache"])
        .arg(format!("{}/team/", src.addr()))
        .arg("oci-archive:-")
        .env("XDG_CACHE_HOME", cache.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let import = Command::new(ferry_bin)
        .args(["sync", "--plain-http", "--no-cache", "oci-archive:-"])
        .arg(format!("{}/team/", dst.addr()))
        .env("XDG_CACHE_HOME", cache.path())
        .stdin(export.stdout.take().unwrap())
        .output()
        .unwrap();
    let export = export.wait_with_output().unwrap();
    let export_err = String::from_utf8_lossy(&export.stderr);
    let import_out = String::from_utf8_lossy(&import.stdout);
    assert!(export.status.success(), "{export_err}");
    assert!(
        import.status.success(),
        "{import_out}\n{}",
        String::from_utf8_lossy(&import.stderr)
    );
    // The exporter's results go to stderr: its stdout is the archive.
    assert!(export_err.contains("Synced "), "{export_err}");
    assert_eq!(
        import_out
            .lines()
            .filter(|l| l.starts_with("Synced "))
            .count(),
        6,
        "{import_out}"
    );
    assert_imported(&corpus, &dst, "team/");
    let uploaded = uploads(&dst.requests());
    assert!(uploaded.values().all(|&n| n == 1), "{uploaded:?}");
    assert_eq!(
        uploaded.keys().cloned().collect::<BTreeSet<_>>(),
        corpus.unique_blobs()
    );
}

#[test]
fn one_image_comes_out_of_a_bundle_by_repository_and_tag() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    let a = layout_with_image(&export.join("team/app"), "1.0", 2);
    let b = layout_with_image(&export.join("team/db"), "1.0", 1);
    let bundle = dir.path().join("b.tar");
    let run = sync(&[
        &format!("oci-dir:{}", s(&export)),
        &format!("oci-archive:{}", s(&bundle)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let out = dir.path().join("out");
    let run = ferry(&[
        "cp",
        &format!("oci-archive:{}:team/db:1.0", s(&bundle)),
        &format!("oci:{}:v1", s(&out)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!(
            "Copied [oci-archive] {}:team/db:1.0 =>",
            s(&bundle)
        )),
        "{}",
        run.stdout
    );
    assert_eq!(
        index_json(&out)["manifests"][0]["digest"],
        b.digest().to_string()
    );
    assert_ne!(a.digest(), b.digest());

    // A tag two repositories have is ambiguous; the error lists the images.
    let run = ferry(&[
        "cp",
        &format!("oci-archive:{}:1.0", s(&bundle)),
        &format!("oci:{}:v2", s(&out)),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("`team/app:1.0`") && run.stderr.contains("`team/db:1.0`"),
        "{}",
        run.stderr
    );
    let run = ferry(&[
        "cp",
        &format!("oci-archive:{}:team/nope:1.0", s(&bundle)),
        &format!("oci:{}:v3", s(&out)),
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
}

#[test]
fn referrers_and_indexes_travel_in_a_bundle_with_their_subjects() {
    use ferry_test_support::fixtures::write_oci_layout;
    use ferry_test_support::{ArtifactBuilder, IndexBuilder};
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app");
    let image = ImageBuilder::new().layer(1000).seed(95).build();
    let signature = ArtifactBuilder::signature(image.descriptor(), b"signed").build();
    let index = IndexBuilder::new()
        .platforms(&["linux/amd64", "linux/arm64"], &[700], 96)
        .build();
    write_oci_layout(
        &src,
        &[
            (Some("v1"), &image),
            (None, &signature),
            (Some("multi"), &index),
        ],
    )
    .unwrap();
    let bundle = dir.path().join("b.tar");
    let run = sync(&[
        "-r",
        &format!("oci:{}", s(&src)),
        &format!("oci-archive:{}", s(&bundle)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let carried = blob_counts(&bundle);
    assert!(carried.contains_key(&signature.manifest.digest().to_string()));
    assert!(carried.contains_key(&index.index.digest().to_string()));

    // From the file, and from a stream: the index whole, the signature with its subject.
    for (n, stdin) in [(1, false), (2, true)] {
        let dst = Registry::start().unwrap();
        let to = format!("{}/mirror/app", dst.addr());
        let run = if stdin {
            let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
                .args([
                    "sync",
                    "-r",
                    "--plain-http",
                    "--no-cache",
                    "oci-archive:-",
                    &to,
                ])
                .stdin(std::fs::File::open(&bundle).unwrap())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            let run = sync(&[
                "-r",
                "--plain-http",
                &format!("oci-archive:{}", s(&bundle)),
                &to,
            ]);
            assert_eq!(run.code, 0, "{}", run.stderr);
            run.stdout
        };
        assert!(run.contains("Synced "), "{n}: {run}");
        assert_eq!(
            remote_digest(dst.addr(), "mirror/app:multi"),
            index.index.digest().to_string()
        );
        let referrers = format!(
            "{}/v2/mirror/app/manifests/sha256-{}",
            dst.url(),
            image.descriptor().digest().digest()
        );
        let answer = rt()
            .block_on(ferry_test_support::http(
                "GET",
                &referrers,
                &[("accept", ferry_core::model::OCI_INDEX)],
                Vec::new(),
            ))
            .unwrap();
        assert_eq!(answer.status, 200, "{n}: {}", answer.text());
        assert_eq!(
            answer.json().unwrap()["manifests"][0]["digest"],
            signature.manifest.digest().to_string()
        );
    }
}

#[test]
fn compressed_archives_are_chosen_by_extension_or_flag_and_read_by_their_magic_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let m = layout_with_image(&src, "v1", 2);
    let cases = [
        ("a.tar.gz", None, &[0x1f, 0x8b][..]),
        ("a.tar.zst", None, &[0x28, 0xb5, 0x2f, 0xfd][..]),
        ("a.tar", Some("zstd"), &[0x28, 0xb5, 0x2f, 0xfd][..]),
        ("b.tar", None, b"PaxHeaders/".as_slice()),
    ];
    for (name, flag, magic) in cases {
        let archive = dir.path().join(name);
        let mut args = vec![
            "cp".to_string(),
            format!("oci:{}:v1", s(&src)),
            format!("oci-archive:{}", s(&archive)),
        ];
        if let Some(f) = flag {
            args.extend(["--archive-compression".to_string(), f.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = ferry(&args);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let head = std::fs::read(&archive).unwrap();
        assert!(
            head.starts_with(magic),
            "{name} starts with {:?}",
            &head[..8]
        );
        let tool = match magic[0] {
            0x1f => Some("gzip"),
            0x28 => Some("zstd"),
            _ => None,
        };
        if let Some(tool) = tool {
            let test = Command::new(tool).arg("-t").arg(&archive).output().unwrap();
            assert!(test.status.success(), "{tool} -t {name}");
        }
        let back = dir.path().join(format!("back-{name}"));
        let run = ferry(&[
            "cp",
            &format!("oci-archive:{}", s(&archive)),
            &format!("oci:{}:v1", s(&back)),
        ]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert_eq!(
            index_json(&back)["manifests"][0]["digest"],
            m.digest().to_string()
        );
    }
    let run = ferry(&[
        "cp",
        &format!("oci:{}:v1", s(&src)),
        &format!("oci-archive:{}", s(&dir.path().join("c.tar"))),
        "--archive-compression",
        "brotli",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("`brotli`"), "{}", run.stderr);
}

#[test]
fn a_delta_after_one_moved_tag_carries_only_that_images_new_blobs() {
    let src = Registry::start().unwrap();
    let dst = Registry::start().unwrap();
    let fresh = Registry::start().unwrap();
    let corpus = Corpus::new(&["app", "db"], &["1.0", "1.1", "1.2"], 73, 32 * 1024);
    corpus.push_to(&src, "team/");
    let dir = tempfile::tempdir().unwrap();
    let (full, delta, receipt) = (
        dir.path().join("full.tar"),
        dir.path().join("delta.tar"),
        dir.path().join("receipt.json"),
    );
    let from = format!("{}/team/", src.addr());
    let run = sync(&["--plain-http", &from, &format!("oci-archive:{}", s(&full))]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = sync(&[
        "--plain-http",
        &format!("oci-archive:{}", s(&full)),
        &format!("{}/mirror/", dst.addr()),
        "--receipt",
        &s(&receipt),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    assert_eq!(written["images"].as_array().unwrap().len(), 6);

    // app:1.1 moves upstream: a new image on the repository's shared layers.
    let moved = ImageBuilder::new()
        .shared_layer(corpus.base.clone())
        .layer(20 * 1024)
        .seed(9_999)
        .build();
    rt().block_on(push(&src.url(), "team/app", &moved, Some("1.1"), None))
        .unwrap();

    for base in [&receipt, &full] {
        let run = sync(&[
            "--plain-http",
            &from,
            &format!("oci-archive:{}", s(&delta)),
            "--delta-from",
            &s(base),
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(
            run.stdout
                .lines()
                .filter(|l| l.starts_with("Synced "))
                .count(),
            1,
            "{}",
            run.stdout
        );
        // Only the moved image's own manifest, config and layer, and the delta's record.
        let carried: BTreeSet<String> = blob_counts(&delta).into_keys().collect();
        let new: BTreeSet<String> = [
            moved.manifest.digest(),
            moved.config.digest(),
            moved.layers[1].digest(),
        ]
        .iter()
        .map(|d| d.to_string())
        .collect();
        let index: serde_json::Value =
            serde_json::from_slice(&member(&delta, "index.json")).unwrap();
        let record = index["annotations"]["dev.ferry.archive.delta"]
            .as_str()
            .unwrap()
            .to_string();
        let mut expected = new.clone();
        expected.insert(record);
        assert_eq!(carried, expected, "delta from {}", base.display());
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    }

    // Into a destination without the base: refused before any tag, naming what is missing.
    let run = sync(&[
        "--plain-http",
        &format!("oci-archive:{}", s(&delta)),
        &format!("{}/mirror/", fresh.addr()),
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains(&corpus.base.digest().to_string()) && run.stderr.contains("full.tar"),
        "{}",
        run.stderr
    );
    assert_eq!(remote_tags(&fresh, "mirror/app"), Vec::<String>::new());

    // Into the destination that has it: the tag moves, and the receipt covers everything.
    let receipt2 = dir.path().join("receipt2.json");
    let mark = dst.mark();
    let run = sync(&[
        "--plain-http",
        &format!("oci-archive:{}", s(&delta)),
        &format!("{}/mirror/", dst.addr()),
        "--receipt",
        &s(&receipt2),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        remote_digest(dst.addr(), "mirror/app:1.1"),
        moved.manifest.digest().to_string()
    );
    let uploaded = uploads(&dst.requests_since(mark));
    assert_eq!(
        uploaded.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([
            moved.config.digest().to_string(),
            moved.layers[1].digest().to_string()
        ])
    );
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&receipt2).unwrap()).unwrap();
    let images = written["images"].as_array().unwrap();
    assert_eq!(images.len(), 6);
    assert!(images.iter().any(|i| i["repository"] == "app"
        && i["tag"] == "1.1"
        && i["descriptor"]["digest"] == moved.manifest.digest().to_string()));
    assert!(
        written["repositories"]["app"]["blobs"]
            .get(corpus.base.digest().to_string())
            .is_some()
    );
}

#[test]
fn a_delta_of_a_moved_index_expects_its_unchanged_platform_manifest_at_the_destination() {
    use ferry_test_support::IndexBuilder;
    let src = Registry::start().unwrap();
    let dst = Registry::start().unwrap();
    let amd64 = ImageBuilder::new()
        .platform("linux/amd64")
        .layer(3000)
        .seed(61);
    let arm64 = |seed| {
        ImageBuilder::new()
            .platform("linux/arm64")
            .layer(3000)
            .seed(seed)
    };
    let first = IndexBuilder::new()
        .image(amd64.clone())
        .image(arm64(62))
        .build();
    rt().block_on(push(&src.url(), "team/multi", &first, Some("1"), None))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (full, delta, receipt) = (
        dir.path().join("full.tar"),
        dir.path().join("delta.tar"),
        dir.path().join("r.json"),
    );
    let from = format!("{}/team/", src.addr());
    let to = format!("{}/team/", dst.addr());
    let run = sync(&["--plain-http", &from, &format!("oci-archive:{}", s(&full))]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = sync(&[
        "--plain-http",
        &format!("oci-archive:{}", s(&full)),
        &to,
        "--receipt",
        &s(&receipt),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // The tag moves to an index whose arm64 image is new and whose amd64 image is not.
    let second = IndexBuilder::new().image(amd64).image(arm64(63)).build();
    rt().block_on(push(&src.url(), "team/multi", &second, Some("1"), None))
        .unwrap();
    let run = sync(&[
        "--plain-http",
        &from,
        &format!("oci-archive:{}", s(&delta)),
        "--delta-from",
        &s(&receipt),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let index: serde_json::Value = serde_json::from_slice(&member(&delta, "index.json")).unwrap();
    let record = index["annotations"]["dev.ferry.archive.delta"]
        .as_str()
        .unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&member(&delta, &format!("blobs/sha256/{}", &record[7..]))).unwrap();
    let unchanged = second.images[0].manifest.digest().to_string();
    let expected = record["expected"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["digest"] == unchanged.as_str())
        .unwrap_or_else(|| panic!("{record}"));
    assert_eq!(expected["repository"], "multi");
    assert_eq!(expected["mediaType"], ferry_core::model::OCI_MANIFEST);
    assert!(!blob_counts(&delta).contains_key(&unchanged));

    let run = sync(&["--plain-http", &format!("oci-archive:{}", s(&delta)), &to]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        remote_digest(dst.addr(), "team/multi:1"),
        second.index.digest().to_string()
    );
}

/// `ferry sync` of the proxied registry's `team/` into the archive `path`, each request tried
/// up to `tries` times.
fn export_through(proxy: &FaultProxy, path: &Path, tries: u32) -> Run {
    ferry_with(
        &[
            "sync",
            "--plain-http",
            &format!("{}/team/", proxy.addr()),
            &format!("oci-archive:{}", s(path)),
        ],
        &[
            ("FERRY_RETRY_TRIES", &tries.to_string()),
            ("FERRY_RETRY_BASE_DELAY_MS", "1"),
        ],
        None,
    )
}

#[test]
fn a_source_that_fails_once_is_retried_and_one_that_keeps_failing_leaves_no_archive() {
    let src = Registry::start().unwrap();
    let corpus = Corpus::new(&["app", "db"], &["1.0", "1.1"], 74, 256 * 1024);
    corpus.push_to(&src, "team/");
    let dir = tempfile::tempdir().unwrap();

    // Every blob body breaks off the first time (half of them twice): each failed entry is
    // cut off the archive and written again.
    let mut plan = FaultPlan::none();
    for (n, digest) in corpus.unique_blobs().iter().enumerate() {
        let fault = if n % 2 == 0 {
            Fault::ResetMidBody
        } else {
            Fault::TruncatedBody
        };
        plan = plan.first("GET", &format!("/blobs/{digest}"), 1 + n % 2, fault);
    }
    let flaky = FaultProxy::start(src.addr(), plan).unwrap();
    let bundle = dir.path().join("flaky.tar");
    let run = export_through(&flaky, &bundle, 10);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let faulted = flaky
        .requests()
        .iter()
        .filter(|r| r.fault.is_some() && r.path.contains("/blobs/"))
        .count();
    assert!(
        faulted >= corpus.unique_blobs().len(),
        "{faulted} blob faults"
    );
    let counts = blob_counts(&bundle);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert_eq!(
        counts.keys().cloned().collect::<BTreeSet<_>>(),
        corpus_digests(&corpus)
    );
    let out = dir.path().join("out");
    let run = sync(&[
        &format!("oci-archive:{}", s(&bundle)),
        &format!("oci-dir:{}", s(&out)),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // A layer that never arrives whole: the export fails and leaves nothing.
    let layer = corpus.images[3]
        .image
        .layers
        .last()
        .unwrap()
        .digest()
        .to_string();
    let broken = FaultProxy::start(
        src.addr(),
        FaultPlan::none().always("GET", &format!("/blobs/{layer}"), Fault::ResetMidBody),
    )
    .unwrap();
    let failed = dir.path().join("failed.tar");
    let run = export_through(&broken, &failed, 3);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("No archive written"), "{}", run.stderr);
    assert!(!failed.exists());
    assert_eq!(
        leftovers(dir.path(), &["flaky.tar", "out"]),
        Vec::<String>::new()
    );

    // Through a pipe the archive cannot be taken back: it ends without its index, and the
    // importer tags nothing.
    let dst = Registry::start().unwrap();
    let ferry_bin = env!("CARGO_BIN_EXE_ferry");
    let mut export = Command::new(ferry_bin)
        .args(["sync", "--plain-http", "--no-cache"])
        .arg(format!("{}/team/", broken.addr()))
        .arg("oci-archive:-")
        .env("FERRY_RETRY_TRIES", "2")
        .env("FERRY_RETRY_BASE_DELAY_MS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let import = Command::new(ferry_bin)
        .args(["sync", "--plain-http", "--no-cache", "oci-archive:-"])
        .arg(format!("{}/team/", dst.addr()))
        .stdin(export.stdout.take().unwrap())
        .output()
        .unwrap();
    let export = export.wait_with_output().unwrap();
    assert_eq!(export.status.code(), Some(1));
    assert_eq!(
        import.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    for repo in ["app", "db"] {
        assert_eq!(
            remote_tags(&dst, &format!("team/{repo}")),
            Vec::<String>::new()
        );
    }
}
