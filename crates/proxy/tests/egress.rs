//! End-to-end tests of the egress proxy on loopback, against a recording server. Each
//! security check has a positive control showing that the refused path would otherwise
//! work, so a refusal proves something.

mod common;

use bottle_testkit::client::{send_http1, send_http1_upgrade, send_http2, tls_handshake};
use bottle_testkit::{REDIRECT_PATH, REDIRECT_TARGET};
use bytes::Bytes;
use common::{AGENT_CREDENTIAL, Fixture, TOKEN_VALUE, get, prefix_rule};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const API: &str = "api.allowed.example";
const API_AUTHORITY: &str = "api.allowed.example:443";

#[tokio::test]
async fn token_injected_and_agent_credentials_stripped() {
    let fixture = Fixture::new().await;
    let proxy = fixture.start_proxy(vec![fixture.token_route(API)]).await;

    let request = http::Request::get("/v1/me")
        .header("host", API)
        .header("authorization", AGENT_CREDENTIAL)
        .header("cookie", "session=agent-cookie-1111")
        .header("proxy-authorization", "Basic agent-proxy-2222")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let reply = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, request)
        .await
        .expect("reply");

    assert_eq!(reply.status, 200, "{}", reply.body_text());
    let requests = fixture.requests();
    assert_eq!(requests.len(), 1);
    let seen = &requests[0];
    assert_eq!(
        seen.header_values("authorization"),
        vec![format!("Bearer {TOKEN_VALUE}")]
    );
    assert!(
        !seen.contains("agent-placeholder"),
        "agent credential reached the upstream"
    );
    assert!(
        !seen.contains("agent-cookie"),
        "agent cookie reached the upstream"
    );
    assert!(
        !seen.contains("agent-proxy"),
        "proxy credential reached the upstream"
    );
    assert_eq!(seen.sni.as_deref(), Some(API));
    assert_eq!(seen.host.as_deref(), Some(API));
    assert_eq!(seen.path, "/v1/me");
}

#[tokio::test]
async fn own_api_key_refused_on_token_route() {
    let fixture = Fixture::new().await;
    let proxy = fixture.start_proxy(vec![fixture.token_route(API)]).await;

    let request = http::Request::get("/v1/me")
        .header("host", API)
        .header("x-api-key", "attacker-key-3333")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let reply = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, request)
        .await
        .expect("reply");
    assert_eq!(reply.status, 403);
    assert!(
        reply.body_text().contains("x-api-key"),
        "{}",
        reply.body_text()
    );
    assert!(
        !reply.body_text().contains("attacker-key"),
        "the refusal echoes a header value"
    );

    // Positive control: the same request without the agent's own key goes through.
    let reply = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, get("/v1/me", API))
        .await;
    assert_eq!(reply.expect("reply").status, 200);
    let requests = fixture.requests();
    assert_eq!(requests.len(), 1);
    assert!(!requests[0].contains("attacker-key"));
}

#[tokio::test]
async fn default_deny_refuses_unlisted_host() {
    let fixture = Fixture::new().await;
    let proxy = fixture.start_proxy(vec![fixture.route(API)]).await;

    let (reply, _) = fixture.connect(proxy, "evil.example:443").await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.header("x-bottle-decision"),
        Some("deny; rule=default")
    );
    assert!(
        reply
            .body_text()
            .starts_with("bottle: denied by default: no route allows evil.example:443"),
        "{}",
        reply.body_text()
    );

    let records = fixture.audit_until(|r| r["host"] == "evil.example").await;
    let record = records
        .iter()
        .find(|r| r["host"] == "evil.example")
        .expect("record");
    assert_eq!(record["decision"], "deny");
    assert_eq!(record["rule"], "default");
    assert_eq!(record["method"], "CONNECT");
    assert_eq!(record["port"], 443);
    assert_eq!(record["status"], 403);
    assert!(
        record["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{record}"
    );

    // Positive control: the listed host is allowed and reaches the server.
    let reply = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, get("/", API))
        .await;
    assert_eq!(reply.expect("reply").status, 200);
    assert_eq!(fixture.requests().len(), 1);
}

#[tokio::test]
async fn disallowed_path_and_method_refused() {
    let fixture = Fixture::new().await;
    let mut route = fixture.route(API);
    route.matches = vec![prefix_rule("/v1/", &["GET"])];
    let proxy = fixture.start_proxy(vec![route]).await;

    let allowed = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, get("/v1/items", API))
        .await;
    assert_eq!(allowed.expect("reply").status, 200);

    for path in ["/admin", "/v1/../admin", "/v1/%2e%2e/admin", "/v2/items"] {
        let request = http::Request::get(path)
            .header("host", API)
            .header("x-probe", "header-canary-4444")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let reply = fixture
            .tunnel_request(proxy, API_AUTHORITY, API, request)
            .await
            .expect("reply");
        assert_eq!(reply.status, 403, "{path}");
        assert_eq!(
            reply.header("x-bottle-decision"),
            Some("deny; rule=route[0]:api.allowed.example:443")
        );
        assert!(reply.body_text().starts_with("bottle: "), "{path}");
        assert!(
            !reply.body_text().contains("header-canary"),
            "the refusal echoes a header"
        );
    }

    let post = http::Request::post("/v1/items")
        .header("host", API)
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("request");
    let reply = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, post)
        .await
        .expect("reply");
    assert_eq!(reply.status, 403);

    let encoded_slash = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, get("/v1%2Fx", API))
        .await;
    assert_eq!(encoded_slash.expect("reply").status, 403);

    let paths: Vec<String> = fixture.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, vec!["/v1/items".to_owned()]);
}

#[tokio::test]
async fn dot_segments_forwarded_canonical() {
    let fixture = Fixture::new().await;
    let mut route = fixture.route(API);
    route.matches = vec![prefix_rule("/v1/", &["GET"])];
    let proxy = fixture.start_proxy(vec![route]).await;

    let reply = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, get("/v1/a/..//%62?q=1", API))
        .await;
    assert_eq!(reply.expect("reply").status, 200);
    let requests = fixture.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/v1/b?q=1");
}

#[tokio::test]
async fn sni_mismatch_refused() {
    let fixture = Fixture::new().await;
    let routes = vec![fixture.route(API), fixture.route("other.allowed.example")];
    let proxy = fixture.start_proxy(routes).await;

    let (reply, stream) = fixture.connect(proxy, API_AUTHORITY).await;
    assert_eq!(reply.status, 200);
    let result = tls_handshake(stream, fixture.agent_tls(&[]), "other.allowed.example").await;
    assert!(
        result.is_err(),
        "TLS with an SNI other than the CONNECT host must fail"
    );

    let (_, stream) = fixture.connect(proxy, API_AUTHORITY).await;
    let mut no_sni = (*fixture.agent_tls(&[])).clone();
    no_sni.enable_sni = false;
    let result = tls_handshake(stream, std::sync::Arc::new(no_sni), API).await;
    assert!(result.is_err(), "TLS without SNI must fail");

    let records = fixture
        .audit_until(|r| r["reason"] == "TLS ClientHello has no SNI")
        .await;
    assert!(
        records
            .iter()
            .any(|r| r["reason"] == "TLS SNI does not match the CONNECT host")
    );
    assert!(fixture.requests().is_empty());

    // Positive control: the matching SNI works.
    let reply = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, get("/", API))
        .await;
    assert_eq!(reply.expect("reply").status, 200);
    assert_eq!(fixture.requests().len(), 1);
}

#[tokio::test]
async fn host_header_mismatch_refused() {
    let fixture = Fixture::new().await;
    let routes = vec![fixture.route(API), fixture.route("other.allowed.example")];
    let proxy = fixture.start_proxy(routes).await;

    let fronted = get("/", "other.allowed.example");
    let reply = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, fronted)
        .await
        .expect("reply");
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.header("x-bottle-decision"),
        Some("deny; rule=protocol")
    );
    assert!(
        reply.body_text().contains("domain fronting"),
        "{}",
        reply.body_text()
    );

    let with_port = get("/", "api.allowed.example:8443");
    let reply = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, with_port)
        .await
        .expect("reply");
    assert_eq!(reply.status, 403);
    assert!(fixture.requests().is_empty());

    // Positive control: the matching Host, with and without the explicit port.
    for host in [API, API_AUTHORITY, "API.allowed.example."] {
        let reply = fixture
            .tunnel_request(proxy, API_AUTHORITY, API, get("/", host))
            .await;
        assert_eq!(reply.expect("reply").status, 200, "{host}");
    }
    assert_eq!(fixture.requests().len(), 3);
}

#[tokio::test]
async fn http2_authority_mismatch_refused() {
    let fixture = Fixture::new().await;
    let routes = vec![fixture.route(API), fixture.route("other.allowed.example")];
    let proxy = fixture.start_proxy(routes).await;

    let fronted = send_h2(&fixture, proxy, "https://other.allowed.example/h2").await;
    assert_eq!(fronted.status, 403);
    assert!(fixture.requests().is_empty());

    // Positive control: the matching :authority over HTTP/2.
    let reply = send_h2(&fixture, proxy, "https://api.allowed.example/h2").await;
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    let requests = fixture.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/h2");
}

async fn send_h2(
    fixture: &Fixture,
    proxy: std::net::SocketAddr,
    uri: &str,
) -> bottle_testkit::client::HttpReply {
    let (reply, stream) = fixture.connect(proxy, API_AUTHORITY).await;
    assert_eq!(reply.status, 200);
    let tls = tls_handshake(stream, fixture.agent_tls(&[b"h2"]), API)
        .await
        .expect("TLS");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let request = http::Request::get(uri)
        .version(http::Version::HTTP_2)
        .body(Full::new(Bytes::new()))
        .expect("request");
    send_http2(tls, request).await.expect("reply")
}

#[tokio::test]
async fn ip_literal_connect_refused() {
    let fixture = Fixture::new().await;
    let proxy = fixture.start_proxy(vec![fixture.route(API)]).await;

    for authority in [
        "127.0.0.1:443",
        "[::1]:443",
        "[::ffff:127.0.0.1]:443",
        "2130706433:443",
    ] {
        let (reply, _) = fixture.connect(proxy, authority).await;
        assert_eq!(reply.status, 403, "{authority}");
        assert!(reply.body_text().starts_with("bottle: "), "{authority}");
    }
    assert!(fixture.requests().is_empty());

    // Positive control: a route that names the IP literal allows it.
    let proxy = fixture.start_proxy(vec![fixture.route("127.0.0.1")]).await;
    let reply = fixture
        .tunnel_request(proxy, "127.0.0.1:443", "127.0.0.1", get("/", "127.0.0.1"))
        .await;
    assert_eq!(reply.expect("reply").status, 200);
    assert_eq!(fixture.requests().len(), 1);
}

#[tokio::test]
async fn non_default_port_refused() {
    let fixture = Fixture::new().await;
    let proxy = fixture.start_proxy(vec![fixture.route(API)]).await;

    for authority in [
        "api.allowed.example:8443",
        "api.allowed.example:22",
        "api.allowed.example:80",
    ] {
        let (reply, _) = fixture.connect(proxy, authority).await;
        assert_eq!(reply.status, 403, "{authority}");
        assert_eq!(
            reply.header("x-bottle-decision"),
            Some("deny; rule=default")
        );
    }

    // Positive control: port 443 is allowed.
    let reply = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, get("/", API))
        .await;
    assert_eq!(reply.expect("reply").status, 200);
}

#[tokio::test]
async fn plain_http_only_on_port_80_route() {
    let fixture = Fixture::new().await;
    let routes = vec![
        fixture.token_route(API),
        fixture.plain_route("plain.allowed.example"),
    ];
    let proxy = fixture.start_proxy(routes).await;

    let cases = [
        ("http://api.allowed.example/x", API, "denied by default"),
        (
            "http://api.allowed.example:443/x",
            API_AUTHORITY,
            "plain HTTP is allowed only",
        ),
    ];
    for (uri, host, reason) in cases {
        let tcp = TcpStream::connect(proxy).await.expect("connect");
        let reply = send_http1(tcp, get(uri, host)).await.expect("reply");
        assert_eq!(reply.status, 403, "{uri}");
        assert!(reply.body_text().starts_with("bottle: "), "{uri}");
        assert!(
            reply.body_text().contains(reason),
            "{uri}: {}",
            reply.body_text()
        );
    }
    assert!(fixture.requests().is_empty());

    // Positive control: the port-80 route forwards plain HTTP, without any token.
    let tcp = TcpStream::connect(proxy).await.expect("connect");
    let request = http::Request::get("http://plain.allowed.example/page?a=1")
        .header("host", "plain.allowed.example")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let reply = send_http1(tcp, request).await.expect("reply");
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    let requests = fixture.requests();
    assert_eq!(requests.len(), 1);
    assert!(!requests[0].tls);
    assert_eq!(requests[0].path, "/page?a=1");
    assert!(
        !requests[0].contains(TOKEN_VALUE),
        "a token was sent over plain HTTP"
    );
    assert!(requests[0].header_values("authorization").is_empty());
}

#[tokio::test]
async fn non_tls_after_connect_never_tunnelled() {
    let fixture = Fixture::new().await;
    // This route's upstream is the server's plain HTTP port, so bytes relayed blindly
    // would be recorded there.
    let mut route = fixture.route("tunnel.allowed.example");
    route.connect = Some(fixture.server.http_addr().to_string());
    let proxy = fixture.start_proxy(vec![route]).await;
    let payload = b"GET /smuggled HTTP/1.1\r\nHost: tunnel.allowed.example\r\n\r\n";

    let (reply, mut stream) = fixture.connect(proxy, "tunnel.allowed.example:443").await;
    assert_eq!(reply.status, 200);
    stream.write_all(payload).await.expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "the tunnel relayed plaintext"
    );
    fixture
        .audit_until(|r| {
            r["reason"]
                .as_str()
                .is_some_and(|t| t.starts_with("no TLS ClientHello"))
        })
        .await;
    assert!(
        fixture.requests().is_empty(),
        "the plaintext reached the upstream"
    );

    // Positive control: the same bytes sent straight to the server are recorded.
    let mut direct = TcpStream::connect(fixture.server.http_addr())
        .await
        .expect("connect");
    direct.write_all(payload).await.expect("write");
    let mut head = [0u8; 12];
    direct.read_exact(&mut head).await.expect("read");
    assert_eq!(&head, b"HTTP/1.1 200");
    assert_eq!(fixture.requests().len(), 1);
}

#[tokio::test]
async fn untrusted_upstream_certificate_fails() {
    let fixture = Fixture::new().await;
    let mut untrusted = fixture.route("untrusted.allowed.example");
    untrusted.upstream_ca = None;
    let proxy = fixture
        .start_proxy(vec![fixture.route(API), untrusted])
        .await;

    let host = "untrusted.allowed.example";
    let reply = fixture
        .tunnel_request(proxy, "untrusted.allowed.example:443", host, get("/", host))
        .await
        .expect("reply");
    assert_eq!(reply.status, 502);
    assert_eq!(
        reply.header("x-bottle-decision"),
        Some("error; rule=route[1]:untrusted.allowed.example:443")
    );
    assert!(reply.body_text().contains("TLS"), "{}", reply.body_text());
    assert!(fixture.requests().is_empty());

    // Positive control: the same server, trusted through upstream_ca.
    let reply = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, get("/", API))
        .await;
    assert_eq!(reply.expect("reply").status, 200);
    assert_eq!(fixture.requests().len(), 1);
}

#[tokio::test]
async fn internal_address_refused_at_connect() {
    let fixture = Fixture::new().await;
    // "localhost" resolves to loopback; without `connect`, the proxy must not dial it.
    let mut resolved = fixture.route("localhost");
    resolved.connect = None;
    resolved.port = fixture.server.https_addr().port();
    let proxy = fixture.start_proxy(vec![resolved.clone()]).await;

    let authority = format!("localhost:{}", resolved.port);
    let reply = fixture
        .tunnel_request(proxy, &authority, "localhost", get("/", "localhost"))
        .await;
    let reply = reply.expect("reply");
    assert_eq!(reply.status, 502);
    assert!(
        reply.body_text().contains("loopback"),
        "{}",
        reply.body_text()
    );
    assert!(fixture.requests().is_empty());

    // Positive control: naming the address in `connect` allows it.
    let mut named = resolved;
    named.connect = Some(fixture.server.https_addr().to_string());
    let proxy = fixture.start_proxy(vec![named]).await;
    let reply = fixture
        .tunnel_request(proxy, &authority, "localhost", get("/", "localhost"))
        .await;
    assert_eq!(reply.expect("reply").status, 200);
    assert_eq!(fixture.requests().len(), 1);
}

#[tokio::test]
async fn audit_log_holds_no_token() {
    let fixture = Fixture::new().await;
    let proxy = fixture.start_proxy(vec![fixture.token_route(API)]).await;

    let request = http::Request::get("/v1/search?q=agent-query-5555&page=2")
        .header("host", API)
        .header("authorization", AGENT_CREDENTIAL)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let reply = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, request)
        .await
        .expect("reply");
    assert_eq!(reply.status, 200);

    // Positive control: the token did pass through the proxy.
    assert!(fixture.requests()[0].contains(TOKEN_VALUE));

    let records = fixture
        .audit_until(|r| r["method"] == "GET" && r["decision"] == "allow")
        .await;
    let record = records
        .iter()
        .find(|r| r["method"] == "GET")
        .expect("record");
    assert_eq!(record["path"], "/v1/search?q&page");
    assert_eq!(record["rule"], "route[0]:api.allowed.example:443");
    assert_eq!(record["status"], 200);
    assert_eq!(record["bytes"], reply.body.len());
    let text = fixture.audit_text();
    assert!(
        !text.contains(TOKEN_VALUE),
        "the audit log contains the token"
    );
    assert!(
        !text.contains("agent-placeholder"),
        "the audit log contains a credential"
    );
    assert!(
        !text.contains("agent-query"),
        "the audit log contains a query value"
    );
}

#[tokio::test]
async fn redirect_passed_back_not_followed() {
    let fixture = Fixture::new().await;
    let proxy = fixture.start_proxy(vec![fixture.token_route(API)]).await;

    let reply = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, get(REDIRECT_PATH, API))
        .await;
    let reply = reply.expect("reply");
    assert_eq!(reply.status, 302);
    assert_eq!(reply.header("location"), Some(REDIRECT_TARGET));
    assert!(
        reply.header("x-bottle-decision").is_none(),
        "the upstream's answer is not the proxy's"
    );

    let requests = fixture.requests();
    assert_eq!(requests.len(), 1, "the proxy followed the redirect");
    let records = fixture.audit_until(|r| r["status"] == 302).await;
    assert!(!records.iter().any(|r| r["host"] == "evil.example"));
}

#[tokio::test]
async fn origin_form_request_refused() {
    let fixture = Fixture::new().await;
    let proxy = fixture.start_proxy(vec![fixture.route(API)]).await;

    let tcp = TcpStream::connect(proxy).await.expect("connect");
    let reply = send_http1(tcp, get("/", API)).await.expect("reply");
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.header("x-bottle-decision"),
        Some("deny; rule=protocol")
    );

    let tcp = TcpStream::connect(proxy).await.expect("connect");
    let reply = send_http1(tcp, get("https://api.allowed.example/", API))
        .await
        .expect("reply");
    assert_eq!(reply.status, 403);
    assert!(fixture.requests().is_empty());
}

fn websocket_request() -> http::Request<Full<Bytes>> {
    http::Request::get("/ws")
        .header("host", API)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Full::new(Bytes::new()))
        .expect("request")
}

async fn websocket_through(fixture: &Fixture, proxy: std::net::SocketAddr) -> (u16, Vec<u8>) {
    let (reply, stream) = fixture.connect(proxy, API_AUTHORITY).await;
    assert_eq!(reply.status, 200);
    let tls = tls_handshake(stream, fixture.agent_tls(&[b"http/1.1"]), API)
        .await
        .expect("TLS");
    let (status, upgraded) = send_http1_upgrade(tls, websocket_request())
        .await
        .expect("reply");
    let Some(mut upgraded) = upgraded else {
        return (status.as_u16(), Vec::new());
    };
    let frame = common::client_frame(b"frame-bytes");
    upgraded.write_all(&frame).await.expect("write");
    let mut echo = vec![0u8; frame.len()];
    upgraded.read_exact(&mut echo).await.expect("read the echo");
    assert_eq!(echo, frame);
    (status.as_u16(), b"frame-bytes".to_vec())
}

#[tokio::test]
async fn websocket_only_where_route_allows() {
    let fixture = Fixture::new().await;
    let proxy = fixture.start_proxy(vec![fixture.route(API)]).await;
    let (status, _) = websocket_through(&fixture, proxy).await;
    assert_eq!(status, 403);
    assert!(fixture.requests().is_empty());

    // Positive control: a route with `websocket: true` relays the upgraded stream.
    let mut route = fixture.route(API);
    route.websocket = true;
    let proxy = fixture.start_proxy(vec![route]).await;
    let (status, echo) = websocket_through(&fixture, proxy).await;
    assert_eq!(status, 101);
    assert_eq!(echo, b"frame-bytes");
    let requests = fixture.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header_values("upgrade"), vec!["websocket"]);
}

#[tokio::test]
async fn non_websocket_upgrade_refused() {
    let fixture = Fixture::new().await;
    let mut route = fixture.route(API);
    route.websocket = true;
    let proxy = fixture.start_proxy(vec![route]).await;

    let request = http::Request::get("/")
        .header("host", API)
        .header("connection", "Upgrade")
        .header("upgrade", "h2c")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let reply = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, request)
        .await
        .expect("reply");
    assert_eq!(reply.status, 403);
    assert!(fixture.requests().is_empty());
}

#[tokio::test]
async fn client_distrusting_bottle_ca_gets_no_bypass() {
    let fixture = Fixture::new().await;
    let proxy = fixture.start_proxy(vec![fixture.route(API)]).await;

    // A client that trusts only another CA, as a pinning client does, fails the
    // handshake. The proxy must then close the tunnel, never fall back to relaying it.
    let (reply, stream) = fixture.connect(proxy, API_AUTHORITY).await;
    assert_eq!(reply.status, 200);
    let other = bottle_testkit::TestCa::new("some other CA");
    let result = tls_handshake(stream, other.client_config(&[]), API).await;
    assert!(
        result.is_err(),
        "the client must reject the bottle CA's leaf"
    );
    fixture
        .audit_until(|r| {
            r["reason"]
                .as_str()
                .is_some_and(|t| t.starts_with("TLS handshake"))
        })
        .await;
    assert!(fixture.requests().is_empty());

    // Positive control: a client trusting the bottle CA gets through.
    let reply = fixture
        .tunnel_request(proxy, API_AUTHORITY, API, get("/", API))
        .await;
    assert_eq!(reply.expect("reply").status, 200);
    assert_eq!(fixture.requests().len(), 1);
}

#[tokio::test]
async fn response_streams_before_upstream_finishes() {
    use bottle_testkit::{STREAM_FIRST_CHUNK, STREAM_LAST_CHUNK, STREAM_PATH};
    use http_body_util::BodyExt;

    let fixture = Fixture::new().await;
    let proxy = fixture.start_proxy(vec![fixture.route(API)]).await;
    let (reply, stream) = fixture.connect(proxy, API_AUTHORITY).await;
    assert_eq!(reply.status, 200);
    let tls = tls_handshake(stream, fixture.agent_tls(&[b"http/1.1"]), API)
        .await
        .expect("TLS");
    let io = hyper_util::rt::TokioIo::new(tls);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("handshake");
    tokio::spawn(connection);

    let response = sender
        .send_request(get(STREAM_PATH, API))
        .await
        .expect("response head");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    // The upstream holds its last chunk back until released, so a proxy that buffered
    // the body would never deliver the first one. The timeout turns that hang into a
    // failure instead of a stuck test.
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
        .await
        .expect("the first chunk arrives while the upstream is still sending")
        .expect("a frame")
        .expect("no body error")
        .into_data()
        .expect("a data frame");
    assert_eq!(&first[..], STREAM_FIRST_CHUNK);

    fixture.server.release_stream();
    let rest = body
        .collect()
        .await
        .expect("the rest of the body")
        .to_bytes();
    assert_eq!(&rest[..], STREAM_LAST_CHUNK);
}
