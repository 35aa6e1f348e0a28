//! Failed requests read as one sentence, and what failed is classified.

use ferry_core::TransportErrorKind;
use ferry_http::{Body, HttpClientBuilder, TlsPolicy, classify, is_loopback, transport_error};

#[test]
fn loopback_hosts() {
    for h in [
        "localhost",
        "LOCALHOST",
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "[::1]",
    ] {
        assert!(is_loopback(h), "{h}");
    }
    for h in [
        "example.com",
        "10.0.0.1",
        "localhost.example",
        "::2",
        "128.0.0.1",
    ] {
        assert!(!is_loopback(h), "{h}");
    }
}

#[test]
fn refused_reads_as_one_sentence() {
    let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
    let e = transport_error("127.0.0.1:5409", "HEAD /v2/", io);
    assert_eq!(
        e.to_string(),
        "cannot connect to 127.0.0.1:5409: connection refused"
    );
    assert!(!e.is_temporary());
}

#[test]
fn a_ca_file_that_is_not_pem_is_refused_by_name() {
    let e = TlsPolicy::new()
        .with_ca_pem(b"hello", "ca.pem")
        .unwrap_err();
    assert!(e.to_string().contains("ca.pem"), "{e}");
    assert!(e.to_string().contains("PEM"), "{e}");
}

#[tokio::test]
async fn a_plain_http_answer_to_tls_is_named() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf).await;
        let _ = s
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
    });
    let client = HttpClientBuilder::new().build().unwrap();
    let request = http::Request::get(format!("https://{addr}/v2/"))
        .body(Body::empty())
        .unwrap();
    let err = client.send(request).await.unwrap_err();
    assert_eq!(classify(err.as_ref()), TransportErrorKind::PlainHttp);
}
