//! A scripted HTTPS API on loopback: a test gives a function from each request to its
//! response, and the server streams the response body chunk by chunk, as an API that
//! replies with server-sent events does. Every request is recorded.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::ca::TestCa;
use crate::server::RecordedRequest;

/// One scripted response: status, content type and the body in the chunks it is sent in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedResponse {
    pub status: u16,
    pub content_type: String,
    pub chunks: Vec<Vec<u8>>,
}

impl ScriptedResponse {
    /// Builds a `200` JSON response sent in one chunk.
    pub fn json(body: &str) -> ScriptedResponse {
        ScriptedResponse {
            status: 200,
            content_type: "application/json".to_owned(),
            chunks: vec![body.as_bytes().to_vec()],
        }
    }

    /// Builds a `200` server-sent event stream, one chunk per `(event, data)` pair.
    pub fn sse(events: &[(&str, String)]) -> ScriptedResponse {
        ScriptedResponse {
            status: 200,
            content_type: "text/event-stream".to_owned(),
            chunks: events
                .iter()
                .map(|(event, data)| format!("event: {event}\ndata: {data}\n\n").into_bytes())
                .collect(),
        }
    }

    /// Builds a response with `status` and a plain-text body.
    pub fn status(status: u16, body: &str) -> ScriptedResponse {
        ScriptedResponse {
            status,
            content_type: "text/plain".to_owned(),
            chunks: vec![body.as_bytes().to_vec()],
        }
    }
}

/// The function that builds the response to each request.
pub type Script = Arc<dyn Fn(&RecordedRequest) -> ScriptedResponse + Send + Sync>;

/// A scripted HTTPS server on `127.0.0.1`, running on its own thread so that
/// synchronous tests can block while it serves. Dropping it stops the server.
pub struct ScriptedServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for ScriptedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ScriptedServer {
    /// Starts the server with a certificate for `names` signed by `ca`.
    ///
    /// # Panics
    ///
    /// Panics if the thread, its runtime or a loopback listener cannot start.
    pub fn start(ca: &TestCa, names: &[&str], script: Script) -> ScriptedServer {
        let acceptor = TlsAcceptor::from(ca.server_config(names));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();

        let records = requests.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("building a test runtime");
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("binding a loopback port");
                ready_tx
                    .send(
                        listener
                            .local_addr()
                            .expect("bound listener has an address"),
                    )
                    .expect("the starting thread waits for the address");
                tokio::select! {
                    () = accept_loop(listener, acceptor, records, script) => {}
                    _ = shutdown_rx => {}
                }
            });
        });
        let addr = ready_rx
            .recv()
            .expect("the server thread reports its address");
        ScriptedServer {
            addr,
            requests,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    /// Returns the listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns a copy of every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests
            .lock()
            .expect("records lock is never poisoned")
            .clone()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    records: Arc<Mutex<Vec<RecordedRequest>>>,
    script: Script,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let records = records.clone();
        let script = script.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            let sni = stream.get_ref().1.server_name().map(str::to_owned);
            let service = service_fn(move |request: Request<Incoming>| {
                let records = records.clone();
                let script = script.clone();
                let sni = sni.clone();
                async move { Ok::<_, Infallible>(answer(request, sni, &records, &script).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    sni: Option<String>,
    records: &Mutex<Vec<RecordedRequest>>,
    script: &Script,
) -> Response<BoxBody<Bytes, Infallible>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|collected| collected.to_bytes().to_vec())
        .unwrap_or_default();
    let recorded = RecordedRequest {
        tls: true,
        sni,
        version: parts.version,
        method: parts.method.to_string(),
        host: parts
            .headers
            .get(http::header::HOST)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .or_else(|| parts.uri.authority().map(|authority| authority.to_string())),
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body,
    };
    let response = script(&recorded);
    records
        .lock()
        .expect("records lock is never poisoned")
        .push(recorded);

    let (mut sender, body) = Channel::<Bytes>::new(1);
    tokio::spawn(async move {
        for chunk in response.chunks {
            if sender.send_data(Bytes::from(chunk)).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .status(response.status)
        .header(http::header::CONTENT_TYPE, response.content_type)
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(body.boxed())
        .expect("a scripted status and content type are valid")
}
