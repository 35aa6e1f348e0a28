//! Downloads that survive broken connections and capped links, through the fault proxy in
//! front of the real registry: a blob's body cut midway is asked again from the byte reached,
//! a big blob comes in parallel ranges, a registry that ignores `Range` is read whole, and no
//! blob is ever committed corrupt; an upload in chunks cut partway goes on from the
//! registry's offset.

use std::path::Path;

use ferry_test_support::fixtures::push;
use ferry_test_support::{Fault, FaultPlan, FaultProxy, Image, ImageBuilder, Registry};

use crate::support::*;

/// How many steps of the copy were tried again (a download resumed within counts none).
fn retries(run: &Run) -> u64 {
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    report["retries"].as_u64().unwrap()
}

/// One big layer (and a small config).
fn image(size: usize, seed: u64) -> Image {
    ImageBuilder::new().layers(&[size]).seed(seed).build()
}

fn source(content: &Image) -> Registry {
    let reg = Registry::start().unwrap();
    rt().block_on(push(&reg.url(), "src/app", content, Some("v1"), None))
        .unwrap();
    reg
}

/// Copies `{proxy}/src/app:v1` into a fresh layout under `dir`, with `env`; checks every blob
/// file hashes to its name.
fn pull(proxy: &FaultProxy, dir: &Path, env: &[(&str, &str)]) -> Run {
    let layout = dir.join("out");
    let run = ferry_with(
        &[
            "cp",
            "--plain-http",
            "--no-cache",
            "--format",
            "json",
            &format!("{}/src/app:v1", proxy.addr()),
            &format!("oci:{}:v1", layout.display()),
        ],
        env,
        None,
    );
    if run.code == 0 {
        // Every blob file hashes to its name (the helper panics on one that does not).
        assert_eq!(
            blobs_match_their_names(&layout).len(),
            3,
            "config, layer, manifest"
        );
    }
    run
}

fn blob_gets(proxy: &FaultProxy, content: &Image) -> usize {
    let layer = content.layers[0].descriptor.digest().to_string();
    proxy.count("GET", &format!("/blobs/{layer}"))
}

/// Ranges off (a threshold above any blob), so the body is one stream.
/// A first range is never fast enough for the rest to come as one stream: on loopback every
/// range would be.
const ALWAYS_RANGES: &str = "18446744073709551615";

const ONE_STREAM: &[(&str, &str)] = &[("FERRY_RANGE_THRESHOLD", "18446744073709551615")];

#[test]
fn a_body_cut_midway_is_resumed_from_the_byte_reached() {
    let size = 6 * 1024 * 1024;
    let content = image(size, 51);
    let reg = source(&content);
    let layer = content.layers[0].descriptor.digest().to_string();
    for fault in [Fault::ResetMidBody, Fault::TruncatedBody] {
        let plan = FaultPlan::none().first("GET", &format!("/blobs/{layer}"), 1, fault);
        let proxy = FaultProxy::start(reg.addr(), plan).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let run = pull(&proxy, dir.path(), ONE_STREAM);
        assert_eq!(run.code, 0, "{fault}: {}", run.stderr);
        assert_eq!(
            blob_gets(&proxy, &content),
            2,
            "{fault}: one cut, one resumed"
        );
        // The cut half, then the other half: the blob's bytes once, and at most 1 MiB again.
        let sent = proxy.bytes_sent("GET");
        assert!(
            sent <= size as u64 + 1024 * 1024 + 64 * 1024,
            "{fault}: {sent} bytes sent for a {size}-byte blob"
        );
    }
}

#[test]
fn a_registry_that_ignores_range_is_read_whole_and_the_delivered_bytes_skipped() {
    let size = 3 * 1024 * 1024;
    let content = image(size, 52);
    let reg = source(&content);
    let layer = content.layers[0].descriptor.digest().to_string();
    let plan = FaultPlan::none()
        .first("GET", &format!("/blobs/{layer}"), 1, Fault::ResetMidBody)
        .ignore_ranges();
    let proxy = FaultProxy::start(reg.addr(), plan).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = pull(&proxy, dir.path(), ONE_STREAM);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(blob_gets(&proxy, &content), 2);
    assert_eq!(
        retries(&run),
        0,
        "the whole body read again, what came skipped"
    );
}

#[test]
fn a_big_blob_comes_in_parallel_ranges_each_asked_again_where_it_breaks() {
    let size = 10 * 1024 * 1024 + 12_345;
    let content = image(size, 53);
    let reg = source(&content);
    let layer = content.layers[0].descriptor.digest().to_string();
    let proxy = FaultProxy::start(reg.addr(), FaultPlan::none()).unwrap();
    let ranged = [
        ("FERRY_RANGE_THRESHOLD", "1048576"),
        ("FERRY_RANGE_SIZE", "1048576"),
        ("FERRY_RANGES", "4"),
        ("FERRY_ONE_STREAM_RATE", ALWAYS_RANGES),
    ];
    let dir = tempfile::tempdir().unwrap();
    let run = pull(&proxy, dir.path(), &ranged);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // 11 ranges of 1 MiB (the last short), each asked once.
    assert_eq!(blob_gets(&proxy, &content), 11);
    assert!(proxy.bytes_sent("GET") < size as u64 + 64 * 1024);

    // The same with ranges cut: each cut range is asked again from where it broke.
    let plan = FaultPlan::random(7, 0.3).faults([Fault::ResetMidBody, Fault::TruncatedBody]);
    let proxy = FaultProxy::start(reg.addr(), plan).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = pull(&proxy, dir.path(), &ranged);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, proxy.report());
    let cut = proxy
        .injected()
        .iter()
        .filter(|r| r.path.contains(&layer))
        .count();
    assert!(cut > 0, "some ranges were cut: {}", proxy.report());
    // Each cut costs the rest of its range asked again, not the blob.
    assert_eq!(blob_gets(&proxy, &content), 11 + cut);
    assert!(
        proxy.bytes_sent("GET") < size as u64 + 64 * 1024,
        "{} bytes for {size}",
        proxy.bytes_sent("GET")
    );
}

#[test]
fn a_big_blob_from_a_registry_that_ignores_range_is_read_as_one_stream() {
    let size = 5 * 1024 * 1024;
    let content = image(size, 54);
    let reg = source(&content);
    let proxy = FaultProxy::start(reg.addr(), FaultPlan::none().ignore_ranges()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = pull(
        &proxy,
        dir.path(),
        &[
            ("FERRY_RANGE_THRESHOLD", "1048576"),
            ("FERRY_RANGE_SIZE", "1048576"),
            ("FERRY_ONE_STREAM_RATE", ALWAYS_RANGES),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        blob_gets(&proxy, &content),
        1,
        "the first answer, whole, was used"
    );
    assert!(proxy.bytes_sent("GET") < size as u64 + 64 * 1024);
}

#[test]
fn a_big_blob_in_ranges_goes_registry_to_registry_in_order() {
    let size = 9 * 1024 * 1024 + 7;
    let content = image(size, 55);
    let reg = source(&content);
    let proxy = FaultProxy::start(reg.addr(), FaultPlan::none()).unwrap();
    let dst = Registry::start().unwrap();
    let run = ferry_with(
        &[
            "cp",
            "--plain-http",
            "--no-cache",
            &format!("{}/src/app:v1", proxy.addr()),
            &format!("{}/dst/app:v1", dst.addr()),
        ],
        &[
            ("FERRY_RANGE_THRESHOLD", "1048576"),
            ("FERRY_RANGE_SIZE", "1048576"),
            ("FERRY_ONE_STREAM_RATE", ALWAYS_RANGES),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(blob_gets(&proxy, &content), 10);
    // The registry hashed what it was sent, in order, and committed it under the digest.
    assert_layer_whole(&dst, "dst/app", &content);
}

#[test]
fn a_big_blob_whose_first_range_comes_fast_gets_the_rest_as_one_stream() {
    let size = 6 * 1024 * 1024 + 99;
    let content = image(size, 56);
    let reg = source(&content);
    let proxy = FaultProxy::start(reg.addr(), FaultPlan::none()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // On loopback the first range of 1 MiB comes far faster than 1 MiB/s.
    let run = pull(
        &proxy,
        dir.path(),
        &[
            ("FERRY_RANGE_THRESHOLD", "1048576"),
            ("FERRY_RANGE_SIZE", "1048576"),
            ("FERRY_ONE_STREAM_RATE", "1048576"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        blob_gets(&proxy, &content),
        2,
        "the first range, then the rest in one answer"
    );
    assert!(proxy.bytes_sent("GET") < size as u64 + 64 * 1024);
}

#[test]
fn a_chunked_upload_cut_partway_goes_on_from_the_registrys_offset_sending_one_chunk_again() {
    // The source is read directly; the destination is the same registry through the proxy,
    // which cuts the sixth `PATCH` halfway (its fifth chunk or later: 4 MiB or more into the
    // 8 MiB layer; the config is one small chunk) before any of it reaches the registry, as a
    // load balancer that buffers request bodies and drops the connection.
    let size = 8 * 1024 * 1024;
    let chunk = 1024 * 1024;
    let content = image(size, 57);
    let reg = source(&content);
    let plan = FaultPlan::none().nth("PATCH", "/blobs/uploads/", 6, Fault::ResetMidUpload);
    let (run, proxy) = upload_through(&reg, plan, true);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, proxy.report());
    assert_eq!(
        proxy.injected().len(),
        1,
        "one PATCH cut: {}",
        proxy.report()
    );
    // The registry was asked where the session stood, and the upload went on from there:
    // what the cut PATCH carried and at most one chunk more than the blob's bytes.
    assert!(
        proxy.count("GET", "/blobs/uploads/") >= 1,
        "{}",
        proxy.report()
    );
    let config = content.config.descriptor.size();
    let received = proxy.bytes_received("PATCH");
    let cut_half = chunk as u64 / 2;
    assert!(
        received <= size as u64 + config + cut_half + chunk as u64,
        "{received} bytes sent in PATCH bodies for {} bytes of blobs",
        size as u64 + config
    );
    assert_eq!(
        proxy.count("POST", "/blobs/uploads/"),
        2,
        "no session started over"
    );
    // The registry holds the layer whole, read back without the proxy.
    assert_layer_whole(&reg, "resumed/app", &content);
}

/// Copies `content` from `reg` to `resumed/app:v1` through a fault proxy with `plan`, in chunks
/// of 1 MiB when `chunked`, else in one `PUT` per blob; returns the run and the proxy.
fn upload_through(reg: &Registry, plan: FaultPlan, chunked: bool) -> (Run, FaultProxy) {
    let proxy = FaultProxy::start(reg.addr(), plan).unwrap();
    let mut env = vec![("FERRY_RETRY_BASE_DELAY_MS", "5")];
    if chunked {
        env.extend([
            ("FERRY_CHUNK_THRESHOLD", "1"),
            ("FERRY_CHUNK_SIZE", "1048576"),
        ]);
    }
    let run = ferry_with(
        &[
            "cp",
            "--plain-http",
            "--no-cache",
            "--mount",
            "none",
            &format!("{}/src/app:v1", reg.addr()),
            &format!("{}/resumed/app:v1", proxy.addr()),
        ],
        &env,
        None,
    );
    (run, proxy)
}

/// The layer of `content` as `reg` holds it in `repo`, read without any proxy, is whole.
fn assert_layer_whole(reg: &Registry, repo: &str, content: &Image) {
    let layer = &content.layers[0].descriptor;
    let got = rt()
        .block_on(ferry_test_support::http(
            "GET",
            &format!("{}/v2/{repo}/blobs/{}", reg.url(), layer.digest()),
            &[],
            Vec::new(),
        ))
        .unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(
        ferry_core::sha256(&got.body).to_string(),
        layer.digest().to_string()
    );
}

#[test]
fn a_chunk_cut_after_half_of_it_reached_the_registry_starts_the_blob_over_in_a_new_session() {
    // distribution 2.8 ends a session whose request brought part of its body: asked where the
    // session stands, it answers that the upload is unknown. The blob starts over in a new
    // session rather than failing the copy.
    let content = image(8 * 1024 * 1024, 58);
    let reg = source(&content);
    let plan = FaultPlan::none().nth(
        "PATCH",
        "/blobs/uploads/",
        6,
        Fault::ResetMidUploadForwarded,
    );
    let (run, proxy) = upload_through(&reg, plan, true);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, proxy.report());
    assert_eq!(proxy.injected().len(), 1, "{}", proxy.report());
    assert!(
        proxy.count("GET", "/blobs/uploads/") >= 1,
        "the session's offset was asked first: {}",
        proxy.report()
    );
    assert_eq!(
        proxy.count("POST", "/blobs/uploads/"),
        3,
        "the config's session, the layer's, and the layer's again: {}",
        proxy.report()
    );
    assert_layer_whole(&reg, "resumed/app", &content);
}

#[test]
fn a_put_cut_after_half_of_it_reached_the_registry_starts_the_blob_over_in_a_new_session() {
    let content = image(8 * 1024 * 1024, 59);
    let reg = source(&content);
    let plan = FaultPlan::none().nth("PUT", "/blobs/uploads/", 1, Fault::ResetMidUploadForwarded);
    let (run, proxy) = upload_through(&reg, plan, false);
    assert_eq!(run.code, 0, "{}\n{}", run.stderr, proxy.report());
    assert_eq!(proxy.injected().len(), 1, "{}", proxy.report());
    assert_eq!(
        proxy.count("POST", "/blobs/uploads/"),
        3,
        "one blob's session twice: {}",
        proxy.report()
    );
    assert_layer_whole(&reg, "resumed/app", &content);
}
