//! The recording server replies to and records requests over TLS and plain HTTP.

use bottle_testkit::client::{send_http1, tls_handshake};
use bottle_testkit::{RecordingServer, RecordingServerThread, TestCa};
use bytes::Bytes;
use http_body_util::Full;
use tokio::net::TcpStream;

fn get(uri: &str, host: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(uri)
        .header("host", host)
        .header("x-probe", "value-1")
        .body(Full::new(Bytes::new()))
        .expect("valid request")
}

#[tokio::test]
async fn records_https_request() {
    let ca = TestCa::new("testkit CA");
    let server = RecordingServer::start(&ca, &["api.test.example"]).await;

    let tcp = TcpStream::connect(server.https_addr())
        .await
        .expect("connect");
    let tls = tls_handshake(tcp, ca.client_config(&[b"http/1.1"]), "api.test.example")
        .await
        .expect("the server certificate verifies against the test CA");
    let reply = send_http1(tls, get("/a?b=1", "api.test.example"))
        .await
        .expect("reply");

    assert_eq!(reply.status, 200);
    assert_eq!(reply.body_text(), r#"{"recorded":1}"#);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].tls);
    assert_eq!(requests[0].sni.as_deref(), Some("api.test.example"));
    assert_eq!(requests[0].path, "/a?b=1");
    assert_eq!(requests[0].header_values("X-Probe"), vec!["value-1"]);
}

#[tokio::test]
async fn rejects_untrusted_client_ca() {
    let ca = TestCa::new("testkit CA");
    let other = TestCa::new("other CA");
    let server = RecordingServer::start(&ca, &["api.test.example"]).await;

    let tcp = TcpStream::connect(server.https_addr())
        .await
        .expect("connect");
    let result = tls_handshake(tcp, other.client_config(&[]), "api.test.example").await;
    assert!(
        result.is_err(),
        "a client trusting another CA must fail verification"
    );
}

#[test]
fn thread_handle_serves_sync_tests() {
    let ca = TestCa::new("testkit CA");
    let server = RecordingServerThread::start(&ca, &["plain.test.example"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let reply = runtime.block_on(async {
        let tcp = TcpStream::connect(server.http_addr())
            .await
            .expect("connect");
        send_http1(tcp, get("/plain", "plain.test.example"))
            .await
            .expect("reply")
    });
    assert_eq!(reply.status, 200);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert!(!requests[0].tls);
    assert_eq!(requests[0].host.as_deref(), Some("plain.test.example"));
    drop(server);
}

#[tokio::test]
async fn echoes_websocket_upgrade() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = TestCa::new("testkit CA");
    let server = RecordingServer::start(&ca, &["api.test.example"]).await;

    let tcp = TcpStream::connect(server.https_addr())
        .await
        .expect("connect");
    let tls = tls_handshake(tcp, ca.client_config(&[b"http/1.1"]), "api.test.example")
        .await
        .expect("TLS");
    let request = http::Request::get("/ws")
        .header("host", "api.test.example")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    let (status, upgraded) = bottle_testkit::client::send_http1_upgrade(tls, request)
        .await
        .expect("reply");
    assert_eq!(status, 101);
    let mut upgraded = upgraded.expect("an upgraded stream");
    upgraded.write_all(b"ping").await.expect("write");
    let mut echo = [0u8; 4];
    upgraded.read_exact(&mut echo).await.expect("read the echo");
    assert_eq!(&echo, b"ping");
}
