//! `ferry ls`, `inspect`, `digest`, `tag` and `rm` against the real CNCF distribution registry
//! (docker-registry 2.8) on loopback and on OCI layouts.

use ferry_test_support::fixtures::{SIGNATURE_ARTIFACT_TYPE, layer_blob, push, write_oci_layout};
use ferry_test_support::{
    ArtifactBuilder, Content, FakeRegistry, Image, ImageBuilder, Index, IndexBuilder, Registry,
    TokenIssuer,
};
use serde_json::Value;

use crate::support::*;

fn push_to(reg: &Registry, repo: &str, content: &dyn Content, tag: &str) {
    rt().block_on(push(&reg.url(), repo, content, Some(tag), None))
        .unwrap();
}

fn json(run: &Run) -> Value {
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

fn ok(run: Run) -> Run {
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    run
}

fn out_lines(run: &Run) -> Vec<&str> {
    run.stdout.lines().collect()
}

fn sorted(mut lines: Vec<&str>) -> Vec<&str> {
    lines.sort();
    lines
}

fn image(seed: u64) -> Image {
    ImageBuilder::new().layer(1200).seed(seed).build()
}

/// Two platforms sharing a base layer, each with a layer of its own.
fn two_platforms() -> Index {
    let base = layer_blob(77, 1000);
    IndexBuilder::new()
        .image(
            ImageBuilder::new()
                .platform("linux/amd64")
                .shared_layer(base.clone())
                .layer(1300)
                .seed(1),
        )
        .image(
            ImageBuilder::new()
                .platform("linux/arm64/v8")
                .shared_layer(base)
                .layer(1400)
                .seed(2),
        )
        .build()
}

fn digest_of(blob: &ferry_test_support::Blob) -> String {
    blob.digest().to_string()
}

#[test]
fn ls_lists_every_tag_with_the_filters_of_sync_and_the_repositories_of_the_catalog() {
    // The catalog answers two repositories a page, so listing it takes pages.
    let reg = Registry::builder()
        .env("REGISTRY_CATALOG_MAXENTRIES", "2")
        .start()
        .unwrap();
    let r = reg.addr();
    let img = image(3);
    for tag in ["v1.0.0", "v1.2.0", "v1.3.0-rc1", "v2.0.0", "latest"] {
        push_to(&reg, "team/app", &img, tag);
    }
    push_to(&reg, "team/other", &img, "v1");
    push_to(&reg, "zeta/x", &img, "v1");

    // In the registry's order, which distribution 2.8 does not sort.
    let run = ok(ferry(&["ls", "--plain-http", &format!("{r}/team/app")]));
    assert_eq!(
        sorted(out_lines(&run)),
        ["latest", "v1.0.0", "v1.2.0", "v1.3.0-rc1", "v2.0.0"]
    );
    // A range leaves prereleases out, as semver says; then the newest one.
    let run = ok(ferry(&[
        "ls",
        "--plain-http",
        "--semver",
        "^1",
        "--latest",
        "1",
        &format!("{r}/team/app"),
    ]));
    assert_eq!(out_lines(&run), ["v1.2.0"]);
    let run = ok(ferry(&[
        "ls",
        "--plain-http",
        "--tags",
        r"v1\..*",
        "--exclude-tags",
        ".*-rc.*",
        &format!("{r}/team/app"),
    ]));
    assert_eq!(sorted(out_lines(&run)), ["v1.0.0", "v1.2.0"]);
    let doc = json(&ferry(&[
        "ls",
        "--plain-http",
        "--format",
        "json",
        "--latest",
        "1",
        &format!("{r}/team/app"),
    ]));
    assert_eq!(doc["target"], format!("{r}/team/app"));
    assert_eq!(doc["tags"], serde_json::json!(["v2.0.0"]));

    // The catalog, every page, and under a prefix.
    reg.clear_log();
    let run = ok(ferry(&["ls", "--plain-http", &format!("{r}/")]));
    assert_eq!(
        sorted(out_lines(&run)),
        ["team/app", "team/other", "zeta/x"]
    );
    assert!(
        reg.count("GET", "/v2/_catalog") >= 2,
        "{:#?}",
        reg.requests()
    );
    let run = ok(ferry(&["ls", "--plain-http", &format!("{r}/team/")]));
    assert_eq!(sorted(out_lines(&run)), ["team/app", "team/other"]);
    let doc = json(&ferry(&[
        "ls",
        "--plain-http",
        "--format",
        "json",
        &format!("{r}/zeta/"),
    ]));
    assert_eq!(doc["repositories"], serde_json::json!(["zeta/x"]));

    // A repository the registry does not know: exit 3, said once.
    let run = ferry(&["ls", "--plain-http", &format!("{r}/team/nope")]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("repository `{r}/team/nope` not found")),
        "{}",
        run.stderr
    );
    // Filters choose tags, not repositories; a tag is not a listing.
    let run = ferry(&["ls", "--plain-http", "--latest", "1", &format!("{r}/")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = ferry(&["ls", "--plain-http", &format!("{r}/team/app:v1.0.0")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("`ferry ls` lists every tag"),
        "{}",
        run.stderr
    );
}

#[test]
fn ls_follows_every_page_of_a_paged_tag_listing() {
    // This is ferry-test-support's in-process fake registry: docker-registry 2.8 ignores `n`
    // on tag listings and answers them in one page, so paging needs a registry that pages.
    let fake = FakeRegistry::builder().tags_page_limit(3).start().unwrap();
    let img = image(4);
    let tags: Vec<String> = (0..10).map(|i| format!("t{i:02}")).collect();
    for t in &tags {
        fake.put_content("many", &img, Some(t));
    }
    let run = ok(ferry(&[
        "ls",
        "--plain-http",
        &format!("{}/many", fake.addr()),
    ]));
    assert_eq!(out_lines(&run), tags);
    assert_eq!(fake.count("GET", "/tags/list"), 4, "10 tags, 3 a page");
}

#[test]
fn ls_lists_the_tags_of_a_layout_and_the_layouts_of_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (image(5), image(6));
    write_oci_layout(
        &dir.path().join("team/app"),
        &[(Some("v2.0.0"), &a), (Some("v1.0.0"), &b)],
    )
    .unwrap();
    write_oci_layout(&dir.path().join("tool"), &[(Some("latest"), &a)]).unwrap();
    let app = format!("oci:{}", dir.path().join("team/app").display());
    let run = ok(ferry(&["ls", &app]));
    assert_eq!(out_lines(&run), ["v2.0.0", "v1.0.0"], "index.json order");
    let run = ok(ferry(&["ls", "--semver", ">=2", &app]));
    assert_eq!(out_lines(&run), ["v2.0.0"]);
    let run = ok(ferry(&[
        "ls",
        &format!("oci-dir:{}/", dir.path().display()),
    ]));
    assert_eq!(out_lines(&run), ["team/app", "tool"]);
    let run = ferry(&["ls", &format!("oci:{}", dir.path().join("none").display())]);
    assert_eq!(run.code, 3, "{}", run.stderr);
}

#[test]
fn ls_inspect_and_digest_read_archives_and_tag_refuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (image(7), image(8));
    write_oci_layout(
        &dir.path().join("team/app"),
        &[(Some("v2.0.0"), &a), (Some("v1.0.0"), &b)],
    )
    .unwrap();
    write_oci_layout(&dir.path().join("tool"), &[(Some("latest"), &a)]).unwrap();
    let app = format!("oci:{}", dir.path().join("team/app").display());
    // An archive of one repository: `ls` gives its tags.
    let one = dir.path().join("app.tar");
    let one_text = format!("oci-archive:{}", one.display());
    ok(ferry(&[
        "cp",
        &format!("{app}:v2.0.0"),
        &format!("{one_text}:v2.0.0"),
    ]));
    let run = ok(ferry(&["ls", &one_text]));
    assert_eq!(out_lines(&run), ["v2.0.0"]);
    // A bundle of many: `ls` gives its repositories, `digest` and `inspect` read one image.
    let bundle = dir.path().join("bundle.tar");
    let bundle_text = format!("oci-archive:{}", bundle.display());
    ok(ferry(&[
        "sync",
        &format!("oci-dir:{}/", dir.path().display()),
        &bundle_text,
    ]));
    let run = ok(ferry(&["ls", &bundle_text]));
    assert_eq!(sorted(out_lines(&run)), ["team/app", "tool"]);
    let run = ok(ferry(&["ls", "--format", "json", &bundle_text]));
    assert_eq!(
        json(&run)["repositories"],
        serde_json::json!(["team/app", "tool"])
    );
    let expected = ok(ferry(&["digest", &format!("{app}:v1.0.0")]));
    let run = ok(ferry(&[
        "digest",
        &format!("{bundle_text}:team/app:v1.0.0"),
    ]));
    assert_eq!(out_lines(&run), out_lines(&expected));
    assert_eq!(out_lines(&run)[0], digest_of(&b.manifest));
    let run = ok(ferry(&[
        "inspect",
        &format!("{bundle_text}:team/app:v1.0.0"),
    ]));
    let first = out_lines(&run)[0];
    assert!(
        first.starts_with(&format!("Manifest {}", digest_of(&b.manifest))),
        "{}",
        run.stdout
    );
    // Changing an archive is refused, naming it, and it is left as it was.
    let before = std::fs::read(&bundle).unwrap();
    let run = ferry(&["tag", &format!("{bundle_text}:tool:latest"), "again"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        error_line(&run).contains(&format!("oci-archive:{}", bundle.display())),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(&bundle).unwrap(), before);
}

#[test]
fn digest_is_one_head_and_a_platform_one_get_more() {
    let reg = Registry::start().unwrap();
    let r = reg.addr();
    let index = two_platforms();
    push_to(&reg, "app", &index, "multi");
    let reference = format!("{r}/app:multi");

    reg.clear_log();
    let run = ok(ferry(&["digest", "--plain-http", &reference]));
    assert_eq!(out_lines(&run), [digest_of(&index.index)]);
    let seen = reg.requests();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("HEAD", "/v2/app/manifests/multi")
    );

    reg.clear_log();
    let run = ok(ferry(&[
        "digest",
        "--plain-http",
        "--platform",
        "linux/arm64",
        &reference,
    ]));
    assert_eq!(out_lines(&run), [digest_of(&index.images[1].manifest)]);
    assert_eq!(reg.requests().len(), 2, "{:#?}", reg.requests());

    let doc = json(&ferry(&[
        "digest",
        "--plain-http",
        "--format",
        "json",
        "--platform",
        "linux/amd64",
        &reference,
    ]));
    let amd = &index.images[0].manifest;
    assert_eq!(doc["reference"], reference);
    assert_eq!(doc["digest"], digest_of(amd));
    assert_eq!(
        doc["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(doc["size"], amd.bytes.len());
    assert_eq!(doc["platform"], "linux/amd64");

    let run = ferry(&[
        "digest",
        "--plain-http",
        "--platform",
        "linux/s390x",
        &reference,
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("linux/amd64, linux/arm64/v8"),
        "{}",
        run.stderr
    );
    let run = ferry(&["digest", "--plain-http", &format!("{r}/app:nope")]);
    assert_eq!(run.code, 3, "{}", run.stderr);

    // A layout: named by tag, by its only tag, and by digest.
    let dir = tempfile::tempdir().unwrap();
    write_oci_layout(dir.path(), &[(Some("multi"), &index)]).unwrap();
    let layout = format!("oci:{}", dir.path().display());
    for reference in [
        format!("{layout}:multi"),
        layout.clone(),
        format!("{layout}@{}", digest_of(&index.index)),
    ] {
        let run = ok(ferry(&["digest", &reference]));
        assert_eq!(out_lines(&run), [digest_of(&index.index)], "{reference}");
    }
}

/// The tree lines of an image manifest below an index entry: its config and layers.
fn image_lines(
    image: &Image,
    platform: &str,
    prefix: &str,
    last: bool,
    referrers: &[String],
) -> Vec<String> {
    let (connector, below) = if last {
        ("└── ", format!("{prefix}    "))
    } else {
        ("├── ", format!("{prefix}│   "))
    };
    let m = &image.manifest;
    let mut out = vec![format!(
        "{prefix}{connector}Manifest {} {platform}, application/vnd.oci.image.manifest.v1+json, {} bytes",
        m.digest(),
        m.bytes.len()
    )];
    let mut children = vec![format!(
        "Config {} {platform}, created 1970-01-01T00:00:00Z, {} bytes",
        image.config.digest(),
        image.config.bytes.len()
    )];
    for l in &image.layers {
        children.push(format!(
            "Layer {} application/vnd.oci.image.layer.v1.tar, none, {} bytes",
            l.digest(),
            l.bytes.len()
        ));
    }
    children.extend(referrers.iter().cloned());
    let n = children.len();
    for (i, c) in children.into_iter().enumerate() {
        let connector = if i + 1 == n {
            "└── "
        } else {
            "├── "
        };
        out.push(format!("{below}{connector}{c}"));
    }
    out
}

#[test]
fn inspect_shows_an_index_its_platforms_configs_layers_referrers_and_totals() {
    let reg = Registry::start().unwrap();
    let r = reg.addr();
    let index = two_platforms();
    let (amd, arm) = (&index.images[0], &index.images[1]);
    let signature = ArtifactBuilder::signature(&amd.manifest.descriptor, b"signed").build();
    // Pushed by ferry with its referrers: the registry has no referrers API, so ferry keeps
    // the tag-schema index, as it does for every push.
    let dir = tempfile::tempdir().unwrap();
    write_oci_layout(
        &dir.path().join("src"),
        &[(Some("v1"), &index), (None, &signature)],
    )
    .unwrap();
    ok(ferry(&[
        "cp",
        "-r",
        "--plain-http",
        &format!("oci:{}:v1", dir.path().join("src").display()),
        &format!("{r}/app:v1"),
    ]));
    let reference = format!("{r}/app:v1");

    reg.clear_log();
    let run = ok(ferry(&["inspect", "--plain-http", &reference]));
    let sig = &signature.manifest;
    let referrer = format!(
        "Referrer {} {SIGNATURE_ARTIFACT_TYPE}, {} bytes",
        sig.digest(),
        sig.bytes.len()
    );
    let mut expected = vec![format!(
        "Index {} application/vnd.oci.image.index.v1+json, {} bytes",
        index.index.digest(),
        index.index.bytes.len()
    )];
    expected.extend(image_lines(amd, "linux/amd64", "", false, &[referrer]));
    expected.extend(image_lines(arm, "linux/arm64/v8", "", true, &[]));
    let shared = amd.layers[0].bytes.len();
    let compressed: usize = index.index.bytes.len()
        + [amd, arm]
            .iter()
            .map(|i| {
                i.manifest.bytes.len()
                    + i.config.bytes.len()
                    + i.layers.iter().map(|l| l.bytes.len()).sum::<usize>()
            })
            .sum::<usize>()
        + sig.bytes.len();
    expected.push(format!(
        "Total: 3 manifests, 2 configs, 4 layers, 1 referrer: {compressed} bytes compressed, {} bytes unique",
        compressed - shared
    ));
    assert_eq!(out_lines(&run), expected, "{}", run.stdout);
    // The index, its 2 manifests and their 2 configs (layers never), the referrers API asked
    // once (distribution 2.8 has none), then each manifest's tag-schema index.
    let seen = reg.requests();
    let count = |method: &str, part: &str| {
        seen.iter()
            .filter(|q| q.method == method && q.path.contains(part))
            .count()
    };
    assert_eq!(count("GET", "/blobs/"), 2, "{seen:#?}");
    assert_eq!(count("GET", "/referrers/"), 1, "{seen:#?}");
    assert_eq!(count("GET", "/manifests/sha256-"), 3, "{seen:#?}");
    assert_eq!(seen.len(), 1 + 2 + 2 + 1 + 3, "{seen:#?}");

    // One platform's branch.
    let run = ok(ferry(&[
        "inspect",
        "--plain-http",
        "--platform",
        "linux/arm64",
        &reference,
    ]));
    let mut expected = vec![format!(
        "Index {} application/vnd.oci.image.index.v1+json, {} bytes",
        index.index.digest(),
        index.index.bytes.len()
    )];
    expected.extend(image_lines(arm, "linux/arm64/v8", "", true, &[]));
    assert_eq!(out_lines(&run)[..expected.len()], expected[..]);

    // One JSON document.
    let doc = json(&ferry(&[
        "inspect",
        "--plain-http",
        "--format",
        "json",
        &reference,
    ]));
    assert_eq!(doc["reference"], reference);
    assert_eq!(doc["root"]["digest"], digest_of(&index.index));
    let first = &doc["root"]["manifests"][0];
    assert_eq!(first["platform"]["architecture"], "amd64");
    assert_eq!(first["config"]["os"], "linux");
    assert_eq!(first["config"]["created"], "1970-01-01T00:00:00Z");
    assert_eq!(first["layers"][1]["compression"], "none");
    assert_eq!(
        first["referrers"][0]["artifactType"],
        SIGNATURE_ARTIFACT_TYPE
    );
    assert_eq!(doc["root"]["manifests"][1]["config"]["variant"], "v8");
    assert_eq!(doc["totals"]["compressed"], compressed);
    assert_eq!(doc["totals"]["unique"], compressed - shared);
    assert_eq!(doc["totals"]["referrers"], 1);

    // The exact bytes: of the index, of a platform's config.
    let run = ok(ferry(&["inspect", "--plain-http", "--raw", &reference]));
    assert_eq!(run.stdout.as_bytes(), &index.index.bytes[..]);
    let run = ok(ferry(&[
        "inspect",
        "--plain-http",
        "--raw",
        "--platform",
        "linux/amd64",
        &reference,
    ]));
    assert_eq!(run.stdout.as_bytes(), &amd.manifest.bytes[..]);
    let run = ok(ferry(&[
        "inspect",
        "--plain-http",
        "--config",
        "--platform",
        "linux/arm64",
        &reference,
    ]));
    assert_eq!(run.stdout.as_bytes(), &arm.config.bytes[..]);
    let run = ferry(&["inspect", "--plain-http", "--config", &reference]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "it names an index, which has no config (it lists linux/amd64, linux/arm64/v8)"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn inspect_follows_nested_indexes_down_to_eight_levels() {
    let dir = tempfile::tempdir().unwrap();
    let nested = nested_index(40);
    write_oci_layout(dir.path(), &[(Some("nested"), &nested)]).unwrap();
    let layout = format!("oci:{}:nested", dir.path().display());
    let run = ok(ferry(&["inspect", &layout]));
    // The arm/v7 image is three indexes down.
    let v7 = &nested.indexes[1].indexes[0].images[0];
    assert!(
        run.stdout.lines().any(|l| l
            == format!(
                "        └── Manifest {} linux/arm/v7, application/vnd.oci.image.manifest.v1+json, {} bytes",
                v7.manifest.digest(),
                v7.manifest.bytes.len()
            )),
        "{}",
        run.stdout
    );
    let run = ok(ferry(&["inspect", "--platform", "linux/arm/v7", &layout]));
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.contains("Manifest "))
            .count(),
        1,
        "{}",
        run.stdout
    );

    // Nine levels of indexes: the ninth is listed, not fetched.
    let mut deep = IndexBuilder::new().image(ImageBuilder::new().layer(100).seed(9));
    for _ in 0..8 {
        deep = IndexBuilder::new().index(deep, None);
    }
    let deep = deep.build();
    let dir = tempfile::tempdir().unwrap();
    write_oci_layout(dir.path(), &[(Some("deep"), &deep)]).unwrap();
    let run = ok(ferry(&[
        "inspect",
        &format!("oci:{}:deep", dir.path().display()),
    ]));
    let mut ninth = &deep;
    for _ in 0..8 {
        ninth = &ninth.indexes[0];
    }
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains(&ninth.index.digest().to_string()))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(
        line.ends_with("(nested deeper than 8 indexes: not fetched)"),
        "{line}"
    );
    assert!(!run.stdout.contains("Manifest "), "{}", run.stdout);
}

#[test]
fn tag_puts_the_same_manifest_bytes_under_new_tags_and_moves_no_blob() {
    let reg = Registry::start().unwrap();
    let r = reg.addr();
    let img = image(7);
    push_to(&reg, "app", &img, "rc1");

    reg.clear_log();
    let run = ok(ferry(&[
        "tag",
        "--plain-http",
        &format!("{r}/app:rc1"),
        "1.0",
        "latest",
    ]));
    let d = digest_of(&img.manifest);
    assert_eq!(
        out_lines(&run),
        [
            format!("Tagged {r}/app:1.0 {d}"),
            format!("Tagged {r}/app:latest {d}")
        ]
    );
    let seen: Vec<(String, String)> = reg
        .requests()
        .into_iter()
        .map(|q| (q.method, q.path))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", "/v2/app/manifests/rc1"),
            ("PUT", "/v2/app/manifests/1.0"),
            ("PUT", "/v2/app/manifests/latest"),
        ]
        .map(|(m, p)| (m.to_string(), p.to_string()))
    );
    for tag in ["1.0", "latest"] {
        let run = ok(ferry(&[
            "inspect",
            "--plain-http",
            "--raw",
            &format!("{r}/app:{tag}"),
        ]));
        assert_eq!(run.stdout.as_bytes(), &img.manifest.bytes[..], "{tag}");
    }
    let doc = json(&ferry(&[
        "tag",
        "--plain-http",
        "--format",
        "json",
        &format!("{r}/app@{d}"),
        "stable",
    ]));
    assert_eq!(doc["repository"], format!("{r}/app"));
    assert_eq!(doc["digest"], d);
    assert_eq!(doc["tags"], serde_json::json!(["stable"]));

    // A bad tag is refused before anything is asked.
    reg.clear_log();
    let run = ferry(&["tag", "--plain-http", &format!("{r}/app:rc1"), "ok", "-bad"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(reg.requests().is_empty(), "{:#?}", reg.requests());

    // A layout.
    let dir = tempfile::tempdir().unwrap();
    write_oci_layout(dir.path(), &[(Some("v1"), &img)]).unwrap();
    let run = ok(ferry(&[
        "tag",
        &format!("oci:{}:v1", dir.path().display()),
        "v1.0",
    ]));
    assert_eq!(
        out_lines(&run),
        [format!("Tagged oci:{}:v1.0 {d}", dir.path().display())]
    );
    assert_eq!(tags(dir.path()), ["v1", "v1.0"]);
}

#[test]
fn rm_deletes_a_tag_by_prunes_rules_and_a_manifest_only_when_confirmed() {
    let reg = Registry::start().unwrap();
    let r = reg.addr();
    let (a, b) = (image(8), image(9));
    push_to(&reg, "app", &a, "v1");
    push_to(&reg, "app", &a, "v1-alias");
    push_to(&reg, "app", &b, "v2");
    let ls = || {
        let mut tags: Vec<String> = ok(ferry(&["ls", "--plain-http", &format!("{r}/app")]))
            .stdout
            .lines()
            .map(String::from)
            .collect();
        tags.sort();
        tags
    };

    // distribution 2.8 deletes by digest only, which would take `v1-alias` too: refused.
    let run = ferry(&["rm", "--plain-http", &format!("{r}/app:v1")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        run.stderr.trim_end(),
        format!(
            "error: {r}/app does not support deleting tag `v1` alone: the registry deletes only \
             by digest, which would also remove tag `v1-alias` (it names the same manifest `{}`); \
             nothing was deleted; to delete the manifest with every tag naming it, use `ferry rm \
             --manifest`",
            a.manifest.digest()
        )
    );
    assert_eq!(ls(), ["v1", "v1-alias", "v2"]);

    // `v2` alone names its manifest.
    let run = ok(ferry(&["rm", "--plain-http", &format!("{r}/app:v2")]));
    assert_eq!(out_lines(&run), [format!("Deleted tag {r}/app:v2")]);
    assert_eq!(ls(), ["v1", "v1-alias"]);

    // A digest needs --manifest, and --manifest needs --yes without a terminal.
    let by_digest = format!("{r}/app@{}", a.manifest.digest());
    let run = ferry(&["rm", "--plain-http", &by_digest]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("pass `--manifest`"), "{}", run.stderr);
    let run = ferry(&["rm", "--plain-http", "--manifest", &format!("{r}/app:v1")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("so pass `--yes`"), "{}", run.stderr);
    assert_eq!(ls(), ["v1", "v1-alias"]);

    let doc = json(&ferry(&[
        "rm",
        "--plain-http",
        "--manifest",
        "--yes",
        "--format",
        "json",
        &format!("{r}/app:v1"),
    ]));
    assert_eq!(doc["deleted"], "manifest");
    assert_eq!(doc["digest"], digest_of(&a.manifest));
    assert!(ls().is_empty());
    let run = ferry(&["rm", "--plain-http", &format!("{r}/app:v1")]);
    assert_eq!(run.code, 3, "{}", run.stderr);
}

#[test]
fn rm_on_a_terminal_deletes_a_manifest_only_when_the_answer_is_yes() {
    let reg = Registry::start().unwrap();
    let r = reg.addr();
    let a = image(10);
    push_to(&reg, "app", &a, "v1");
    // `script` gives ferry a terminal; the answer is typed into it.
    let on_terminal = |answer: &str| {
        let command = format!(
            "{} rm --plain-http --manifest {r}/app:v1",
            env!("CARGO_BIN_EXE_ferry")
        );
        let mut script = std::process::Command::new("script");
        script
            .args(["-qec", &command, "/dev/null"])
            .env("DOCKER_CONFIG", "/nonexistent/ferry-test-docker-config");
        let out = output_with_stdin(script, answer.as_bytes());
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, shown) = on_terminal("n\n");
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains(&format!(
            "Delete manifest {r}/app@{} and every tag naming it? [y/N]",
            a.manifest.digest()
        )),
        "{shown}"
    );
    assert!(shown.contains("Nothing was deleted."), "{shown}");
    assert_eq!(
        ok(ferry(&["ls", "--plain-http", &format!("{r}/app")])).stdout,
        "v1\n"
    );
    let (code, shown) = on_terminal("y\n");
    assert_eq!(code, Some(0), "{shown}");
    assert!(
        shown.contains(&format!("Deleted manifest {r}/app@{}", a.manifest.digest())),
        "{shown}"
    );
    assert_eq!(
        ok(ferry(&["ls", "--plain-http", &format!("{r}/app")])).stdout,
        ""
    );
}

#[test]
fn rm_names_what_the_registry_refuses_deletes_and_the_delete_right() {
    // Deletes disabled.
    let reg = Registry::builder().delete(false).start().unwrap();
    let r = reg.addr();
    push_to(&reg, "app", &image(11), "v1");
    let run = ferry(&["rm", "--plain-http", &format!("{r}/app:v1")]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "the registry refuses deletes (CNCF distribution: set `storage.delete.enabled: true`)"
        ),
        "{}",
        run.stderr
    );

    // Token auth: alice may pull and push, not delete.
    let issuer = TokenIssuer::builder()
        .user("alice", "pw")
        .allow("alice", "app", &["pull", "push"])
        .start()
        .unwrap();
    let reg = Registry::builder().token_auth(&issuer).start().unwrap();
    let r = reg.addr();
    let src = tempfile::tempdir().unwrap();
    write_oci_layout(src.path(), &[(Some("v1"), &image(12))]).unwrap();
    ok(ferry(&[
        "cp",
        "--plain-http",
        "--to-username",
        "alice",
        "--to-password",
        "pw",
        &format!("oci:{}:v1", src.path().display()),
        &format!("{r}/app:v1"),
    ]));
    let run = ferry(&[
        "rm",
        "--plain-http",
        "--to-username",
        "alice",
        "--to-password",
        "pw",
        &format!("{r}/app:v1"),
    ]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr.contains("may not delete in `app`")
            && run.stderr.contains("repository:app:delete")
            && !run.stderr.contains("pw"),
        "{}",
        run.stderr
    );
}

#[test]
fn rm_in_a_layout_removes_the_tag_or_every_entry_of_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (image(13), image(14));
    write_oci_layout(
        dir.path(),
        &[(Some("v1"), &a), (Some("v1-alias"), &a), (Some("v2"), &b)],
    )
    .unwrap();
    let layout = format!("oci:{}", dir.path().display());
    let run = ok(ferry(&["rm", &format!("{layout}:v1")]));
    assert_eq!(out_lines(&run), [format!("Deleted tag {layout}:v1")]);
    assert_eq!(tags(dir.path()), ["v1-alias", "v2"]);
    let run = ferry(&["rm", &layout]);
    assert_eq!(
        run.code, 2,
        "a layout of several tags names none: {}",
        run.stderr
    );
    let run = ok(ferry(&[
        "rm",
        "--manifest",
        "--yes",
        &format!("{layout}@{}", a.manifest.digest()),
    ]));
    assert_eq!(
        out_lines(&run),
        [format!("Deleted manifest {layout}@{}", a.manifest.digest())]
    );
    assert_eq!(tags(dir.path()), ["v2"]);
    // The blobs stay: the manifest is only no longer listed.
    assert!(blob_file(dir.path(), &a.manifest.descriptor).exists());
}

#[test]
fn every_everyday_command_has_examples_exit_codes_and_completions() {
    let commands = ["ls", "inspect", "digest", "tag", "rm", "login", "logout"];
    for command in commands {
        let run = ok(ferry(&[command, "--help"]));
        for part in [
            "Examples:",
            "Exit codes:",
            "--format <FORMAT>",
            "--plain-http",
            "--ca-cert <FILE>",
        ] {
            assert!(run.stdout.contains(part), "{command} --help lacks {part}");
        }
        let short = ok(ferry(&[command, "-h"]));
        assert!(
            short
                .stdout
                .contains(&format!("See `ferry {command} --help` for examples")),
            "{command} -h"
        );
    }
    // `inspect --config` prints an image's config, so its configuration file is
    // `--config-file`; the others keep `--config`.
    assert!(
        ok(ferry(&["inspect", "--help"]))
            .stdout
            .contains("--config-file <FILE>")
    );
    assert!(
        ok(ferry(&["ls", "--help"]))
            .stdout
            .contains("--config <FILE>")
    );
    for shell in ["bash", "zsh", "fish"] {
        let run = ok(ferry(&["completions", shell]));
        for command in commands {
            assert!(
                run.stdout.contains(command),
                "{shell} completions lack {command}"
            );
        }
        assert!(run.stdout.contains("exclude-tags"), "{shell}");
        assert!(run.stdout.contains("password-stdin"), "{shell}");
    }
}

#[test]
fn the_everyday_commands_take_the_registry_tables_of_ferry_toml() {
    let ca = ferry_test_support::TestCa::new().unwrap();
    let reg = Registry::builder()
        .tls_issued_by(&ca)
        .unwrap()
        .start()
        .unwrap();
    let r = reg.addr();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    ca.write_cert(&ca_file).unwrap();
    write_oci_layout(&dir.path().join("src"), &[(Some("v1"), &image(15))]).unwrap();
    let src = format!("oci:{}:v1", dir.path().join("src").display());
    let ca_flag = ca_file.display().to_string();
    ok(ferry(&[
        "cp",
        "--ca-cert",
        &ca_flag,
        &src,
        &format!("{r}/app:v1"),
    ]));

    // Untrusted: the error names the flag.
    let run = ferry(&["ls", &format!("{r}/app")]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("--ca-cert"), "{}", run.stderr);
    // The registry's table trusts its CA, for every command.
    let config = dir.path().join("ferry.toml");
    std::fs::write(
        &config,
        format!("[registries.\"{r}\"]\nca_cert = \"{ca_flag}\"\n"),
    )
    .unwrap();
    let cfg = config.display().to_string();
    let run = ok(ferry(&["ls", "--config", &cfg, &format!("{r}/app")]));
    assert_eq!(out_lines(&run), ["v1"]);
    let run = ok(ferry(&["digest", "--config", &cfg, &format!("{r}/app:v1")]));
    assert_eq!(out_lines(&run), [digest_of(&image(15).manifest)]);
    // `inspect --config` prints the image's config; its configuration file is --config-file.
    let run = ok(ferry(&[
        "inspect",
        "--config-file",
        &cfg,
        "--config",
        &format!("{r}/app:v1"),
    ]));
    assert_eq!(run.stdout.as_bytes(), &image(15).config.bytes[..]);
    let run = ok(ferry_with(
        &["tag", &format!("{r}/app:v1"), "v2"],
        &[("FERRY_CONFIG", &cfg)],
        None,
    ));
    assert_eq!(run.stdout.lines().count(), 1);
}
