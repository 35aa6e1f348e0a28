//! The trustless-gateway client against a real Helia node, and against gateways that lie.

use bytes::Bytes;
use ferry_core::verify::read_to_bytes;
use ferry_core::{ByteStream, Error, Result};
use ferry_ipfs_mount::{CAR_MEDIA_TYPE, GatewayClient, RAW_MEDIA_TYPE, cid_for_sha256};

use crate::support::{LyingGateway, assert_same, closed_port, random};
use ferry_test_support::helia::Helia;

async fn collect(stream: Result<ByteStream>) -> Result<Bytes> {
    read_to_bytes(stream?, "test content", u64::MAX).await
}

#[tokio::test]
async fn raw_block_comes_back_verified() {
    let helia = Helia::start();
    let data = random(300_000);
    let cid = helia.add_raw(&data).await;
    let client = GatewayClient::new(helia.url()).unwrap();
    assert_same(&collect(client.fetch_raw(&cid).await).await.unwrap(), &data);
    // fetch_file picks the raw request for a raw CID.
    assert_same(
        &collect(client.fetch_file(&cid).await).await.unwrap(),
        &data,
    );
    let requests = helia.requests().await;
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|(c, f)| c == &cid.to_string() && f == "raw")
    );
}

#[tokio::test]
async fn multi_block_file_is_reassembled_from_a_car() {
    let helia = Helia::start();
    // Four full 256 KiB chunks and a short one: a dag-pb root over five raw leaves.
    let data = random(4 * 262_144 + 12_345);
    let cid = helia.add(&data, 262_144).await;
    assert_eq!(cid.codec(), ferry_ipfs_mount::DAG_PB_CODEC);
    let client = GatewayClient::new(helia.url()).unwrap();
    assert_same(
        &collect(client.fetch_car_file(&cid).await).await.unwrap(),
        &data,
    );
    assert_same(
        &collect(client.fetch_file(&cid).await).await.unwrap(),
        &data,
    );
    let requests = helia.requests().await;
    assert!(requests.iter().all(|(_, f)| f == "car"), "{requests:?}");
}

#[tokio::test]
async fn deep_dag_sent_breadth_first_is_put_back_in_file_order() {
    let helia = Helia::start();
    // 1 KiB chunks: 293 leaves, more than the 174 links a node holds here, so the file has
    // two levels of dag-pb nodes; Helia sends both inner nodes before any leaf.
    let data = random(300_000);
    let cid = helia.add_with_fanout(&data, 1024, 174).await;
    let client = GatewayClient::new(helia.url()).unwrap();
    assert_same(
        &collect(client.fetch_car_file(&cid).await).await.unwrap(),
        &data,
    );

    // With no room to hold nodes that arrive early, the client refuses instead of growing.
    let tight = GatewayClient::new(helia.url())
        .unwrap()
        .with_buffer_limit(100);
    let err = collect(tight.fetch_car_file(&cid).await).await.unwrap_err();
    assert!(err.to_string().contains("raise the buffer limit"), "{err}");
}

#[tokio::test]
async fn repeated_chunks_sent_once_are_reused() {
    let helia = Helia::start();
    // 400 identical 1 KiB chunks: every leaf has one CID, and the first two inner nodes are the
    // same block too. The CAR carries each block once; the file needs them hundreds of times.
    let data = Bytes::from(vec![0u8; 400 * 1024]);
    let cid = helia.add_with_fanout(&data, 1024, 174).await;
    let client = GatewayClient::new(helia.url()).unwrap();
    assert_same(
        &collect(client.fetch_car_file(&cid).await).await.unwrap(),
        &data,
    );
}

#[tokio::test]
async fn missing_content_is_not_found() {
    let helia = Helia::start();
    let cid = cid_for_sha256(&ferry_core::sha256(b"never added")).unwrap();
    let client = GatewayClient::new(helia.url()).unwrap();
    let err = collect(client.fetch_raw(&cid).await).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains(&cid.to_string()), "{err}");
}

#[tokio::test]
async fn a_raw_block_with_wrong_bytes_is_rejected() {
    let data = random(100_000);
    let cid = cid_for_sha256(&ferry_core::sha256(&data)).unwrap();
    let mut wrong = data.to_vec();
    wrong[99_999] ^= 1;
    let liar = LyingGateway::start(RAW_MEDIA_TYPE, Bytes::from(wrong)).await;
    let client = GatewayClient::new(&liar.url).unwrap();
    let err = collect(client.fetch_raw(&cid).await).await.unwrap_err();
    assert!(err.to_string().contains("does not match its CID"), "{err}");
}

#[tokio::test]
async fn a_car_with_a_tampered_block_is_rejected() {
    let helia = Helia::start();
    let data = random(3 * 262_144);
    let cid = helia.add(&data, 262_144).await;
    let mut car = helia.car(&cid).await.to_vec();
    let last = car.len() - 1;
    car[last] ^= 0xff;
    let liar = LyingGateway::start(CAR_MEDIA_TYPE, Bytes::from(car)).await;
    let client = GatewayClient::new(&liar.url).unwrap();
    let err = collect(client.fetch_car_file(&cid).await)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not match its CID"), "{err}");

    // The CAR of another file does not pass for this one either.
    let other = helia.add(&random(2 * 262_144), 262_144).await;
    let liar = LyingGateway::start(CAR_MEDIA_TYPE, helia.car(&other).await).await;
    let client = GatewayClient::new(&liar.url).unwrap();
    let err = collect(client.fetch_car_file(&cid).await)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ended before block"), "{err}");
}

#[tokio::test]
async fn a_server_that_is_no_trustless_gateway_is_named() {
    let liar = LyingGateway::start("text/html", Bytes::from_static(b"<html>")).await;
    let client = GatewayClient::new(&liar.url).unwrap();
    let cid = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"
        .parse()
        .unwrap();
    let err = collect(client.fetch_car_file(&cid).await)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("trustless gateway"), "{err}");
}

#[tokio::test]
async fn a_gateway_that_is_down_is_a_temporary_error_naming_it() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let client = GatewayClient::new(&url).unwrap();
    let cid = cid_for_sha256(&ferry_core::sha256(b"x")).unwrap();
    let err = collect(client.fetch_raw(&cid).await).await.unwrap_err();
    assert!(err.is_temporary(), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
}

#[test]
fn gateway_urls_are_checked() {
    for bad in ["127.0.0.1:8080", "ftp://host", "http://h/?x=1"] {
        let err = GatewayClient::new(bad).unwrap_err();
        assert!(err.to_string().contains(bad), "{err}");
    }
    let err = GatewayClient::new("http://user:secret@host")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("credentials") && !err.contains("secret"),
        "{err}"
    );
    let ok = GatewayClient::new("http://127.0.0.1:8080/").unwrap();
    assert_eq!(ok.to_string(), "http://127.0.0.1:8080");
}

#[tokio::test]
async fn a_body_that_stops_arriving_fails_after_the_idle_timeout() {
    let data = random(200_000);
    let cid = cid_for_sha256(&ferry_core::sha256(&data)).unwrap();
    let liar = LyingGateway::stalling(RAW_MEDIA_TYPE, data.slice(..100_000), 100_000).await;
    let client = GatewayClient::new(&liar.url)
        .unwrap()
        .with_idle_timeout(std::time::Duration::from_millis(300));
    let err = collect(client.fetch_raw(&cid).await).await.unwrap_err();
    assert!(err.is_temporary(), "{err}");
    assert!(err.to_string().contains("did not answer"), "{err}");
}

#[tokio::test]
async fn a_gateway_shedding_load_is_asked_again_by_the_retry_policy() {
    use std::sync::atomic::Ordering;
    let data = random(1000);
    let cid = cid_for_sha256(&ferry_core::sha256(&data)).unwrap();
    let flaky = crate::support::FlakyGateway::start(2, data.clone()).await;
    let client = GatewayClient::new(&flaky.url).unwrap();
    assert_same(&collect(client.fetch_raw(&cid).await).await.unwrap(), &data);
    assert_eq!(
        flaky.requests.load(Ordering::SeqCst),
        3,
        "two 503s, then the block"
    );

    let down = crate::support::FlakyGateway::start(usize::MAX, Bytes::new()).await;
    let client = GatewayClient::new(&down.url).unwrap();
    let err = collect(client.fetch_raw(&cid).await).await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(
        down.requests.load(Ordering::SeqCst) as u32,
        GatewayClient::default_retry().max_retries + 1,
        "the first try and the policy's retries"
    );
}
