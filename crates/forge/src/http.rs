//! A minimal HTTPS client for forge APIs: one HTTP/1.1 request per connection, rustls with
//! the ring provider and the system's root certificates, and no proxy.
//!
//! Proxy variables are never read, so a token cannot be sent to a proxy the environment
//! names. Plain `http://` is accepted only for loopback hosts, which is what tests use.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::error::ForgeError;

/// Largest response body read from a forge.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Location of a forge's API, checked once.
#[derive(Debug, Clone)]
pub(crate) struct ApiBase {
    tls: bool,
    host: String,
    port: u16,
    /// Path prefix without a trailing slash, such as `/api/v1`.
    prefix: String,
}

impl ApiBase {
    /// Parses `api_url` and appends `suffix` (such as `/api/v1`) to its path.
    pub fn parse(api_url: &str, suffix: &str) -> Result<ApiBase, ForgeError> {
        let invalid = |why: &str| ForgeError::Config(format!("api_url '{api_url}': {why}"));
        let uri: Uri = api_url.parse().map_err(|_| invalid("not a URL"))?;
        if uri.query().is_some() {
            return Err(invalid("a query is not allowed"));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(invalid("credentials in the URL are not allowed"));
        }
        let host = uri.host().ok_or_else(|| invalid("missing host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") if is_loopback(&host) => false,
            Some("http") => {
                return Err(invalid(
                    "use https://; plain http is allowed only on loopback",
                ));
            }
            _ => return Err(invalid("expected https://")),
        };
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let prefix = format!("{}{suffix}", uri.path().trim_end_matches('/'));
        Ok(ApiBase {
            tls,
            host,
            port,
            prefix,
        })
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A response: status and a bounded body.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Bytes,
}

/// Sends one request to `base` + `path`. The error is a reason without the token.
pub(crate) async fn send(
    base: &ApiBase,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Response, String> {
    match tokio::time::timeout(timeout, send_inner(base, method, path, headers, body)).await {
        Ok(result) => result,
        Err(_) => Err(format!("timed out after {} s", timeout.as_secs())),
    }
}

async fn send_inner(
    base: &ApiBase,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<Response, String> {
    let tcp = TcpStream::connect((base.host.as_str(), base.port))
        .await
        .map_err(|error| format!("cannot connect to {}:{}: {error}", base.host, base.port))?;
    if base.tls {
        let name = rustls::pki_types::ServerName::try_from(base.host.clone())
            .map_err(|_| format!("invalid TLS server name '{}'", base.host))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await
            .map_err(|error| format!("TLS handshake with {} failed: {error}", base.host))?;
        exchange(base, tls, method, path, headers, body).await
    } else {
        exchange(base, tcp, method, path, headers, body).await
    }
}

async fn exchange<S>(
    base: &ApiBase,
    stream: S,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<Response, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("HTTP handshake failed: {error}"))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!("forge connection ended with an error: {error}");
        }
    });

    let default_port = if base.tls { 443 } else { 80 };
    let host_header = if base.port == default_port {
        base.host.clone()
    } else {
        format!("{}:{}", base.host, base.port)
    };
    let mut request = Request::builder()
        .method(method)
        .uri(format!("{}{path}", base.prefix))
        .header(http::header::HOST, host_header)
        .header(http::header::USER_AGENT, "bot-bottle")
        .header(http::header::ACCEPT, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = match body {
        Some(bytes) => {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
            Bytes::from(bytes)
        }
        None => Bytes::new(),
    };
    let request = request
        .body(Full::new(body))
        .map_err(|_| "cannot build the request; check api_url and the repo path".to_owned())?;

    let response = sender
        .send_request(request)
        .await
        .map_err(|error| format!("sending the request failed: {error}"))?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|error| format!("reading the response failed: {error}"))?
        .to_bytes();
    Ok(Response { status, body })
}

/// Returns the TLS client configuration (ring provider, system roots), built once.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let loaded = rustls_native_certs::load_native_certs();
            for cert in loaded.certs {
                // A certificate the store cannot parse is skipped, as browsers do.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("no system root certificates found; install ca-certificates".into());
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|error| format!("TLS configuration failed: {error}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

/// Percent-encodes one path segment (everything but unreserved characters).
pub(crate) fn encode_segment(segment: &str) -> String {
    let mut out = String::new();
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_and_loopback_http_accepted() {
        let base = ApiBase::parse("https://forge.example.org/", "/api/v1").expect("https");
        assert!(base.tls);
        assert_eq!(base.port, 443);
        assert_eq!(base.prefix, "/api/v1");
        let base = ApiBase::parse("https://h.example.org:8443/git", "/api/v4").expect("path");
        assert_eq!(base.prefix, "/git/api/v4");
        assert_eq!(base.port, 8443);
        let base = ApiBase::parse("http://127.0.0.1:3000", "").expect("loopback");
        assert!(!base.tls);
        ApiBase::parse("http://[::1]:3000", "").expect("loopback v6");
    }

    #[test]
    fn plain_http_elsewhere_rejected() {
        for url in [
            "http://forge.example.org",
            "ftp://127.0.0.1",
            "forge.example.org",
            "https://user:pw@forge.example.org",
            "https://forge.example.org/?a=b",
        ] {
            assert!(ApiBase::parse(url, "").is_err(), "{url}");
        }
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("team/widgets"), "team%2Fwidgets");
        assert_eq!(encode_segment("a b?"), "a%20b%3F");
        assert_eq!(encode_segment("ok-1_2.3~"), "ok-1_2.3~");
    }
}
