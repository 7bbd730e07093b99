//! End-to-end tests of the DNS-over-HTTPS refusals, the magic host `bottle.internal`, and
//! header values with line breaks. Each refusal has a positive control.

mod common;

use bottle_testkit::client::{connect_tunnel, send_http1, tls_handshake};
use bytes::Bytes;
use common::{Fixture, TOKEN_VALUE, get};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const API: &str = "api.allowed.example";
const API_AUTHORITY: &str = "api.allowed.example:443";

#[tokio::test]
async fn resolvers_and_dot_are_refused_even_when_routed() {
    let fixture = Fixture::new().await;
    let mut dot = fixture.route(API);
    dot.port = 853;
    let routes = vec![fixture.route("dns.google"), dot, fixture.route(API)];
    let proxy = fixture.start_proxy(routes).await;

    for authority in ["dns.google:443", "api.allowed.example:853", "1.1.1.1:443"] {
        let (reply, _) = fixture.connect(proxy, authority).await;
        assert_eq!(reply.status, 403, "{authority}");
        assert_eq!(
            reply.header("x-bottle-decision"),
            Some("deny; rule=dns-over-https"),
            "{authority}: {}",
            reply.body_text()
        );
    }
    // Positive control: an ordinary routed host is tunnelled.
    let (reply, _) = fixture.connect(proxy, API_AUTHORITY).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn doh_requests_are_refused_on_allowed_hosts() {
    let fixture = Fixture::new().await;
    let proxy = fixture.start_proxy(vec![fixture.route(API)]).await;

    let with_header = |name: &str, value: &str| {
        http::Request::get("/v1/lookup")
            .header("host", API)
            .header(name, value)
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    let requests = [
        get("/dns-query?dns=AAABAAAB", API),
        get("/resolve?name=x.example", API),
        with_header("accept", "application/dns-json"),
        with_header("content-type", "application/dns-message"),
    ];
    for request in requests {
        let uri = request.uri().clone();
        let reply = fixture
            .tunnel_request(proxy, API_AUTHORITY, API, request)
            .await
            .expect("reply");
        assert_eq!(reply.status, 403, "{uri}");
        assert_eq!(
            reply.header("x-bottle-decision"),
            Some("deny; rule=dns-over-https")
        );
    }
    assert!(fixture.requests().is_empty());

    // Positive control.
    let reply = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, get("/v1/lookup", API))
        .await
        .expect("reply");
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn magic_host_lists_routes_without_secrets() {
    let fixture = Fixture::new().await;
    let proxy = fixture
        .start_proxy(vec![
            fixture.token_route(API),
            fixture.plain_route("plain.allowed.example"),
        ])
        .await;

    // Plain HTTP through the proxy.
    let tcp = TcpStream::connect(proxy).await.expect("connect");
    let reply = send_http1(tcp, get("http://bottle.internal/routes", "bottle.internal"))
        .await
        .expect("reply");
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    let table: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
    assert_eq!(table["routes"][0]["host"], API);
    assert_eq!(table["routes"][0]["token_header"], "Authorization");
    assert_eq!(table["routes"][1]["scheme"], "http");
    assert!(!reply.body_text().contains(TOKEN_VALUE));

    // HTTPS through CONNECT, with a certificate from the bottle CA.
    let reply = fixture
        .tunnel_request(
            proxy,
            "bottle.internal:443",
            "bottle.internal",
            get("/", "bottle.internal"),
        )
        .await
        .expect("reply");
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    assert!(reply.body_text().contains(API));
    assert!(!reply.body_text().contains(TOKEN_VALUE));

    // Only the route table is served, and nothing was forwarded anywhere.
    let tcp = TcpStream::connect(proxy).await.expect("connect");
    let reply = send_http1(tcp, get("http://bottle.internal/admin", "bottle.internal"))
        .await
        .expect("reply");
    assert_eq!(reply.status, 404);
    assert!(fixture.requests().is_empty());
}

/// Sends raw request bytes inside a TLS tunnel and returns the status line.
async fn raw_request(fixture: &Fixture, proxy: std::net::SocketAddr, bytes: &[u8]) -> String {
    let (reply, stream) = connect_tunnel(proxy, API_AUTHORITY).await.expect("connect");
    assert_eq!(reply.status, 200);
    let mut tls = tls_handshake(stream, fixture.agent_tls(&[b"http/1.1"]), API)
        .await
        .expect("TLS");
    tls.write_all(bytes).await.expect("write");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    text.lines().next().unwrap_or("").to_owned()
}

#[tokio::test]
async fn header_values_with_line_breaks_never_reach_the_upstream() {
    let fixture = Fixture::new().await;
    let proxy = fixture.start_proxy(vec![fixture.route(API)]).await;

    let bad = format!("GET /x HTTP/1.1\r\nHost: {API}\r\nX-A: a\rInjected: 1\r\n\r\n");
    let status = raw_request(&fixture, proxy, bad.as_bytes()).await;
    assert!(!status.contains(" 200 "), "{status}");
    assert!(fixture.requests().is_empty());

    // Positive control: the same request without the CR is forwarded.
    let good = format!("GET /x HTTP/1.1\r\nHost: {API}\r\nX-A: a\r\nConnection: close\r\n\r\n");
    let status = raw_request(&fixture, proxy, good.as_bytes()).await;
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(fixture.requests().len(), 1);
}
