//! A proxy on loopback in front of a recording server, and helpers to speak through it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bottle_policy::{Auth, Match, PathKind, PathRule, Route};
use bottle_proxy::{CertificateAuthority, SidecarConfig};
use bottle_testkit::client::{self, ConnectReply, HttpReply};
use bottle_testkit::{RecordedRequest, RecordingServer, TestCa};
use bytes::Bytes;
use http_body_util::Full;
use rustls::ClientConfig;
use tokio::net::TcpStream;

/// Host names the recording server has a certificate for.
pub const UPSTREAM_NAMES: &[&str] = &[
    "api.allowed.example",
    "other.allowed.example",
    "untrusted.allowed.example",
    "tunnel.allowed.example",
    "*.wild.allowed.example",
    "localhost",
    "127.0.0.1",
];

/// A synthetic token value that no real service accepts.
pub const TOKEN_VALUE: &str = "canary-token-7f3a9c2e51";

/// A synthetic value the launcher would pass as a copied or prompted `env` value.
pub const KNOWN_SECRET: &str = "prompted-secret-5b8e0d44c1";

/// The placeholder credential the agent holds.
pub const AGENT_CREDENTIAL: &str = "Bearer agent-placeholder-0000";

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub upstream_ca: TestCa,
    pub upstream_ca_path: PathBuf,
    pub server: RecordingServer,
    pub bottle_ca: CertificateAuthority,
    pub audit_path: PathBuf,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temporary directory");
        let upstream_ca = TestCa::new("upstream test CA");
        let upstream_ca_path = dir.path().join("upstream-ca.pem");
        upstream_ca
            .write_cert_pem(&upstream_ca_path)
            .expect("write the upstream CA");
        let server = RecordingServer::start(&upstream_ca, UPSTREAM_NAMES).await;
        let bottle_ca = CertificateAuthority::generate("bottle test CA").expect("bottle CA");
        let audit_path = dir.path().join("egress.jsonl");
        Fixture {
            dir,
            upstream_ca,
            upstream_ca_path,
            server,
            bottle_ca,
            audit_path,
        }
    }

    /// Returns a TLS route for `host` whose upstream is the recording server, trusted through
    /// `upstream_ca`.
    pub fn route(&self, host: &str) -> Route {
        Route {
            host: host.to_owned(),
            port: 443,
            auth: None,
            matches: Vec::new(),
            websocket: false,
            passthrough: false,
            connect: Some(self.server.https_addr().to_string()),
            upstream_ca: Some(self.upstream_ca_path.clone()),
            dlp: Default::default(),
        }
    }

    /// Returns a route for `host` that injects [`TOKEN_VALUE`] from token ref `API_TOKEN`.
    pub fn token_route(&self, host: &str) -> Route {
        let mut route = self.route(host);
        route.auth = Some(Auth {
            token_ref: "API_TOKEN".to_owned(),
            scheme: "Bearer".to_owned(),
            header: "Authorization".to_owned(),
        });
        route
    }

    /// Returns a plain HTTP route (port 80) for `host` whose upstream is the recording server.
    pub fn plain_route(&self, host: &str) -> Route {
        let mut route = self.route(host);
        route.port = 80;
        route.connect = Some(self.server.http_addr().to_string());
        route.upstream_ca = None;
        route
    }

    pub fn config(&self, routes: Vec<Route>) -> SidecarConfig {
        SidecarConfig {
            slug: "test-bottle".to_owned(),
            routes,
            tokens: BTreeMap::from([("API_TOKEN".to_owned(), TOKEN_VALUE.to_owned())]),
            ca_cert_pem: self.bottle_ca.cert_pem().to_owned(),
            ca_key_pem: self.bottle_ca.key_pem(),
            audit_log: self.audit_path.clone(),
            log_level: 2,
            known_secrets: vec![KNOWN_SECRET.to_owned()],
            hold_timeout_secs: 0,
        }
    }

    /// Starts the proxy with `routes` and returns its address.
    pub async fn start_proxy(&self, routes: Vec<Route>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let config = self.config(routes);
        tokio::spawn(async move {
            if let Err(err) = bottle_proxy::serve(config, listener).await {
                panic!("the proxy stopped: {err}");
            }
        });
        address
    }

    /// Returns a client configuration that trusts the bottle CA, as the agent's tools do.
    pub fn agent_tls(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        bottle_testkit::client_config_from_pem(self.bottle_ca.cert_pem(), alpn)
    }

    /// CONNECTs to `authority`, performs TLS with `server_name` (and SNI unless `sni` is
    /// false), and sends one HTTP/1.1 request.
    pub async fn tunnel_request(
        &self,
        proxy: SocketAddr,
        authority: &str,
        server_name: &str,
        request: http::Request<Full<Bytes>>,
    ) -> Result<HttpReply, String> {
        let (reply, stream) = client::connect_tunnel(proxy, authority)
            .await
            .map_err(|e| e.to_string())?;
        if reply.status != 200 {
            return Err(format!(
                "CONNECT refused: {} {}",
                reply.status,
                reply.body_text()
            ));
        }
        let tls = client::tls_handshake(stream, self.agent_tls(&[b"http/1.1"]), server_name)
            .await
            .map_err(|e| format!("TLS failed: {e}"))?;
        client::send_http1(tls, request)
            .await
            .map_err(|e| format!("HTTP failed: {e}"))
    }

    pub async fn connect(&self, proxy: SocketAddr, authority: &str) -> (ConnectReply, TcpStream) {
        client::connect_tunnel(proxy, authority)
            .await
            .expect("the proxy answers CONNECT")
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// Returns the audit log's records once one satisfies `predicate`. It polls because
    /// an allowed request is recorded when its response body ends, which can be just
    /// after the client has read it.
    pub async fn audit_until(
        &self,
        predicate: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        for _ in 0..500 {
            let records = self.audit_records();
            if records.iter().any(&predicate) {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "no matching audit record; the log holds {:#?}",
            self.audit_records()
        );
    }

    pub fn audit_records(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.audit_path).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("every audit line is JSON"))
            .collect()
    }

    pub fn audit_text(&self) -> String {
        std::fs::read_to_string(&self.audit_path).unwrap_or_default()
    }
}

pub fn get(path: &str, host: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .expect("request")
}

pub fn prefix_rule(prefix: &str, methods: &[&str]) -> Match {
    Match {
        paths: vec![PathRule {
            kind: PathKind::Prefix,
            value: prefix.to_owned(),
        }],
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        headers: Vec::new(),
    }
}

/// Builds one masked WebSocket text frame, as a client sends it.
pub fn client_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x1a, 0x2b, 0x3c, 0x4d];
    let length = u8::try_from(payload.len()).expect("payload under 126 bytes");
    assert!(length < 126, "payload under 126 bytes");
    let mut frame = vec![0x81, 0x80 | length];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}
