//! Start-up checks: a bad configuration stops the proxy before it accepts anything, and
//! the blocking entry point serves inherited listeners.

mod common;

use bottle_proxy::{ProxyError, run_sidecar};
use bottle_testkit::client::{connect_tunnel, send_http1, tls_handshake};
use bottle_testkit::{RecordingServerThread, TestCa};
use common::{Fixture, TOKEN_VALUE, get};

async fn start_error(config: bottle_proxy::SidecarConfig) -> ProxyError {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    bottle_proxy::serve(config, listener)
        .await
        .expect_err("the configuration must be refused")
}

#[tokio::test]
async fn validate_matches_startup_checks() {
    let fixture = Fixture::new().await;
    let good = fixture.config(vec![fixture.token_route("api.allowed.example")]);
    assert!(good.validate().is_ok());

    let mut missing_token = good.clone();
    missing_token.tokens.clear();
    assert!(matches!(
        missing_token.validate(),
        Err(ProxyError::MissingToken { .. })
    ));

    let mut bad_key = good.clone();
    bad_key.ca_key_pem = "not a key".to_owned();
    assert!(matches!(bad_key.validate(), Err(ProxyError::Ca(_))));

    let mut missing_ca = good;
    missing_ca.routes[0].upstream_ca = Some(fixture.dir.path().join("missing.pem"));
    assert!(matches!(
        missing_ca.validate(),
        Err(ProxyError::UpstreamCa { .. })
    ));
}

#[tokio::test]
async fn missing_token_names_ref_only() {
    let fixture = Fixture::new().await;
    let mut config = fixture.config(vec![fixture.token_route("api.allowed.example")]);
    config.tokens.clear();
    config
        .tokens
        .insert("OTHER".to_owned(), TOKEN_VALUE.to_owned());

    let err = start_error(config).await;
    let message = err.to_string();
    assert!(matches!(err, ProxyError::MissingToken { .. }), "{message}");
    assert!(message.contains("API_TOKEN"), "{message}");
    assert!(!message.contains(TOKEN_VALUE), "{message}");
}

#[tokio::test]
async fn token_with_newline_refused() {
    let fixture = Fixture::new().await;
    let mut config = fixture.config(vec![fixture.token_route("api.allowed.example")]);
    config.tokens.insert(
        "API_TOKEN".to_owned(),
        format!("{TOKEN_VALUE}\r\nX-Evil: 1"),
    );

    let err = start_error(config).await;
    assert!(matches!(err, ProxyError::InvalidTokenValue { .. }), "{err}");
    assert!(!err.to_string().contains(TOKEN_VALUE), "{err}");
}

#[tokio::test]
async fn passthrough_route_refused() {
    let fixture = Fixture::new().await;
    let mut route = fixture.route("api.allowed.example");
    route.passthrough = true;
    let err = start_error(fixture.config(vec![route])).await;
    assert!(
        matches!(err, ProxyError::PassthroughUnsupported { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("route[0]:api.allowed.example:443"),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_routes_refused() {
    let fixture = Fixture::new().await;
    let err = start_error(fixture.config(vec![fixture.route("bad host.example")])).await;
    assert!(matches!(err, ProxyError::Routes(_)), "{err}");

    let mut missing_ca = fixture.route("api.allowed.example");
    missing_ca.upstream_ca = Some(fixture.dir.path().join("missing.pem"));
    let err = start_error(fixture.config(vec![missing_ca])).await;
    assert!(matches!(err, ProxyError::UpstreamCa { .. }), "{err}");
}

#[test]
fn run_sidecar_serves_inherited_listener() {
    let upstream_ca = TestCa::new("upstream test CA");
    let server = RecordingServerThread::start(&upstream_ca, &["api.allowed.example"]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let fixture = runtime.block_on(Fixture::new());
    upstream_ca
        .write_cert_pem(&fixture.upstream_ca_path)
        .expect("write the upstream CA");

    let mut route = fixture.route("api.allowed.example");
    route.connect = Some(server.https_addr().to_string());
    let config = fixture.config(vec![route]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let proxy = listener.local_addr().expect("address");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    // The sidecar thread runs until the test process exits.
    std::thread::spawn(move || {
        run_sidecar(config, vec![listener], move || {
            ready_tx.send(()).expect("the test waits for readiness");
        })
    });
    ready_rx.recv().expect("the sidecar reports readiness");

    let status = runtime.block_on(async {
        let (reply, stream) = connect_tunnel(proxy, "api.allowed.example:443")
            .await
            .expect("CONNECT");
        assert_eq!(reply.status, 200);
        let tls = tls_handshake(stream, fixture.agent_tls(&[]), "api.allowed.example")
            .await
            .expect("TLS with the bottle CA");
        send_http1(tls, get("/", "api.allowed.example"))
            .await
            .expect("reply")
            .status
    });
    assert_eq!(status, 200);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn failed_audit_log_refuses_traffic() {
    let fixture = Fixture::new().await;
    let mut config = fixture.config(vec![fixture.route("api.allowed.example")]);
    // Every write to /dev/full fails with "no space left on device".
    config.audit_log = "/dev/full".into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy = listener.local_addr().expect("address");
    tokio::spawn(bottle_proxy::serve(config, listener));

    // The first decision gets its response, and its audit write fails.
    let (reply, _) = connect_tunnel(proxy, "evil.example:443")
        .await
        .expect("CONNECT");
    assert_eq!(reply.status, 403);

    let (reply, _) = connect_tunnel(proxy, "api.allowed.example:443")
        .await
        .expect("CONNECT");
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("x-bottle-decision"), Some("error; rule=audit"));
}
