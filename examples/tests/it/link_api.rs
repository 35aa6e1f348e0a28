//! The strategy of docs/writing-a-mount-strategy.md, `LinkApiMount`, against two real
//! registries on one storage and the admin server: the strategy contract, bare and in the
//! layers the guide registers it with, a copy through its chain, and the guide quoting the
//! code as it is.

use std::sync::Arc;

use ferry_conformance::{Case, random_blob};
use ferry_core::{Action, CopyOptions, MountRequest, MountStrategy, copy};
use ferry_distribution::Reference;
use ferry_examples::link_api::{self, LinkApiMount};
use ferry_test_support::free_port;

use crate::admin_link::{SharedStorage, client, push_image, repo};
use crate::admin_server::AdminServer;

async fn storage_and_api() -> (SharedStorage, AdminServer) {
    let storage = SharedStorage::start().await;
    let admin = storage.admin(None).await;
    (storage, admin)
}

mod bare {
    use super::*;

    async fn case() -> Case {
        let (storage, admin) = storage_and_api().await;
        let client = client();
        Case::new(
            Arc::new(LinkApiMount::new(&admin.url()).unwrap()),
            repo(&client, &storage.a, "kit/source"),
            repo(&client, &storage.b, "kit/destination"),
        )
        .keeping((storage, admin))
    }

    ferry_conformance::strategy_suite!(setup: case, expect: Mounted, declares: [probes_destination]);
}

mod as_registered {
    use super::*;

    async fn case() -> Case {
        let (storage, admin) = storage_and_api().await;
        let client = client();
        let chain = link_api::chain(&admin.url()).unwrap();
        Case::new(
            chain.strategies()[0].clone(),
            repo(&client, &storage.a, "kit/source"),
            repo(&client, &storage.b, "kit/destination"),
        )
        .keeping((storage, admin))
    }

    ferry_conformance::strategy_suite!(setup: case, expect: Mounted, declares: [probes_destination]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn its_chain_mounts_every_blob_and_rests_a_silent_api() {
    let (storage, admin) = storage_and_api().await;
    let image = push_image(&storage.a, "team/app", 21).await;
    let client = client();
    let chain = link_api::chain(&admin.url()).unwrap();
    assert_eq!(
        chain.to_string(),
        format!(
            "MountChain[Traced(Resting(30s, Timeout(10s, LinkApiMount({}))))]",
            admin.url()
        )
    );
    let report = copy(
        repo(&client, &storage.a, "team/app"),
        "v1",
        repo(&client, &storage.b, "mirror/app"),
        Some("v1"),
        &CopyOptions::default().with_chain(chain),
    )
    .await
    .unwrap();
    assert_eq!(report.count(Action::Mounted), image.layers.len() + 1);
    assert!(
        report
            .nodes
            .iter()
            .filter(|n| n.action == Action::Mounted)
            .all(|n| n.strategy.as_ref().map(|s| s.as_str()) == Some("link-api"))
    );

    // An API that does not answer: the first attempts meet it, the next ones are rested, and
    // the copy streams.
    let down = link_api::chain(&format!("http://127.0.0.1:{}", free_port())).unwrap();
    for (round, name) in ["down/app", "down/again"].iter().enumerate() {
        let report = copy(
            repo(&client, &storage.a, "team/app"),
            "v1",
            repo(&client, &storage.b, name),
            Some("v1"),
            &CopyOptions::default()
                .with_chain(down.clone())
                .with_concurrency(1),
        )
        .await
        .unwrap();
        assert_eq!(report.count(Action::Mounted), 0, "{report:#?}");
        let details: Vec<&str> = report
            .nodes
            .iter()
            .flat_map(|n| &n.attempts)
            .map(|a| a.detail.as_str())
            .collect();
        let rested = details
            .iter()
            .filter(|d| d.starts_with("not asked again"))
            .count();
        assert!(
            details.iter().all(|d| d.contains("did not answer")),
            "{details:#?}"
        );
        if round == 1 {
            assert_eq!(rested, details.len(), "{details:#?}");
        }
    }
}

/// The strategy speaks to an `https://` API in TLS, through ferry's HTTP client and TLS root
/// policy. The listener is in-process only to see the first bytes the strategy sends (a TLS
/// record of a handshake: `0x16 0x03`); it then hangs up, and the attempt is unreachable.
/// (A plain-HTTP client refuses an `https://` URL without connecting.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_api_is_spoken_to_in_tls() {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let first_bytes = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut first = [0u8; 2];
        conn.read_exact(&mut first).ok().map(|()| first)
    });
    let client = client();
    let handle = |name: &str| {
        let reference = Reference::parse(&format!("127.0.0.1:9/{name}")).unwrap();
        client.repository(&reference).unwrap()
    };
    let (src, dst) = (handle("team/app"), handle("mirror/app"));
    let (blob, _) = random_blob(10);
    let strategy = LinkApiMount::new(&format!("https://127.0.0.1:{port}")).unwrap();
    let outcome = strategy
        .mount(&MountRequest::new(&blob, src.as_ref(), dst.as_ref()))
        .await
        .unwrap();
    // Had the strategy not connected, this empty connection would be the one accepted (when
    // it did, the listener is closed and this is refused).
    let _ = std::net::TcpStream::connect(("127.0.0.1", port));
    let first = first_bytes.join().unwrap();
    assert_eq!(
        first,
        Some([0x16, 0x03]),
        "no TLS handshake reached the API"
    );
    assert!(outcome.is_unreachable(), "{outcome:?}");
}

#[test]
fn the_guide_quotes_the_strategy_as_it_is() {
    let guide = include_str!("../../../docs/writing-a-mount-strategy.md");
    let code = include_str!("../../src/link_api.rs");
    assert!(
        guide.contains(code),
        "docs/writing-a-mount-strategy.md must quote examples/src/link_api.rs whole, as it is"
    );
    let lines = code.lines().count();
    assert!(lines < 100, "the guide's strategy has {lines} lines");
}
