//! `ferry sync` between real registries and directories of layouts: catalog and tag paging,
//! each blob uploaded once, the request bound of a sync where nothing changed, moved tags,
//! `--immutable`, filters, pruning and its guards, and a broken image among good ones.

use std::collections::{BTreeSet, HashMap};

use ferry_test_support::fixtures::{layer_blob, push, write_oci_layout};
use ferry_test_support::{
    Blob, Content, FakeRegistry, Fault, FaultPlan, FaultProxy, Image, ImageBuilder, LoggedRequest,
    Registry, TokenIssuer, http, skopeo,
};

use crate::support::*;

/// One image of a corpus.
pub(crate) struct Img {
    pub repo: String,
    pub tag: String,
    pub image: Image,
}

/// Images in `repos` × `tags`: every image has the `base` layer, the tags of a repository
/// share a layer, and each image has a layer of its own.
pub(crate) struct Corpus {
    pub base: Blob,
    pub images: Vec<Img>,
}

impl Corpus {
    pub fn new(repos: &[&str], tags: &[&str], seed: u64, own_size: usize) -> Self {
        let base = layer_blob(seed, 96 * 1024);
        let mut images = Vec::new();
        for (r, repo) in repos.iter().enumerate() {
            let shared = layer_blob(seed * 1000 + r as u64 + 1, 48 * 1024);
            for (t, tag) in tags.iter().enumerate() {
                let image = ImageBuilder::new()
                    .shared_layer(base.clone())
                    .shared_layer(shared.clone())
                    .layer(own_size)
                    .seed(seed * 100_000 + (r * 100 + t) as u64)
                    .build();
                images.push(Img {
                    repo: repo.to_string(),
                    tag: tag.to_string(),
                    image,
                });
            }
        }
        Self { base, images }
    }

    /// Every distinct blob (configs and layers).
    pub fn unique_blobs(&self) -> BTreeSet<String> {
        self.images
            .iter()
            .flat_map(|i| i.image.all())
            .filter(|b| !b.is_manifest())
            .map(|b| b.digest().to_string())
            .collect()
    }

    /// Pushes every image to `prefix` + its repository.
    pub fn push_to(&self, reg: &Registry, prefix: &str) {
        rt().block_on(async {
            for i in &self.images {
                push(
                    &reg.url(),
                    &format!("{prefix}{}", i.repo),
                    &i.image,
                    Some(&i.tag),
                    None,
                )
                .await
                .unwrap();
            }
        });
    }
}

/// The digest of the manifest `repo:tag` of the registry at `addr`, as skopeo reads it.
pub(crate) fn remote_digest(addr: &str, repo_tag: &str) -> String {
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{addr}/{repo_tag}"),
    ])
    .unwrap_or_else(|e| panic!("skopeo cannot read {addr}/{repo_tag}: {e}"));
    ferry_core::sha256(&raw.stdout).to_string()
}

/// The tags of `repo` in the registry, sorted.
pub(crate) fn remote_tags(reg: &Registry, repo: &str) -> Vec<String> {
    let url = format!("{}/v2/{repo}/tags/list", reg.url());
    let answer = rt().block_on(http("GET", &url, &[], Vec::new())).unwrap();
    if answer.status == 404 {
        return Vec::new();
    }
    let mut tags: Vec<String> = answer.json().unwrap()["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    tags.sort();
    tags
}

/// How many times each blob was committed by a `PUT …?digest=`.
pub(crate) fn uploads(requests: &[LoggedRequest]) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for r in requests {
        if r.method == "PUT"
            && r.path.contains("/blobs/uploads/")
            && (200..300).contains(&r.status)
            && let Some(d) = r.query_param("digest")
        {
            *out.entry(d).or_default() += 1;
        }
    }
    out
}

/// How many times each blob was read (`GET …/blobs/<digest>` answered 200).
pub(crate) fn blob_reads(requests: &[LoggedRequest]) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for r in requests {
        if r.method == "GET" && r.status == 200 && r.path.contains("/blobs/sha256:") {
            let digest = r.path.rsplit('/').next().unwrap().to_string();
            *out.entry(digest).or_default() += 1;
        }
    }
    out
}

pub(crate) fn sync(args: &[&str]) -> Run {
    let mut all = vec!["sync"];
    all.extend_from_slice(args);
    ferry(&all)
}

fn lines<'a>(run: &'a Run, verb: &str) -> Vec<&'a str> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with(&format!("{verb} ")))
        .collect()
}

#[test]
fn a_prefix_is_mirrored_page_by_page_each_blob_moved_once_and_a_resync_stays_within_its_bound() {
    // Three repositories per catalog page: seven under the prefix take three pages.
    let src = Registry::builder()
        .env("REGISTRY_CATALOG_MAXENTRIES", "3")
        .start()
        .unwrap();
    let dst = Registry::start().unwrap();
    let repos = ["r0", "r1", "r2", "r3", "r4", "r5", "r6"];
    let tags = ["1.0.0", "1.1.0", "2.0.0"];
    let corpus = Corpus::new(&repos, &tags, 7, 8 * 1024);
    corpus.push_to(&src, "team/");
    Corpus::new(&["x"], &["v1"], 99, 1024).push_to(&src, "other/");
    src.clear_log();
    dst.clear_log();

    let from = format!("{}/team/", src.addr());
    let to = format!("{}/mirror/", dst.addr());
    let run = sync(&["--plain-http", &from, &to]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        lines(&run, "Synced").len(),
        repos.len() * tags.len(),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("21 synced, 0 unchanged of 21 images in 7 repositories"),
        "{}",
        run.stdout
    );
    for i in &corpus.images {
        assert_eq!(
            remote_digest(dst.addr(), &format!("mirror/{}:{}", i.repo, i.tag)),
            i.image.manifest.digest().to_string()
        );
    }
    assert!(
        remote_tags(&dst, "mirror/x").is_empty(),
        "outside the prefix"
    );
    // The catalog was read page by page (the first request asked a page size the registry
    // refuses, and the registry's own then applied).
    let catalog = src.count("GET", "/v2/_catalog");
    assert!(catalog >= 4, "{catalog} catalog requests");
    // Each blob read once from the source and uploaded once to the destination; the base
    // layer reached the other six repositories by cross-repository mounts.
    let reads = blob_reads(&src.requests());
    let unique = corpus.unique_blobs();
    assert_eq!(reads.len(), unique.len());
    assert!(reads.values().all(|n| *n == 1), "{reads:?}");
    let ups = uploads(&dst.requests());
    assert_eq!(ups.keys().cloned().collect::<BTreeSet<_>>(), unique);
    assert!(ups.values().all(|n| *n == 1), "{ups:?}");
    let base = corpus.base.digest().to_string();
    let mounts = dst
        .requests()
        .iter()
        .filter(|r| {
            r.method == "POST"
                && r.status == 201
                && r.query_param("mount").as_deref() == Some(base.as_str())
        })
        .count();
    assert_eq!(mounts, repos.len() - 1);

    // Nothing changed: per repository the source's tag listing (the destination, holding the
    // first tag, is not listed), per tag one HEAD on each side, plus the catalog's pages; no
    // GET of a manifest, nothing written.
    src.clear_log();
    dst.clear_log();
    let again = sync(&["--plain-http", &from, &to]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(lines(&again, "Unchanged").len(), 21);
    let (r, t) = (repos.len(), repos.len() * tags.len());
    let src_requests = src.requests();
    let dst_requests = dst.requests();
    let pages = src.count("GET", "/v2/_catalog");
    assert!(
        src_requests.len() + dst_requests.len() <= r + 2 * t + pages,
        "{} + {} requests for {r} repositories and {t} tags: {src_requests:#?} {dst_requests:#?}",
        src_requests.len(),
        dst_requests.len()
    );
    assert_eq!(src.count("GET", "/manifests/"), 0);
    assert!(
        dst_requests.iter().all(|q| q.method == "HEAD"),
        "the destination is asked nothing but HEADs: {dst_requests:#?}"
    );

    // Every tag immutable: only the listings.
    src.clear_log();
    dst.clear_log();
    let immutable = sync(&["--plain-http", "--immutable", ".*", &from, &to]);
    assert_eq!(immutable.code, 0, "{}", immutable.stderr);
    let pages = src.count("GET", "/v2/_catalog");
    assert!(src.requests().len() + dst.requests().len() <= 2 * r + pages);

    // One tag moved upstream: only its new blobs (its own layer and config) are uploaded.
    let moved = ImageBuilder::new()
        .shared_layer(corpus.base.clone())
        .shared_layer(corpus.images[3].image.layers[1].clone())
        .layer(8 * 1024)
        .seed(424_242)
        .build();
    rt().block_on(push(&src.url(), "team/r1", &moved, Some("1.1.0"), None))
        .unwrap();
    dst.clear_log();
    let after = sync(&["--plain-http", &from, &to]);
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert_eq!(lines(&after, "Synced").len(), 1, "{}", after.stdout);
    assert_eq!(lines(&after, "Unchanged").len(), 20);
    let ups: BTreeSet<String> = uploads(&dst.requests()).into_keys().collect();
    let expected: BTreeSet<String> = [moved.config.digest(), moved.layers[2].digest()]
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(ups, expected);
    assert_eq!(
        remote_digest(dst.addr(), "mirror/r1:1.1.0"),
        moved.manifest.digest().to_string()
    );
}

#[test]
fn tags_listed_over_several_pages_are_all_synced() {
    // distribution 2.8 answers every tag in one page whatever `n` asks; the fake pages by
    // four, with `Link` headers, as Docker Hub, GHCR and distribution 3 do.
    let fake = FakeRegistry::builder().tags_page_limit(4).start().unwrap();
    let dst = Registry::start().unwrap();
    let tags: Vec<String> = (0..11).map(|i| format!("v{i}")).collect();
    let base = layer_blob(5, 10_000);
    for (i, tag) in tags.iter().enumerate() {
        let image = ImageBuilder::new()
            .shared_layer(base.clone())
            .layer(500)
            .seed(i as u64 + 1)
            .build();
        fake.put_content("team/app", &image, Some(tag));
    }
    let run = sync(&[
        "--plain-http",
        &format!("{}/team/app", fake.addr()),
        &format!("{}/team/app", dst.addr()),
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let mut expected = tags.clone();
    expected.sort();
    assert_eq!(remote_tags(&dst, "team/app"), expected);
    assert_eq!(fake.count("GET", "/tags/list"), 3, "11 tags in pages of 4");
}

#[test]
fn filters_keep_the_tags_asked_for_and_verbose_output_names_the_rest() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let names = [
        "1.0.0",
        "1.1.0",
        "1.2.0-rc.1",
        "2.0.0",
        "v2.1.0",
        "latest",
        "dev-5",
    ];
    let images: Vec<Image> = (0..names.len())
        .map(|i| ImageBuilder::new().layer(300).seed(i as u64 + 50).build())
        .collect();
    let contents: Vec<(Option<&str>, &dyn Content)> = names
        .iter()
        .zip(&images)
        .map(|(t, i)| (Some(*t), i as &dyn Content))
        .collect();
    write_oci_layout(&src, &contents).unwrap();
    let dst = work.path().join("dst");
    let run = sync(&[
        "-v",
        "--tags",
        ".*[0-9].*",
        "--exclude-tags",
        ".*-rc.*",
        "--semver",
        ">=1.1",
        "--latest",
        "2",
        &format!("oci:{}", src.display()),
        &format!("oci:{}", dst.display()),
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let mut kept = tags(&dst);
    kept.sort();
    assert_eq!(kept, ["2.0.0", "v2.1.0"]);
    for (tag, why) in [
        ("latest", "--tags"),
        ("1.2.0-rc.1", "--exclude-tags"),
        ("dev-5", "--semver"),
        ("1.0.0", "--semver"),
        ("1.1.0", "--latest"),
    ] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with("Filtered ") && l.contains(&format!(":{tag} ({why})"))),
            "{tag}: {}",
            run.stdout
        );
    }
    // Without -v, filtered tags are not listed.
    let quiet = sync(&[
        "--tags",
        "2.*",
        &format!("oci:{}", src.display()),
        &format!("oci:{}", work.path().join("dst2").display()),
    ]);
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert!(!quiet.stdout.contains("Filtered"), "{}", quiet.stdout);
    // A bad pattern is bad usage, naming it.
    let bad = sync(&[
        "--tags",
        "(",
        &format!("oci:{}", src.display()),
        &format!("oci:{}", work.path().join("dst3").display()),
    ]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("`tags`") && bad.stderr.contains("`(`"),
        "{}",
        bad.stderr
    );
}

#[test]
fn prune_deletes_tags_gone_upstream_but_not_beyond_its_guard_after_a_broken_listing_or_when_another_tag_needs_the_manifest()
 {
    // Two repositories per catalog page.
    let src = Registry::builder()
        .env("REGISTRY_CATALOG_MAXENTRIES", "2")
        .start()
        .unwrap();
    let dst = Registry::start().unwrap();
    let corpus = Corpus::new(&["a", "b", "c"], &["v1", "v2"], 11, 2048);
    corpus.push_to(&src, "team/");
    let v1 = &corpus.images[0].image;
    // The mirror of `a` has three tags gone upstream, and `alias`, which names the same
    // manifest as `v1`.
    let gone = Corpus::new(&["a"], &["old1", "old2", "old3"], 12, 2048);
    gone.push_to(&dst, "mirror/");
    rt().block_on(async {
        push(&dst.url(), "mirror/a", v1, Some("v1"), None)
            .await
            .unwrap();
        push(&dst.url(), "mirror/a", v1, Some("alias"), None)
            .await
            .unwrap();
    });
    let from = format!("{}/team/", src.addr());
    let to = format!("{}/mirror/", dst.addr());

    // Four tags to delete, the guard allows three: nothing is deleted.
    let guarded = sync(&["--plain-http", "--prune", "--prune-max", "3", &from, &to]);
    assert_eq!(guarded.code, 1, "{}", guarded.stdout);
    assert!(guarded.stdout.contains("--prune-max"), "{}", guarded.stdout);
    assert_eq!(
        remote_tags(&dst, "mirror/a"),
        ["alias", "old1", "old2", "old3", "v1", "v2"]
    );

    // The catalog's second page fails: the listing is incomplete, nothing is pruned.
    let proxy = FaultProxy::start(
        src.addr(),
        FaultPlan::none().always("GET", "_catalog?last=", Fault::Status(500)),
    )
    .unwrap();
    let broken = sync(&[
        "--plain-http",
        "--prune",
        "--retry-tries",
        "1",
        &format!("{}/team/", proxy.addr()),
        &to,
    ]);
    assert_eq!(broken.code, 1, "{}", broken.stdout);
    assert!(broken.stdout.contains("Not pruned"), "{}", broken.stdout);
    assert!(broken.stdout.contains("Failed"), "{}", broken.stdout);
    assert_eq!(
        remote_tags(&dst, "mirror/a"),
        ["alias", "old1", "old2", "old3", "v1", "v2"]
    );

    // A whole listing: the three old tags go; `alias` cannot go alone on a registry that
    // deletes by digest only (it would take `v1` with it), so it is refused, and `v1` stays.
    let pruned = sync(&["--plain-http", "--prune", &from, &to]);
    assert_eq!(pruned.code, 1, "{}", pruned.stdout);
    assert_eq!(lines(&pruned, "Pruned").len(), 3, "{}", pruned.stdout);
    assert!(
        pruned
            .stdout
            .lines()
            .any(|l| l.starts_with("Failed") && l.contains("alias") && l.contains("`v1`")),
        "{}",
        pruned.stdout
    );
    assert_eq!(remote_tags(&dst, "mirror/a"), ["alias", "v1", "v2"]);
    assert_eq!(
        remote_digest(dst.addr(), "mirror/a:v1"),
        v1.manifest.digest().to_string()
    );
}

#[test]
fn prune_under_token_auth_asks_for_the_delete_action_and_without_it_leaves_the_tag() {
    // The mirror's robot may pull and push under mirror/, not delete; the admin may delete.
    let issuer = TokenIssuer::builder()
        .user("robot", "robotpw")
        .allow("robot", "mirror/*", &["pull", "push"])
        .user("admin", "adminpw")
        .allow("admin", "*", &["*"])
        .start()
        .unwrap();
    let src = Registry::start().unwrap();
    let dst = Registry::builder().token_auth(&issuer).start().unwrap();
    let corpus = Corpus::new(&["a"], &["v1"], 41, 2048);
    corpus.push_to(&src, "team/");
    // The mirror holds `old`, which is gone upstream.
    let old = ImageBuilder::new().layers(&[1000]).seed(42).build();
    let admin = format!(
        "Bearer {}",
        issuer.token_for(Some("admin"), &["repository:mirror/a:pull,push"])
    );
    rt().block_on(push(
        &dst.url(),
        "mirror/a",
        &old,
        Some("old"),
        Some(&admin),
    ))
    .unwrap();
    let tags = || {
        let url = format!("{}/v2/mirror/a/tags/list", dst.url());
        let answer = rt()
            .block_on(http("GET", &url, &[("authorization", &admin)], Vec::new()))
            .unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        let mut tags: Vec<String> = answer.json().unwrap()["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        tags.sort();
        tags
    };
    let from = format!("{}/team/", src.addr());
    let to = format!("{}/mirror/", dst.addr());
    let as_user = |user: &str, password: &str| {
        sync(&[
            "--plain-http",
            "--prune",
            "--to-username",
            user,
            "--to-password",
            password,
            &from,
            &to,
        ])
    };

    // The robot: `v1` is synced, the deletion of `old` is refused and said, the tag stays.
    let refused = as_user("robot", "robotpw");
    // Exit 4: the destination refused the credentials (for this).
    assert_eq!(refused.code, 4, "{}\n{}", refused.stdout, refused.stderr);
    assert_eq!(lines(&refused, "Synced").len(), 1, "{}", refused.stdout);
    assert!(lines(&refused, "Pruned").is_empty(), "{}", refused.stdout);
    // The line says what is missing (the delete right), not to log in.
    assert!(
        refused.stdout.lines().any(|l| l.starts_with("Failed")
            && l.contains(":old")
            && l.contains("may not delete in `mirror/a`")
            && l.contains("repository:mirror/a:delete")
            && !l.contains("log in")),
        "{}",
        refused.stdout
    );
    assert!(!refused.stdout.contains("robotpw") && !refused.stderr.contains("robotpw"));
    assert_eq!(tags(), ["old", "v1"]);
    assert!(
        issuer
            .requests()
            .iter()
            .any(|t| t.asks_for("robot", "delete")),
        "no token was asked for the delete action: {:#?}",
        issuer.requests()
    );

    // The admin: `old` goes, `v1` stays and still names the source's manifest.
    let pruned = as_user("admin", "adminpw");
    assert_eq!(pruned.code, 0, "{}\n{}", pruned.stdout, pruned.stderr);
    assert_eq!(lines(&pruned, "Pruned").len(), 1, "{}", pruned.stdout);
    assert_eq!(tags(), ["v1"]);
}

#[test]
fn a_broken_image_fails_alone_named_with_its_reason_and_leaves_no_tag() {
    let src = Registry::start().unwrap();
    let dst = Registry::start().unwrap();
    let corpus = Corpus::new(&["app"], &["good1", "broken", "good2"], 21, 4096);
    corpus.push_to(&src, "team/");
    // `broken`'s own layer is deleted from the source: its manifest names a blob the source
    // does not have.
    let broken = &corpus.images[1].image;
    let missing = broken.layers[2].digest().to_string();
    let url = format!("{}/v2/team/app/blobs/{missing}", src.url());
    assert_eq!(
        rt().block_on(http("DELETE", &url, &[], Vec::new()))
            .unwrap()
            .status,
        202
    );

    let run = sync(&[
        "--plain-http",
        &format!("{}/team/app", src.addr()),
        &format!("{}/mirror/app", dst.addr()),
    ]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(lines(&run, "Synced").len(), 2, "{}", run.stdout);
    let failed = lines(&run, "Failed");
    assert_eq!(failed.len(), 1, "{}", run.stdout);
    assert!(
        failed[0].contains(":broken => ") && failed[0].contains(&missing),
        "{}",
        failed[0]
    );
    assert!(run.stdout.contains("Failures (1):"), "{}", run.stdout);
    assert_eq!(remote_tags(&dst, "mirror/app"), ["good1", "good2"]);

    // The JSON report names it too, with its kind.
    let json = sync(&[
        "--plain-http",
        "--format",
        "json",
        &format!("{}/team/app", src.addr()),
        &format!("{}/mirror/app", dst.addr()),
    ]);
    assert_eq!(json.code, 1);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let failed: Vec<&serde_json::Value> = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["outcome"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["tag"], "broken");
    assert_eq!(failed[0]["failure"], "not-found");
    assert_eq!(report["totals"]["unchanged"], 2);
    assert!(
        report["registries"][dst.addr()]["requests"]
            .as_u64()
            .unwrap()
            > 0
    );
}

/// A repository name typed wrong fails as one line naming the repository and what to check,
/// said once on stdout (and in the summary of failures), not again as a log line on stderr.
#[test]
fn a_mistyped_repository_is_named_once_with_what_to_check() {
    let src = Registry::start().unwrap();
    let dst = Registry::start().unwrap();
    let corpus = Corpus::new(&["app"], &["v1"], 23, 1024);
    corpus.push_to(&src, "team/");

    let typo = format!("{}/team/ap", src.addr());
    let run = sync(&["--plain-http", &typo, &format!("{}/mirror/app", dst.addr())]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let failed = lines(&run, "Failed");
    assert_eq!(failed.len(), 1, "{}", run.stdout);
    assert!(
        failed[0].contains(&format!("repository `{typo}` not found"))
            && failed[0].ends_with("check the repository name"),
        "{}",
        failed[0]
    );
    assert!(
        !run.stderr.contains("not found"),
        "the failure was said again on stderr: {}",
        run.stderr
    );
}

#[test]
fn entries_of_a_mirror_file_run_together_and_a_bad_entry_is_named_with_its_key() {
    let src = Registry::start().unwrap();
    let dst = Registry::start().unwrap();
    let corpus = Corpus::new(&["app", "lib"], &["v1", "v2"], 71, 1024);
    corpus.push_to(&src, "team/");
    let work = tempfile::tempdir().unwrap();
    let export = work.path().join("export");
    let file = work.path().join("mirror.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[defaults]
images = 2

[registries."{src}"]
plain_http = true
[registries."{dst}"]
plain_http = true

[[sync]]
source = "{src}/team/app"
destination = "{dst}/mirror/app"
tags = "v1"

[[sync]]
source = "{src}/team/"
destination = "oci-dir:{export}/"
exclude_tags = ["v1"]
"#,
            src = src.addr(),
            dst = dst.addr(),
            export = export.display()
        ),
    )
    .unwrap();
    let run = sync(&["--file", &file.display().to_string()]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(remote_tags(&dst, "mirror/app"), ["v1"]);
    assert_eq!(tags(&export.join("app")), ["v2"]);
    assert_eq!(tags(&export.join("lib")), ["v2"]);
    // The same file as the configuration runs the same entries.
    let again = ferry(&["sync", "--config", &file.display().to_string()]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(lines(&again, "Unchanged").len(), 3, "{}", again.stdout);

    // An unknown key, and a bad value: usage errors naming the entry and the key.
    let bad = work.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "[[sync]]\nsource = \"{}/team/app\"\ndestination = \"oci:{}\"\ntagz = \"v1\"\n",
            src.addr(),
            work.path().join("x").display()
        ),
    )
    .unwrap();
    let run = sync(&["--file", &bad.display().to_string()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("tagz") && run.stderr.contains("line 4"),
        "{}",
        run.stderr
    );
    std::fs::write(
        &bad,
        format!(
            "[[sync]]\nsource = \"{0}/team/app\"\ndestination = \"oci:{1}/x\"\n\n[[sync]]\nsource = \"{0}/team/lib\"\ndestination = \"oci:{1}/y\"\ntags = \"v[\"\n",
            src.addr(),
            work.path().display()
        ),
    )
    .unwrap();
    let run = sync(&["--file", &bad.display().to_string()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("[[sync]] entry 2") && run.stderr.contains("key `tags`"),
        "{}",
        run.stderr
    );
    assert!(
        !work.path().join("x").exists(),
        "nothing is opened before every entry is checked"
    );
    // Many repositories into one is refused.
    let run = sync(&[
        "--plain-http",
        &format!("{}/team/", src.addr()),
        &format!("{}/one", dst.addr()),
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("end it with `/`"), "{}", run.stderr);
}

#[test]
fn a_destination_refusing_the_credentials_exits_4() {
    let src = Registry::start().unwrap();
    let dst = Registry::builder().user("alice", "s3cret").start().unwrap();
    Corpus::new(&["app"], &["v1"], 81, 1024).push_to(&src, "team/");
    let run = sync(&[
        "--plain-http",
        &format!("{}/team/app", src.addr()),
        &format!("{}/mirror/app", dst.addr()),
    ]);
    assert_eq!(run.code, 4, "{}\n{}", run.stdout, run.stderr);
    assert!(lines(&run, "Failed").len() == 1, "{}", run.stdout);
    let ok = sync(&[
        "--plain-http",
        "--to-username",
        "alice",
        "--to-password",
        "s3cret",
        &format!("{}/team/app", src.addr()),
        &format!("{}/mirror/app", dst.addr()),
    ]);
    assert_eq!(ok.code, 0, "{}\n{}", ok.stdout, ok.stderr);
}

#[test]
fn referrers_platforms_and_dry_runs() {
    use ferry_test_support::{ArtifactBuilder, IndexBuilder};
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let image = ImageBuilder::new().layer(1000).seed(91).build();
    let first = ArtifactBuilder::signature(image.descriptor(), b"first").build();
    let index = IndexBuilder::new()
        .platforms(&["linux/amd64", "linux/arm64"], &[500], 92)
        .build();
    write_oci_layout(
        &src,
        &[
            (Some("v1"), &image),
            (None, &first),
            (Some("multi"), &index),
        ],
    )
    .unwrap();
    let dst = Registry::start().unwrap();
    let from = format!("oci:{}", src.display());
    let to = format!("{}/mirror/app", dst.addr());

    // A dry run writes nothing.
    dst.clear_log();
    let dry = sync(&["--plain-http", "--dry-run", &from, &to]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(lines(&dry, "Planned").len(), 2, "{}", dry.stdout);
    assert!(
        dst.requests()
            .iter()
            .all(|r| r.method == "GET" || r.method == "HEAD")
    );
    assert!(remote_tags(&dst, "mirror/app").is_empty());

    // With -r the signature comes along; with --platform the index's arm64 image is tagged.
    let run = sync(&[
        "--plain-http",
        "-r",
        "--platform",
        "linux/arm64",
        &from,
        &to,
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let arm64 = &index.images[1];
    assert_eq!(
        remote_digest(dst.addr(), "mirror/app:multi"),
        arm64.manifest.digest().to_string()
    );
    let referrers_tag = format!("sha256-{}", image.descriptor().digest().digest());
    let listed = |dst: &Registry| -> Vec<String> {
        let url = format!("{}/v2/mirror/app/manifests/{referrers_tag}", dst.url());
        let answer = rt()
            .block_on(http(
                "GET",
                &url,
                &[("accept", ferry_core::model::OCI_INDEX)],
                Vec::new(),
            ))
            .unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        answer.json().unwrap()["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(listed(&dst), [first.manifest.digest().to_string()]);

    // Nothing changed: unchanged, platform compared by the selected image.
    let again = sync(&[
        "--plain-http",
        "-r",
        "--platform",
        "linux/arm64",
        &from,
        &to,
    ]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(lines(&again, "Unchanged").len(), 2, "{}", again.stdout);

    // A new signature of an unchanged image is brought over.
    let second = ArtifactBuilder::signature(image.descriptor(), b"second").build();
    write_oci_layout(
        &src,
        &[
            (Some("v1"), &image),
            (None, &first),
            (None, &second),
            (Some("multi"), &index),
        ],
    )
    .unwrap();
    let more = sync(&[
        "--plain-http",
        "-r",
        "--platform",
        "linux/arm64",
        &from,
        &to,
    ]);
    assert_eq!(more.code, 0, "{}", more.stderr);
    assert!(
        more.stdout
            .lines()
            .any(|l| l.starts_with("Synced ") && l.contains(":v1 ")),
        "{}",
        more.stdout
    );
    let mut got = listed(&dst);
    got.sort();
    let mut want = vec![
        first.manifest.digest().to_string(),
        second.manifest.digest().to_string(),
    ];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn the_first_images_copy_while_the_catalog_is_still_being_listed() {
    let src = Registry::builder()
        .env("REGISTRY_CATALOG_MAXENTRIES", "2")
        .start()
        .unwrap();
    let dst = Registry::start().unwrap();
    Corpus::new(&["a", "b", "c", "d", "e", "f"], &["v1"], 101, 1024).push_to(&src, "team/");
    // Later catalog pages trickle out.
    let proxy = FaultProxy::start(
        src.addr(),
        FaultPlan::none().always(
            "GET",
            "_catalog?last=",
            Fault::SlowBody {
                chunk: 1,
                pause: std::time::Duration::from_millis(20),
            },
        ),
    )
    .unwrap();
    let run = sync(&[
        "--plain-http",
        &format!("{}/team/", proxy.addr()),
        &format!("{}/mirror/", dst.addr()),
    ]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let order: Vec<String> = proxy
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let first_blob = order
        .iter()
        .position(|r| r.starts_with("GET /v2/team/a/blobs/"))
        .unwrap();
    let last_page = order
        .iter()
        .rposition(|r| r.contains("_catalog?last="))
        .unwrap();
    assert!(first_blob < last_page, "{order:#?}");
}
