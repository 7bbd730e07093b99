//! The fake internet and the agent-side client of the escape suite: a raw TCP sink that
//! records every byte it receives, and an executor that sends an attack to the proxy as
//! raw bytes (outer connection, inside a TLS tunnel, raw HTTP/2 frames, WebSocket frames)
//! and collects what the agent sees.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

/// Upper bound for one exchange, so a proxy that hangs fails the case instead of the run.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);

/// A TCP listener on loopback that never replies and appends every received byte to one
/// buffer, so a test can prove that nothing, not even a TLS ClientHello, reached it.
pub struct RawSink {
    addr: SocketAddr,
    bytes: Arc<Mutex<Vec<u8>>>,
    task: JoinHandle<()>,
}

impl RawSink {
    pub async fn start() -> RawSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let shared = bytes.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    while let Ok(read) = stream.read(&mut buffer).await {
                        if read == 0 {
                            break;
                        }
                        shared
                            .lock()
                            .expect("sink lock")
                            .extend_from_slice(&buffer[..read]);
                    }
                });
            }
        });
        RawSink { addr, bytes, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.bytes.lock().expect("sink lock").clone()
    }
}

impl Drop for RawSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the agent sends to the proxy.
#[derive(Debug, Clone)]
pub enum Exchange {
    /// Raw bytes on a new connection to the proxy listener (CONNECT or absolute-form).
    Outer(Vec<u8>),
    /// `CONNECT authority`, TLS trusting the bottle CA with `sni` (no SNI extension when
    /// `None`; the certificate is then checked against the CONNECT host), then raw bytes.
    Tunnel {
        authority: String,
        sni: Option<String>,
        bytes: Vec<u8>,
    },
    /// `CONNECT authority`, then a TLS client that trusts another CA, then raw bytes.
    Distrusting { authority: String, bytes: Vec<u8> },
    /// `CONNECT authority`, then plaintext instead of a ClientHello.
    Plaintext { authority: String, bytes: Vec<u8> },
    /// `CONNECT authority`, TLS with ALPN `h2`, the connection preface, and one HEADERS
    /// frame (literal header fields, no Huffman) with optional DATA. Header names and
    /// values are sent exactly as given.
    Http2 {
        authority: String,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        data: Option<Vec<u8>>,
    },
    /// `CONNECT authority`, TLS, a WebSocket handshake (`extra` header lines appended), then
    /// `frames` once the answer is 101.
    WebSocket {
        authority: String,
        extra: String,
        frames: Vec<Vec<u8>>,
    },
    /// `CONNECT` to the proxy's own address.
    ConnectSelf,
    /// Raw bytes straight to the raw sink, bypassing the proxy.
    Direct(Vec<u8>),
    /// Every exchange at once.
    Concurrent(Vec<Exchange>),
    /// Each exchange after the previous one ended.
    Sequence(Vec<Exchange>),
}

/// One HTTP response the agent received.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// `X-Bottle-Decision`, present only on the proxy's own responses.
    pub decision: Option<String>,
    /// Head and body as text.
    pub text: String,
}

impl Response {
    /// Returns true when the response came from an upstream: it has no decision header
    /// and is not a parser error, which the test sinks never send.
    pub fn is_from_upstream(&self) -> bool {
        self.decision.is_none() && self.status != 400 && self.status != 0
    }
}

/// Everything the agent saw in one exchange.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub responses: Vec<Response>,
    /// Every byte read, decrypted, for the "no echo" checks.
    pub raw: Vec<u8>,
    /// HTTP/2 RST_STREAM and GOAWAY error codes received.
    pub h2_errors: Vec<String>,
    /// WebSocket frames sent after a 101 that came back from the echoing upstream.
    pub echoed_frames: usize,
    /// Set when the exchange could not even start (the proxy closed the tunnel, or TLS
    /// failed), with the error.
    pub failure: Option<String>,
}

impl Reply {
    fn merge(&mut self, other: Reply) {
        self.responses.extend(other.responses);
        self.raw.extend(other.raw);
        self.h2_errors.extend(other.h2_errors);
        self.echoed_frames += other.echoed_frames;
        if self.failure.is_none() {
            self.failure = other.failure;
        }
    }
}

/// Where the agent's traffic goes.
#[derive(Clone)]
pub struct Agent {
    pub proxy: SocketAddr,
    pub raw_sink: SocketAddr,
    /// The bottle CA, as the agent's tools trust it.
    pub trusting: Arc<ClientConfig>,
    /// A CA unrelated to the bottle, for a client that rejects the proxy's certificate.
    pub distrusting: Arc<ClientConfig>,
    /// Whether HTTP/1.1 exchanges shut down their write side after the request. The
    /// proxy then closes at once, possibly before answering, so this is only for inputs
    /// whose answer does not matter, such as incomplete requests.
    pub half_close: bool,
}

impl Agent {
    /// Runs `send` and returns what the agent saw, or an error when it hangs.
    pub async fn exchange(&self, send: &Exchange) -> Result<Reply, String> {
        tokio::time::timeout(EXCHANGE_TIMEOUT, self.run(send))
            .await
            .map_err(|_| format!("no end of the exchange within {EXCHANGE_TIMEOUT:?}"))
    }

    async fn run(&self, send: &Exchange) -> Reply {
        match send {
            Exchange::Concurrent(sends) => {
                let mut tasks = tokio::task::JoinSet::new();
                for send in sends.clone() {
                    let agent = self.clone();
                    tasks.spawn(async move { agent.single(&send).await });
                }
                let mut reply = Reply::default();
                while let Some(joined) = tasks.join_next().await {
                    reply.merge(joined.expect("exchange task"));
                }
                reply
            }
            Exchange::Sequence(sends) => {
                let mut reply = Reply::default();
                for send in sends {
                    reply.merge(self.single(send).await);
                }
                reply
            }
            single => self.single(single).await,
        }
    }

    /// Runs one exchange; composite exchanges nest only one level.
    async fn single(&self, send: &Exchange) -> Reply {
        match send {
            Exchange::ConnectSelf => {
                let port = self.proxy.port();
                let request = format!(
                    "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
                     Connection: close\r\n\r\n"
                );
                let stream = TcpStream::connect(self.proxy).await.expect("connect");
                finish_http1(stream, request.as_bytes(), false).await
            }
            Exchange::Outer(bytes) => {
                let stream = TcpStream::connect(self.proxy).await.expect("connect");
                finish_http1(stream, bytes, self.half_close).await
            }
            Exchange::Direct(bytes) => {
                let mut stream = TcpStream::connect(self.raw_sink).await.expect("connect");
                stream.write_all(bytes).await.expect("write");
                let _ = stream.shutdown().await;
                Reply::default()
            }
            Exchange::Tunnel {
                authority,
                sni,
                bytes,
            } => {
                let mut config = (*self.trusting).clone();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                config.enable_sni = sni.is_some();
                let name = sni.clone().unwrap_or_else(|| host_of(authority));
                match self.tls_tunnel(authority, Arc::new(config), &name).await {
                    Ok(tls) => finish_http1(tls, bytes, self.half_close).await,
                    Err(failure) => failed(failure),
                }
            }
            Exchange::Distrusting { authority, bytes } => {
                let name = host_of(authority);
                match self
                    .tls_tunnel(authority, self.distrusting.clone(), &name)
                    .await
                {
                    Ok(tls) => finish_http1(tls, bytes, self.half_close).await,
                    Err(failure) => failed(failure),
                }
            }
            Exchange::Plaintext { authority, bytes } => match self.tunnel(authority).await {
                Ok(stream) => finish_http1(stream, bytes, self.half_close).await,
                Err(failure) => failed(failure),
            },
            Exchange::Http2 {
                authority,
                headers,
                data,
            } => {
                let mut config = (*self.trusting).clone();
                config.alpn_protocols = vec![b"h2".to_vec()];
                let name = host_of(authority);
                match self.tls_tunnel(authority, Arc::new(config), &name).await {
                    Ok(tls) => raw_http2(tls, headers, data.as_deref()).await,
                    Err(failure) => failed(failure),
                }
            }
            Exchange::WebSocket {
                authority,
                extra,
                frames,
            } => {
                let mut config = (*self.trusting).clone();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                let name = host_of(authority);
                match self.tls_tunnel(authority, Arc::new(config), &name).await {
                    Ok(tls) => websocket(tls, &name, extra, frames).await,
                    Err(failure) => failed(failure),
                }
            }
            Exchange::Concurrent(_) | Exchange::Sequence(_) => {
                panic!("composite exchanges do not nest")
            }
        }
    }

    /// Sends CONNECT; on a 2xx answer returns the tunnel, otherwise the refusal as text.
    async fn tunnel(&self, authority: &str) -> Result<TcpStream, Reply> {
        let mut stream = TcpStream::connect(self.proxy).await.expect("connect");
        let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read_u8().await {
                Ok(byte) => head.push(byte),
                Err(_) => break,
            }
        }
        let responses = parse_http1(&head);
        match responses.first() {
            Some(response) if (200..300).contains(&response.status) => Ok(stream),
            _ => {
                // A refusal: read its body too, by its Content-Length.
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let length = text
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|value| value.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                let _ = stream.read_exact(&mut body).await;
                head.extend(body);
                Err(Reply {
                    responses: parse_http1(&head),
                    raw: head,
                    ..Reply::default()
                })
            }
        }
    }

    async fn tls_tunnel(
        &self,
        authority: &str,
        config: Arc<ClientConfig>,
        name: &str,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Reply> {
        let stream = self.tunnel(authority).await?;
        let name = ServerName::try_from(name.to_owned()).expect("valid server name");
        TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|err| Reply {
                failure: Some(format!("TLS failed: {err}")),
                ..Reply::default()
            })
    }
}

fn failed(reply: Reply) -> Reply {
    if reply.responses.is_empty() && reply.failure.is_none() {
        return Reply {
            failure: Some("the tunnel closed without an answer".to_owned()),
            ..reply
        };
    }
    reply
}

/// Returns the host of `authority` as the agent's TLS client names it: IPv4-mapped IPv6
/// literals fold to IPv4, as the proxy's certificate does.
fn host_of(authority: &str) -> String {
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::Ipv6Addr>() {
        Ok(ip) => ip
            .to_ipv4_mapped()
            .map_or_else(|| ip.to_string(), |v4| v4.to_string()),
        Err(_) => host.to_owned(),
    }
}

/// Writes `bytes` and reads every response until the peer closes. The proxy does not
/// support half-closed connections, so the write side stays open and the requests end
/// with `Connection: close` instead.
async fn finish_http1<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    bytes: &[u8],
    half_close: bool,
) -> Reply {
    let mut raw = Vec::new();
    if stream.write_all(bytes).await.is_ok() {
        let _ = stream.flush().await;
        if half_close {
            let _ = stream.shutdown().await;
        }
    }
    let _ = stream.read_to_end(&mut raw).await;
    Reply {
        responses: parse_http1(&raw),
        raw,
        ..Reply::default()
    }
}

/// Splits a byte stream into HTTP/1.1 responses, by `Content-Length` or chunked framing.
pub fn parse_http1(raw: &[u8]) -> Vec<Response> {
    let mut responses = Vec::new();
    let mut rest = raw;
    while rest.starts_with(b"HTTP/1.") {
        let Some(end) = find(rest, b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let header = |name: &str| {
            head.lines().skip(1).find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
        };
        let mut body_start = end + 4;
        let body: Vec<u8> = if status == 101 {
            let body = rest[body_start..].to_vec();
            body_start = rest.len();
            body
        } else if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok())
        {
            let stop = (body_start + length).min(rest.len());
            let body = rest[body_start..stop].to_vec();
            body_start = stop;
            body
        } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let (body, used) = dechunk(&rest[body_start..]);
            body_start += used;
            body
        } else {
            let body = rest[body_start..].to_vec();
            body_start = rest.len();
            body
        };
        responses.push(Response {
            status,
            decision: header("x-bottle-decision"),
            text: format!("{head}\r\n\r\n{}", String::from_utf8_lossy(&body)),
        });
        rest = &rest[body_start..];
    }
    responses
}

fn dechunk(mut input: &[u8]) -> (Vec<u8>, usize) {
    let total = input.len();
    let mut body = Vec::new();
    while let Some(line_end) = find(input, b"\r\n") {
        let size_text = String::from_utf8_lossy(&input[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        input = &input[line_end + 2..];
        if size == 0 {
            let trailer_end = find(input, b"\r\n").map_or(input.len(), |end| end + 2);
            input = &input[trailer_end..];
            break;
        }
        let take = size.min(input.len());
        body.extend_from_slice(&input[..take]);
        input = &input[(take + 2).min(input.len())..];
    }
    (body, total - input.len())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Returns true when `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// Sends the HTTP/2 preface, an empty SETTINGS frame, and stream 1, then reads frames
/// until the connection closes. A response HEADERS frame is recorded as a response with
/// status 0, because decoding the proxy's HPACK is not needed to tell that it answered.
async fn raw_http2<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    headers: &[(Vec<u8>, Vec<u8>)],
    data: Option<&[u8]>,
) -> Reply {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    let mut block = Vec::new();
    for (name, value) in headers {
        // Literal header field without indexing, new name, no Huffman coding.
        block.push(0x00);
        hpack_string(&mut block, name);
        hpack_string(&mut block, value);
    }
    let end_stream = if data.is_none() { 0x1 } else { 0 };
    out.extend(frame(0x1, 0x4 | end_stream, 1, &block));
    if let Some(data) = data {
        out.extend(frame(0x0, 0x1, 1, data));
    }
    let mut reply = Reply::default();
    if stream.write_all(&out).await.is_err() {
        reply.failure = Some("the proxy closed the HTTP/2 connection".to_owned());
        return reply;
    }

    loop {
        let mut header = [0u8; 9];
        if stream.read_exact(&mut header).await.is_err() {
            break;
        }
        let length =
            usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let kind = header[3];
        let flags = header[4];
        let mut payload = vec![0u8; length];
        if stream.read_exact(&mut payload).await.is_err() {
            break;
        }
        reply.raw.extend_from_slice(&payload);
        let code = |offset: usize| {
            payload
                .get(offset..offset + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .unwrap_or(0)
        };
        match kind {
            0x1 => reply.responses.push(Response {
                status: 0,
                decision: None,
                text: String::from_utf8_lossy(&payload).into_owned(),
            }),
            0x3 => reply.h2_errors.push(format!("RST_STREAM {}", code(0))),
            0x7 => {
                reply.h2_errors.push(format!("GOAWAY {}", code(4)));
                break;
            }
            // Acknowledge the server's SETTINGS so it keeps going.
            0x4 if flags & 0x1 == 0 => {
                let _ = stream.write_all(&frame(0x4, 0x1, 0, &[])).await;
            }
            // Stop once stream 1 ended.
            0x0 if flags & 0x1 != 0 => break,
            _ => {}
        }
        if kind == 0x1 && flags & 0x1 != 0 || kind == 0x3 {
            break;
        }
    }
    reply
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).expect("small frame");
    let mut out = length.to_be_bytes()[1..].to_vec();
    out.push(kind);
    out.push(flags);
    out.extend(stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn hpack_string(out: &mut Vec<u8>, text: &[u8]) {
    assert!(text.len() < 127, "short HPACK strings only");
    out.push(u8::try_from(text.len()).expect("short"));
    out.extend_from_slice(text);
}

/// Performs a WebSocket handshake and, on 101, sends `frames` and reads until they all
/// came back or the connection closed; it counts the frames the echoing upstream returned
/// byte for byte.
async fn websocket<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    extra: &str,
    frames: &[Vec<u8>],
) -> Reply {
    let handshake = format!(
        "GET /echo HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    );
    stream.write_all(handshake.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read_u8().await {
            Ok(byte) => head.push(byte),
            Err(_) => break,
        }
    }
    let mut reply = Reply::default();
    let switching = head.starts_with(b"HTTP/1.1 101");
    let mut rest = Vec::new();
    if switching {
        for frame in frames {
            if stream.write_all(frame).await.is_err() {
                break;
            }
        }
        let _ = stream.flush().await;
        // Read until every frame came back or the proxy closed the connection.
        let mut buffer = [0u8; 4096];
        while !frames.iter().all(|frame| contains(&rest, frame)) {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => rest.extend_from_slice(&buffer[..read]),
            }
        }
        reply.echoed_frames = frames.iter().filter(|f| contains(&rest, f)).count();
    } else {
        // A refusal keeps the connection open; its body has a Content-Length.
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let length = text
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse::<usize>().ok())
            .unwrap_or(0);
        rest = vec![0u8; length];
        let _ = stream.read_exact(&mut rest).await;
    }
    head.extend_from_slice(&rest);
    reply.responses = parse_http1(&head);
    reply.raw = head;
    reply
}

/// Builds one masked client frame with `opcode` and the FIN bit as given.
pub fn ws_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x1a, 0x2b, 0x3c, 0x4d];
    let length = u8::try_from(payload.len()).expect("payload under 126 bytes");
    assert!(length < 126, "payload under 126 bytes");
    let mut frame = vec![if fin { 0x80 } else { 0 } | opcode, 0x80 | length];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}
