//! A recording HTTPS and HTTP server on loopback: it stores every request it receives
//! so a test can check what reached the "internet", and replies with a small JSON body.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::ca::TestCa;

/// Path prefix that the server redirects to [`REDIRECT_TARGET`].
pub const REDIRECT_PATH: &str = "/redirect";

/// Path whose response body is streamed: [`STREAM_FIRST_CHUNK`] at once,
/// then [`STREAM_LAST_CHUNK`] only after [`RecordingServer::release_stream`].
pub const STREAM_PATH: &str = "/stream";

/// First chunk of the [`STREAM_PATH`] body.
pub const STREAM_FIRST_CHUNK: &[u8] = b"first-chunk\n";

/// Last chunk of the [`STREAM_PATH`] body.
pub const STREAM_LAST_CHUNK: &[u8] = b"last-chunk\n";

/// Redirect target of [`REDIRECT_PATH`]: a host that tests keep off every allowlist.
pub const REDIRECT_TARGET: &str = "https://evil.example/landing";

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Whether it arrived over TLS.
    pub tls: bool,
    /// TLS server name the client sent, if any.
    pub sni: Option<String>,
    /// HTTP version.
    pub version: http::Version,
    /// Method.
    pub method: String,
    /// `Host` header, or the URI authority for HTTP/2.
    pub host: Option<String>,
    /// Path and query.
    pub path: String,
    /// Headers in arrival order, names in lower case. Non-UTF-8 values are lossily decoded.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// Returns every value of header `name` (case-insensitive).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// Returns true if `needle` appears anywhere in the request: path, headers or body.
    pub fn contains(&self, needle: &str) -> bool {
        let in_headers = self
            .headers
            .iter()
            .any(|(name, value)| name.contains(needle) || value.contains(needle));
        let in_body = self
            .body
            .windows(needle.len().max(1))
            .any(|window| window == needle.as_bytes());
        self.path.contains(needle) || in_headers || in_body
    }
}

/// State shared by the server's connections and its handles.
#[derive(Debug, Default)]
struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    release_stream: tokio::sync::Notify,
}

type Records = Arc<Shared>;

/// A recording server with an HTTPS and a plain HTTP listener on `127.0.0.1`, each on an
/// ephemeral port. It runs on the current tokio runtime and stops when dropped.
#[derive(Debug)]
pub struct RecordingServer {
    https_addr: SocketAddr,
    http_addr: SocketAddr,
    records: Records,
    tasks: JoinSet<()>,
}

impl RecordingServer {
    /// Starts the server with a certificate for `names` signed by `ca`.
    ///
    /// # Panics
    ///
    /// Panics if a loopback port cannot be bound or a name is not a valid DNS name.
    pub async fn start(ca: &TestCa, names: &[&str]) -> RecordingServer {
        RecordingServer::start_with_config(ca.server_config(names)).await
    }

    async fn start_with_config(config: Arc<rustls::ServerConfig>) -> RecordingServer {
        let acceptor = TlsAcceptor::from(config);
        let https = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port");
        let http = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port");
        let records = Records::default();

        let mut tasks = JoinSet::new();
        let https_addr = https.local_addr().expect("bound listener has an address");
        let http_addr = http.local_addr().expect("bound listener has an address");
        tasks.spawn(accept_loop(https, Some(acceptor), records.clone()));
        tasks.spawn(accept_loop(http, None, records.clone()));
        RecordingServer {
            https_addr,
            http_addr,
            records,
            tasks,
        }
    }

    /// Returns the HTTPS listener's address.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// Returns the plain HTTP listener's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Returns a copy of every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.records
            .requests
            .lock()
            .expect("records lock is never poisoned")
            .clone()
    }

    /// Lets the pending (or next) [`STREAM_PATH`] response send its last chunk.
    pub fn release_stream(&self) {
        self.records.release_stream.notify_one();
    }

    /// Returns a handle that reads the records, usable after the server moved elsewhere.
    pub fn records_handle(&self) -> RecordsHandle {
        RecordsHandle {
            records: self.records.clone(),
        }
    }

    /// Stops both listeners and every open connection.
    pub fn stop(&mut self) {
        self.tasks.abort_all();
    }
}

impl Drop for RecordingServer {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// Shared read access to a server's records.
#[derive(Debug, Clone)]
pub struct RecordsHandle {
    records: Records,
}

impl RecordsHandle {
    /// Returns a copy of every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.records
            .requests
            .lock()
            .expect("records lock is never poisoned")
            .clone()
    }
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, records: Records) {
    // Connections live in this set, so aborting the loop also closes them.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let records = records.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            match tls {
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let sni = stream.get_ref().1.server_name().map(str::to_owned);
                    serve(TokioIo::new(stream), true, sni, records).await;
                }
                None => serve(TokioIo::new(stream), false, None, records).await,
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn serve<I>(io: I, tls: bool, sni: Option<String>, records: Records)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let records = records.clone();
        let sni = sni.clone();
        async move { Ok::<_, Infallible>(record(request, tls, sni, &records).await) }
    });
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(io, service)
        .await;
}

async fn record(
    mut request: Request<Incoming>,
    tls: bool,
    sni: Option<String>,
    records: &Records,
) -> Response<BoxBody<Bytes, Infallible>> {
    let is_websocket = request
        .headers()
        .get(http::header::UPGRADE)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let upgrade = is_websocket.then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes().to_vec())
        .unwrap_or_default();
    let host = parts
        .headers
        .get(http::header::HOST)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .or_else(|| parts.uri.authority().map(|authority| authority.to_string()));
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |pq| pq.to_string());
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();

    let count = {
        let mut records = records
            .requests
            .lock()
            .expect("records lock is never poisoned");
        records.push(RecordedRequest {
            tls,
            sni,
            version: parts.version,
            method: parts.method.to_string(),
            host,
            path: path.clone(),
            headers,
            body,
        });
        records.len()
    };

    if path.starts_with(STREAM_PATH) {
        let (mut sender, body) = Channel::<Bytes>::new(1);
        let records = records.clone();
        tokio::spawn(async move {
            let _ = sender
                .send_data(Bytes::from_static(STREAM_FIRST_CHUNK))
                .await;
            records.release_stream.notified().await;
            let _ = sender
                .send_data(Bytes::from_static(STREAM_LAST_CHUNK))
                .await;
        });
        return Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "text/plain")
            .body(body.boxed())
            .expect("static response parts are valid");
    }
    if let Some(upgrade) = upgrade {
        tokio::spawn(echo_upgraded(upgrade));
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(http::header::CONNECTION, "upgrade")
            .header(http::header::UPGRADE, "websocket")
            .body(Full::new(Bytes::new()).boxed())
            .expect("static response parts are valid");
    }
    if path.starts_with(REDIRECT_PATH) {
        return Response::builder()
            .status(StatusCode::FOUND)
            .header(http::header::LOCATION, REDIRECT_TARGET)
            .body(Full::new(Bytes::from_static(b"{\"redirect\":true}")).boxed())
            .expect("static response parts are valid");
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(format!("{{\"recorded\":{count}}}"))).boxed())
        .expect("static response parts are valid")
}

/// Echoes every byte of an upgraded connection back, without parsing WebSocket frames.
async fn echo_upgraded(upgrade: hyper::upgrade::OnUpgrade) {
    let Ok(upgraded) = upgrade.await else {
        return;
    };
    let (mut reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
    let _ = tokio::io::copy(&mut reader, &mut writer).await;
}

/// A [`RecordingServer`] running on its own thread and runtime, for synchronous tests.
/// Dropping it stops the server and joins the thread.
#[derive(Debug)]
pub struct RecordingServerThread {
    https_addr: SocketAddr,
    http_addr: SocketAddr,
    records: RecordsHandle,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RecordingServerThread {
    /// Starts a recording server for `names` signed by `ca` on a new thread.
    ///
    /// # Panics
    ///
    /// Panics if the thread or its runtime cannot start.
    pub fn start(ca: &TestCa, names: &[&str]) -> RecordingServerThread {
        let config = ca.server_config(names);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();

        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building a test runtime");
            runtime.block_on(async move {
                let server = RecordingServer::start_with_config(config).await;
                let info = (server.https_addr, server.http_addr, server.records_handle());
                ready_tx
                    .send(info)
                    .expect("the starting thread waits for the address");
                let _ = shutdown_rx.await;
                drop(server);
            });
        });

        let (https_addr, http_addr, records) = ready_rx
            .recv()
            .expect("the server thread reports its addresses");
        RecordingServerThread {
            https_addr,
            http_addr,
            records,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// Returns the HTTPS listener's address.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// Returns the plain HTTP listener's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Returns a copy of every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.records.requests()
    }
}

impl Drop for RecordingServerThread {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
