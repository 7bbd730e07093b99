//! Upstream connection reuse: connections are kept per upstream identity and reused for
//! later requests, never for another host or route, and never carry one route's token to
//! another. Each test counts the connections its upstream accepted, with a positive
//! control showing the count the other way.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bottle_proxy::PoolSettings;
use bottle_testkit::TestCa;
use bottle_testkit::client::{connect_tunnel, tls_handshake};
use bytes::Bytes;
use common::{Fixture, TOKEN_VALUE};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const API: &str = "api.allowed.example";
const OTHER: &str = "other.allowed.example";

/// One request as the counting upstream saw it.
#[derive(Debug, Clone)]
struct Seen {
    /// Index of the accepted connection it arrived on.
    connection: usize,
    sni: Option<String>,
    path: String,
    authorization: Option<String>,
}

/// How the counting upstream treats its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// HTTP/1.1 with keep-alive.
    Http1,
    /// HTTP/2.
    Http2,
    /// HTTP/1.1 that serves one request and closes the connection without notice.
    CloseSilently,
    /// HTTP/1.1 that serves the first request of each connection, then reads the second
    /// and closes the connection without a response.
    DropSecond,
}

/// A TLS upstream on loopback that counts the connections it accepts.
struct CountingUpstream {
    address: SocketAddr,
    accepted: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl CountingUpstream {
    async fn start(ca: &TestCa, mode: Mode) -> CountingUpstream {
        let (chain, key) = ca.issue(&[API, OTHER]);
        let mut config =
            rustls::ServerConfig::builder_with_provider(bottle_testkit::crypto_provider())
                .with_safe_default_protocol_versions()
                .expect("default versions")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("leaf matches key");
        config.alpn_protocols = match mode {
            Mode::Http2 => vec![b"h2".to_vec()],
            Mode::Http1 | Mode::CloseSilently | Mode::DropSecond => vec![b"http/1.1".to_vec()],
        };
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (count, log) = (accepted.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let connection = count.fetch_add(1, Ordering::SeqCst);
                let (acceptor, log) = (acceptor.clone(), log.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let sni = tls.get_ref().1.server_name().map(str::to_owned);
                    if mode == Mode::CloseSilently {
                        answer_once(tls, connection, sni, &log).await;
                        return;
                    }
                    if mode == Mode::DropSecond {
                        drop_second(tls, connection, sni, &log).await;
                        return;
                    }
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (log, sni) = (log.clone(), sni.clone());
                        async move {
                            record(&log, connection, sni, &request);
                            let _ = request.into_body().collect().await;
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("ok"))))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        CountingUpstream {
            address,
            accepted,
            seen,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

fn record(
    log: &Mutex<Vec<Seen>>,
    connection: usize,
    sni: Option<String>,
    request: &Request<Incoming>,
) {
    log.lock().expect("lock").push(Seen {
        connection,
        sni,
        path: request.uri().path().to_owned(),
        authorization: request
            .headers()
            .get("authorization")
            .map(|v| v.to_str().expect("ASCII").to_owned()),
    });
}

/// Reads one request head, responds to it, and closes the connection without
/// `Connection: close`, as an upstream whose keep-alive timer fired would.
async fn answer_once<S>(mut tls: S, connection: usize, sni: Option<String>, log: &Mutex<Vec<Seen>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let path = text.split(' ').nth(1).unwrap_or_default().to_owned();
    log.lock().expect("lock").push(Seen {
        connection,
        sni,
        path,
        authorization: None,
    });
    let _ = tls
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        .await;
    let _ = tls.shutdown().await;
}

/// Reads one request (head and `Content-Length` body) from `tls`, buffering in `buffered`,
/// and returns its request line, or `None` at the end of the stream.
async fn read_request<S>(tls: &mut S, buffered: &mut Vec<u8>) -> Option<String>
where
    S: tokio::io::AsyncRead + Unpin,
{
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match tls.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(read) => buffered.extend_from_slice(&chunk[..read]),
        }
    };
    let head = String::from_utf8_lossy(&buffered[..head_end]).into_owned();
    let body_len: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buffered.len() < head_end + body_len {
        match tls.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(read) => buffered.extend_from_slice(&chunk[..read]),
        }
    }
    buffered.drain(..head_end + body_len);
    head.lines().next().map(str::to_owned)
}

/// Serves the first request of the connection, then reads the second and closes the
/// connection without responding, as an upstream that fails mid-exchange would.
async fn drop_second<S>(mut tls: S, connection: usize, sni: Option<String>, log: &Mutex<Vec<Seen>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buffered = Vec::new();
    for index in 0..2 {
        let Some(line) = read_request(&mut tls, &mut buffered).await else {
            return;
        };
        log.lock().expect("lock").push(Seen {
            connection,
            sni: sni.clone(),
            path: line.split(' ').nth(1).unwrap_or_default().to_owned(),
            authorization: None,
        });
        if index == 0 {
            let _ = tls
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await;
        }
    }
    let _ = tls.shutdown().await;
}

impl Fixture {
    /// Returns a route for `host` whose upstream is `upstream`.
    fn counted_route(&self, host: &str, upstream: &CountingUpstream) -> bottle_policy::Route {
        let mut route = self.route(host);
        route.connect = Some(upstream.address.to_string());
        route
    }

    async fn start_proxy_with(
        &self,
        routes: Vec<bottle_policy::Route>,
        pool: PoolSettings,
    ) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let config = self.config(routes);
        tokio::spawn(async move {
            if let Err(err) = bottle_proxy::serve_with(config, pool, listener).await {
                panic!("the proxy stopped: {err}");
            }
        });
        address
    }
}

/// An agent connection through the proxy: one tunnel, one TLS session, HTTP/1.1.
struct Agent {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Agent {
    async fn open(fixture: &Fixture, proxy: SocketAddr, host: &str) -> Agent {
        let (reply, stream) = connect_tunnel(proxy, &format!("{host}:443"))
            .await
            .expect("CONNECT");
        assert_eq!(reply.status, 200, "CONNECT refused: {}", reply.body_text());
        let tls = tls_handshake(stream, fixture.agent_tls(&[b"http/1.1"]), host)
            .await
            .expect("TLS with the proxy");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("HTTP handshake");
        tokio::spawn(connection);
        Agent {
            sender,
            host: host.to_owned(),
        }
    }

    async fn send(&mut self, method: &str, path: &str) -> (u16, String) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .body(Full::new(Bytes::from_static(b"payload")))
            .expect("request");
        self.sender.ready().await.expect("agent connection ready");
        let response = self.sender.send_request(request).await.expect("response");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn get(&mut self, path: &str) -> (u16, String) {
        self.send("GET", path).await
    }
}

/// Waits until the proxy has put the first connection back in its pool: a connection
/// returns once its response has been read to the end, just after the agent got it.
async fn settle() {
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

#[tokio::test]
async fn pool_reuses_http1_connection() {
    let fixture = Fixture::new().await;
    let upstream = CountingUpstream::start(&fixture.upstream_ca, Mode::Http1).await;
    let route = fixture.counted_route(API, &upstream);
    let proxy = fixture
        .start_proxy_with(vec![route], PoolSettings::default())
        .await;

    let mut agent = Agent::open(&fixture, proxy, API).await;
    assert_eq!(agent.get("/one").await, (200, "ok".to_owned()));
    settle().await;
    assert_eq!(agent.get("/two").await, (200, "ok".to_owned()));
    assert_eq!(upstream.accepted(), 1, "{:?}", upstream.seen());
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|s| s.connection == 0 && s.sni.as_deref() == Some(API))
    );
}

#[tokio::test]
async fn pool_disabled_dials_every_request() {
    // Positive control of the test above: the same exchange with reuse off.
    let fixture = Fixture::new().await;
    let upstream = CountingUpstream::start(&fixture.upstream_ca, Mode::Http1).await;
    let route = fixture.counted_route(API, &upstream);
    let disabled = PoolSettings {
        enabled: false,
        ..PoolSettings::default()
    };
    let proxy = fixture.start_proxy_with(vec![route], disabled).await;

    let mut agent = Agent::open(&fixture, proxy, API).await;
    assert_eq!(agent.get("/one").await.0, 200);
    settle().await;
    assert_eq!(agent.get("/two").await.0, 200);
    assert_eq!(upstream.accepted(), 2, "{:?}", upstream.seen());
}

#[tokio::test]
async fn pool_shares_http2_connection() {
    let fixture = Fixture::new().await;
    let upstream = CountingUpstream::start(&fixture.upstream_ca, Mode::Http2).await;
    let route = fixture.counted_route(API, &upstream);
    let proxy = fixture
        .start_proxy_with(vec![route], PoolSettings::default())
        .await;

    let mut first = Agent::open(&fixture, proxy, API).await;
    let mut second = Agent::open(&fixture, proxy, API).await;
    assert_eq!(first.get("/one").await.0, 200);
    assert_eq!(second.get("/two").await.0, 200);
    assert_eq!(first.send("POST", "/three").await.0, 200);
    assert_eq!(upstream.accepted(), 1, "{:?}", upstream.seen());
}

#[tokio::test]
async fn pool_keeps_hosts_apart_on_one_address() {
    let fixture = Fixture::new().await;
    for mode in [Mode::Http1, Mode::Http2] {
        let upstream = CountingUpstream::start(&fixture.upstream_ca, mode).await;
        let routes = vec![
            fixture.counted_route(API, &upstream),
            fixture.counted_route(OTHER, &upstream),
        ];
        let proxy = fixture
            .start_proxy_with(routes, PoolSettings::default())
            .await;

        let mut api = Agent::open(&fixture, proxy, API).await;
        let mut other = Agent::open(&fixture, proxy, OTHER).await;
        assert_eq!(api.get("/a1").await.0, 200);
        settle().await;
        assert_eq!(other.get("/b1").await.0, 200);
        settle().await;
        // Positive control: a second request to the first host reuses its connection,
        // so the count below is not two merely because nothing is ever reused.
        assert_eq!(api.get("/a2").await.0, 200);
        settle().await;
        assert_eq!(other.get("/b2").await.0, 200);

        assert_eq!(upstream.accepted(), 2, "{mode:?}: {:?}", upstream.seen());
        let seen = upstream.seen();
        for request in &seen {
            let host = if request.path.starts_with("/a") {
                API
            } else {
                OTHER
            };
            assert_eq!(request.sni.as_deref(), Some(host), "{mode:?}: {seen:?}");
        }
        let connection_of = |path: &str| {
            seen.iter()
                .find(|s| s.path == path)
                .map(|s| s.connection)
                .expect("request seen")
        };
        assert_eq!(connection_of("/a1"), connection_of("/a2"), "{mode:?}");
        assert_eq!(connection_of("/b1"), connection_of("/b2"), "{mode:?}");
        assert_ne!(connection_of("/a1"), connection_of("/b1"), "{mode:?}");
    }
}

#[tokio::test]
async fn pool_sends_token_to_owning_route_only() {
    let fixture = Fixture::new().await;
    for mode in [Mode::Http1, Mode::Http2] {
        let upstream = CountingUpstream::start(&fixture.upstream_ca, mode).await;
        let mut with_token = fixture.token_route(API);
        with_token.connect = Some(upstream.address.to_string());
        let routes = vec![with_token, fixture.counted_route(OTHER, &upstream)];
        let proxy = fixture
            .start_proxy_with(routes, PoolSettings::default())
            .await;

        let mut api = Agent::open(&fixture, proxy, API).await;
        let mut other = Agent::open(&fixture, proxy, OTHER).await;
        for round in 0..2 {
            assert_eq!(api.get(&format!("/a{round}")).await.0, 200);
            settle().await;
            assert_eq!(other.get(&format!("/b{round}")).await.0, 200);
            settle().await;
        }

        let seen = upstream.seen();
        assert_eq!(seen.len(), 4, "{mode:?}: {seen:?}");
        let bearer = format!("Bearer {TOKEN_VALUE}");
        for request in &seen {
            if request.path.starts_with("/a") {
                // Positive control: the owning route does get the token.
                assert_eq!(request.authorization.as_deref(), Some(bearer.as_str()));
            } else {
                assert_eq!(request.authorization, None, "{mode:?}: {seen:?}");
            }
        }
    }
}

#[tokio::test]
async fn pool_replaces_closed_connection() {
    let fixture = Fixture::new().await;
    let upstream = CountingUpstream::start(&fixture.upstream_ca, Mode::CloseSilently).await;
    let route = fixture.counted_route(API, &upstream);
    let proxy = fixture
        .start_proxy_with(vec![route], PoolSettings::default())
        .await;

    let mut agent = Agent::open(&fixture, proxy, API).await;
    assert_eq!(agent.get("/one").await, (200, "ok".to_owned()));
    settle().await;
    assert_eq!(agent.get("/two").await, (200, "ok".to_owned()));
    assert_eq!(upstream.accepted(), 2, "{:?}", upstream.seen());
}

#[tokio::test]
async fn pool_retries_idempotent_request_once() {
    let fixture = Fixture::new().await;
    let upstream = CountingUpstream::start(&fixture.upstream_ca, Mode::DropSecond).await;
    let route = fixture.counted_route(API, &upstream);
    let proxy = fixture
        .start_proxy_with(vec![route], PoolSettings::default())
        .await;

    let mut agent = Agent::open(&fixture, proxy, API).await;
    assert_eq!(agent.get("/one").await, (200, "ok".to_owned()));
    settle().await;
    // The pooled connection takes the request and closes without a response, so the GET
    // is sent again on a fresh connection.
    assert_eq!(agent.get("/two").await, (200, "ok".to_owned()));
    let seen: Vec<(usize, String)> = upstream
        .seen()
        .into_iter()
        .map(|s| (s.connection, s.path))
        .collect();
    let expected = [(0, "/one"), (0, "/two"), (1, "/two")];
    let expected: Vec<(usize, String)> = expected
        .iter()
        .map(|(c, p)| (*c, (*p).to_owned()))
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn pool_never_retries_written_post() {
    let fixture = Fixture::new().await;
    let upstream = CountingUpstream::start(&fixture.upstream_ca, Mode::DropSecond).await;
    let route = fixture.counted_route(API, &upstream);
    let proxy = fixture
        .start_proxy_with(vec![route], PoolSettings::default())
        .await;

    let mut agent = Agent::open(&fixture, proxy, API).await;
    assert_eq!(agent.get("/one").await, (200, "ok".to_owned()));
    settle().await;
    // The POST reached the upstream, which may have acted on it: it is not sent twice.
    let (status, _) = agent.send("POST", "/two").await;
    assert_eq!(status, 502);
    assert_eq!(upstream.accepted(), 1, "{:?}", upstream.seen());
    assert_eq!(upstream.seen().len(), 2, "{:?}", upstream.seen());
}
