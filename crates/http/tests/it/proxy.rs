//! Requests through a real forward proxy (squid on loopback, resolving `registry.test` itself)
//! to a real registry: plain HTTP in absolute form, HTTPS through `CONNECT`, with and without
//! Basic authentication; its access log proves each request went through it, or did not.
//! And the failures of a proxy, as one sentence naming the proxy and its variable.

use crate::assert_kind;
use ferry_core::TransportErrorKind;
use ferry_http::{
    Body, HttpClient, HttpClientBuilder, NoProxy, Proxy, ProxyPolicy, TlsPolicy, transport_error,
};
use ferry_test_support::{Registry, Squid, TestCa, free_port};

/// Squid, started (it must be installed).
fn squid(builder: ferry_test_support::SquidBuilder) -> Squid {
    assert!(
        Squid::available(),
        "squid is needed for the proxy tests: `apt-get install squid` (scripts/test does)"
    );
    builder.start().unwrap()
}

/// A TLS registry with a certificate for `name`, and the policy that trusts it.
fn secure_registry(name: &str) -> (Registry, TlsPolicy) {
    let ca = TestCa::new().unwrap();
    let registry = Registry::builder()
        .tls_issued_for(&ca, &[name])
        .unwrap()
        .start()
        .unwrap();
    let tls = TlsPolicy::new()
        .with_ca_pem(ca.cert_pem().as_bytes(), "ca")
        .unwrap();
    (registry, tls)
}

fn client(policy: ProxyPolicy, tls: TlsPolicy) -> HttpClient {
    HttpClientBuilder::new()
        .proxy(policy)
        .tls(tls)
        .build()
        .unwrap()
}

fn via(url: &str, source: &str) -> ProxyPolicy {
    ProxyPolicy::from_vars(|name| (name == source).then(|| url.to_string())).unwrap()
}

async fn get(client: &HttpClient, url: &str) -> Result<http::StatusCode, ferry_core::Error> {
    let request = http::Request::get(url).body(Body::empty()).unwrap();
    let host = url.split('/').nth(2).unwrap().to_string();
    client
        .send(request)
        .await
        .map(|r| r.status())
        .map_err(|e| transport_error(&host, "GET /v2/", e))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_goes_in_absolute_form_and_https_through_connect() {
    let proxy = squid(Squid::builder());
    let plain = Registry::builder().start().unwrap();
    let (secure, tls) = secure_registry("registry.test");

    let http = client(via(&proxy.url(), "HTTP_PROXY"), tls.clone());
    let target = plain.addr_as("registry.test");
    assert_eq!(
        get(&http, &format!("http://{target}/v2/")).await.unwrap(),
        200
    );
    let log = proxy.await_log_for(&target, 1);
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!((log[0].method.as_str(), log[0].status), ("GET", 200));
    assert_eq!(log[0].target, format!("http://{target}/v2/"));

    let https = client(via(&proxy.url(), "https_proxy"), tls);
    let target = secure.addr_as("registry.test");
    for _ in 0..3 {
        assert_eq!(
            get(&https, &format!("https://{target}/v2/")).await.unwrap(),
            200
        );
    }
    drop(https);
    // The tunnel is logged when it closes; the three requests shared it.
    let log = proxy.await_log_for(&target, 1);
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].is_tunnel(), "{log:?}");
    // The registry itself saw the requests, from the proxy.
    assert_eq!(
        secure
            .requests()
            .iter()
            .filter(|r| r.path == "/v2/")
            .count(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_credentials_come_from_the_url_and_their_absence_reads_as_one_sentence() {
    let proxy = squid(Squid::builder().user("alice", "s3cret"));
    let plain = Registry::builder().start().unwrap();
    let (secure, tls) = secure_registry("registry.test");
    let (p, s) = (
        plain.addr_as("registry.test"),
        secure.addr_as("registry.test"),
    );

    let with = client(
        via(&proxy.url_with("alice", "s3cret"), "ALL_PROXY"),
        tls.clone(),
    );
    assert_eq!(get(&with, &format!("http://{p}/v2/")).await.unwrap(), 200);
    assert_eq!(get(&with, &format!("https://{s}/v2/")).await.unwrap(), 200);
    drop(with);
    let lines = [proxy.await_log_for(&p, 1), proxy.await_log_for(&s, 1)].concat();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert_eq!(
            (line.status, line.user.as_deref()),
            (200, Some("alice")),
            "{line:?}"
        );
    }

    let port = proxy.port();
    let without = client(via(&proxy.url(), "HTTPS_PROXY"), tls.clone());
    for url in [format!("https://{s}/v2/")] {
        let e = get(&without, &url).await.unwrap_err();
        assert_kind(&e, TransportErrorKind::ProxyAuth);
        assert_eq!(
            e.to_string(),
            format!(
                "the proxy http://127.0.0.1:{port} (from HTTPS_PROXY) asks for credentials to \
                 connect to {s} (407 Proxy Authentication Required)"
            )
        );
    }
    let without = client(via(&proxy.url(), "http_proxy"), tls.clone());
    let e = get(&without, &format!("http://{p}/v2/")).await.unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "the proxy http://127.0.0.1:{port} (from http_proxy) asks for credentials"
        )),
        "{e}"
    );

    let wrong = client(via(&proxy.url_with("alice", "nope"), "HTTPS_PROXY"), tls);
    let e = get(&wrong, &format!("https://{s}/v2/")).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("refused the credentials of its URL") && !text.contains("nope"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_proxy_and_a_refused_connect_name_the_proxy_and_the_target() {
    let proxy = squid(Squid::builder().deny("denied.test"));
    let (secure, tls) = secure_registry("denied.test");
    let target = secure.addr_as("denied.test");

    let e = get(
        &client(via(&proxy.url(), "HTTPS_PROXY"), tls.clone()),
        &format!("https://{target}/v2/"),
    )
    .await
    .unwrap_err();
    assert_kind(&e, TransportErrorKind::ProxyRefused);
    assert_eq!(
        e.to_string(),
        format!(
            "the proxy {} (from HTTPS_PROXY) refused to connect to {target} (403 Forbidden)",
            proxy.url()
        )
    );
    assert_eq!(proxy.await_log_for(&target, 1)[0].status, 403);

    let closed = free_port();
    let e = get(
        &client(
            via(&format!("http://u:pw@127.0.0.1:{closed}"), "ALL_PROXY"),
            tls,
        ),
        &format!("https://{target}/v2/"),
    )
    .await
    .unwrap_err();
    assert_kind(&e, TransportErrorKind::ProxyUnreachable);
    assert_eq!(
        e.to_string(),
        format!(
            "cannot reach the proxy http://127.0.0.1:{closed} (from ALL_PROXY) to connect to \
             {target}: connection refused"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_proxy_and_the_loopback_go_direct() {
    let proxy = squid(Squid::builder());
    let plain = Registry::builder().start().unwrap();
    let env = |name: &str| match name {
        "HTTP_PROXY" => Some(proxy.url()),
        "NO_PROXY" => Some("other.example, .test".into()),
        _ => None,
    };
    let c = client(ProxyPolicy::from_vars(env).unwrap(), TlsPolicy::new());
    // The loopback, never proxied.
    assert_eq!(
        get(&c, &format!("http://{}/v2/", plain.addr()))
            .await
            .unwrap(),
        200
    );
    assert_eq!(
        get(&c, &format!("http://localhost:{}/v2/", plain.port()))
            .await
            .unwrap(),
        200
    );
    // `registry.test` is under `.test`: ferry resolves it itself, and cannot.
    let target = plain.addr_as("registry.test");
    let e = get(&c, &format!("http://{target}/v2/")).await.unwrap_err();
    assert_kind(&e, TransportErrorKind::Dns);
    assert!(
        proxy.log().is_empty(),
        "nothing went through the proxy: {:?}",
        proxy.log()
    );

    // A registry's own proxy, and its own `no_proxy`, over the environment's.
    let own = ProxyPolicy::from_vars(env)
        .unwrap()
        .with_proxy(
            Proxy::parse(&proxy.url(), "`proxy` in [registries.\"registry.test\"]").unwrap(),
        )
        .with_no_proxy(NoProxy::parse("other.test"));
    assert_eq!(
        get(
            &client(own, TlsPolicy::new()),
            &format!("http://{target}/v2/")
        )
        .await
        .unwrap(),
        200
    );
    assert_eq!(proxy.await_log_for(&target, 1).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_proxy_is_spoken_to_in_tls_and_tunnels_https_inside_it() {
    let ca = TestCa::new().unwrap();
    let proxy = squid(Squid::builder().tls(ca.issue(&["127.0.0.1"]).unwrap()));
    assert!(proxy.url().starts_with("https://"));
    let secure = Registry::builder()
        .tls_issued_for(&ca, &["registry.test"])
        .unwrap()
        .start()
        .unwrap();
    let plain = Registry::builder().start().unwrap();
    // One CA trusted for both the proxy's certificate and the registry's.
    let tls = TlsPolicy::new()
        .with_ca_pem(ca.cert_pem().as_bytes(), "ca")
        .unwrap();
    let c = client(via(&proxy.url(), "ALL_PROXY"), tls);
    let target = secure.addr_as("registry.test");
    assert_eq!(
        get(&c, &format!("https://{target}/v2/")).await.unwrap(),
        200
    );
    let p = plain.addr_as("registry.test");
    assert_eq!(get(&c, &format!("http://{p}/v2/")).await.unwrap(), 200);
    drop(c);
    assert!(proxy.await_log_for(&target, 1)[0].is_tunnel());
    assert_eq!(proxy.await_log_for(&p, 1)[0].status, 200);

    // A proxy whose certificate is not trusted cannot be reached, and says so.
    let untrusted = client(via(&proxy.url(), "HTTPS_PROXY"), TlsPolicy::new());
    let e = get(&untrusted, &format!("https://{target}/v2/"))
        .await
        .unwrap_err();
    assert_kind(&e, TransportErrorKind::ProxyUnreachable);
    assert!(
        e.to_string().starts_with(&format!(
            "cannot reach the proxy {} (from HTTPS_PROXY) to connect to {target}: ",
            proxy.url()
        )),
        "{e}"
    );
}
