//! Clients that speak through an HTTP proxy: a hand-rolled CONNECT (so tests control
//! every byte), a TLS handshake with a chosen trust store and SNI, and one-shot HTTP/1.1
//! and HTTP/2 requests over any stream.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Maximum size of a proxy's CONNECT response head.
const MAX_HEAD_LEN: usize = 64 * 1024;

/// The proxy's response to a CONNECT.
#[derive(Debug, Clone)]
pub struct ConnectReply {
    /// Status code.
    pub status: u16,
    /// The response head (status line and headers) as text.
    pub head: String,
    /// The body, read to its `Content-Length` (empty on success).
    pub body: Vec<u8>,
}

impl ConnectReply {
    /// Returns the first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// Returns the body as text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `CONNECT authority` to the proxy and reads its response. On a 2xx status the
/// returned stream is the tunnel.
pub async fn connect_tunnel(
    proxy: SocketAddr,
    authority: &str,
) -> io::Result<(ConnectReply, TcpStream)> {
    let mut stream = TcpStream::connect(proxy).await?;
    let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;

    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > MAX_HEAD_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "CONNECT reply head too long",
            ));
        }
        let byte = stream.read_u8().await?;
        head.push(byte);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "CONNECT reply has no status"))?;

    let mut reply = ConnectReply {
        status,
        head,
        body: Vec::new(),
    };
    if !(200..300).contains(&status) {
        let length: usize = reply
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await?;
        reply.body = body;
    }
    Ok((reply, stream))
}

/// Performs a TLS handshake over `stream`, verifying the server as `server_name`.
/// Set `config.enable_sni = false` to send no SNI.
pub async fn tls_handshake<S>(
    stream: S,
    config: Arc<ClientConfig>,
    server_name: &str,
) -> io::Result<TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
    TlsConnector::from(config).connect(name, stream).await
}

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl HttpReply {
    /// Returns the body as text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Returns header `name` as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// Sends one HTTP/1.1 request over `io` and reads the whole response. The request URI is
/// written as given, so an absolute URI produces an absolute-form request for a proxy.
pub async fn send_http1<S>(io: S, request: Request<Full<Bytes>>) -> Result<HttpReply, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    collect(response).await
}

/// Sends one HTTP/2 request over `io` (which must have negotiated `h2`) and reads the
/// whole response.
pub async fn send_http2<S>(io: S, request: Request<Full<Bytes>>) -> Result<HttpReply, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    collect(response).await
}

async fn collect(
    response: http::Response<hyper::body::Incoming>,
) -> Result<HttpReply, hyper::Error> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(HttpReply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Sends one HTTP/1.1 request for a protocol upgrade. On a 101 response it returns
/// the upgraded connection as well.
pub async fn send_http1_upgrade<S>(
    io: S,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Option<TokioIo<hyper::upgrade::Upgraded>>), hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(connection.with_upgrades());
    let response = sender.send_request(request).await?;
    let status = response.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        return Ok((status, None));
    }
    let upgraded = hyper::upgrade::on(response).await?;
    Ok((status, Some(TokioIo::new(upgraded))))
}
