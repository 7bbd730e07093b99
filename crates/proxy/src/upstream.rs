//! Connections to upstreams: address checks at connect time, verified TLS, and an HTTP/1.1
//! or HTTP/2 client connection chosen by ALPN.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bottle_policy::{CompiledRoute, Host, forbidden_upstream_reason};
use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::ProxyError;

/// Time allowed for one TCP connect to an upstream address.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Failure to reach an upstream. Messages name addresses, never request data.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// DNS resolution failed.
    #[error("resolving {host} failed: {source}")]
    Resolve {
        /// The host.
        host: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The name resolved to no address.
    #[error("{host} resolved to no address")]
    NoAddress {
        /// The host.
        host: String,
    },
    /// A resolved address is internal, so every address of the lookup is refused.
    #[error("{host} resolved to {address}, {reason}; name it in the route's `connect` to allow it")]
    Forbidden {
        /// The host.
        host: String,
        /// The refused address.
        address: std::net::IpAddr,
        /// The range it belongs to.
        reason: &'static str,
    },
    /// TCP connect failed.
    #[error("connecting to {address} failed: {source}")]
    Connect {
        /// The address.
        address: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The TLS handshake or certificate verification failed.
    #[error("TLS to {host} failed: {source}")]
    Tls {
        /// The host.
        host: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The upstream sent 101 for a request that did not request an upgrade.
    #[error("{host} switched protocols without being asked to")]
    UnexpectedUpgrade {
        /// The host.
        host: String,
    },
    /// The HTTP exchange failed.
    #[error("HTTP exchange with {host} failed: {source}")]
    Http {
        /// The host.
        host: String,
        /// The failure.
        source: hyper::Error,
    },
}

/// A ready client connection to one upstream.
pub enum UpstreamSender {
    /// HTTP/1.1.
    Http1(http1::SendRequest<Full<Bytes>>),
    /// HTTP/2 (negotiated by ALPN).
    Http2(http2::SendRequest<Full<Bytes>>),
}

/// Builds the TLS client configuration of one route: the system roots plus the route's
/// `upstream_ca` certificates, with full verification and ALPN `h2`, `http/1.1`.
pub fn route_tls_config(
    route: &CompiledRoute,
    system_roots: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, ProxyError> {
    let mut roots = RootCertStore::empty();
    // Broken system certificates are skipped rather than fatal, as browsers do.
    let _ = roots.add_parsable_certificates(system_roots.iter().cloned());
    if let Some(path) = &route.route.upstream_ca {
        for cert in load_pem_certs(route, path)? {
            roots.add(cert).map_err(|err| ProxyError::UpstreamCa {
                rule: route.rule_id.clone(),
                path: path.clone(),
                message: err.to_string(),
            })?;
        }
    }

    let mut config = ClientConfig::builder_with_provider(crate::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn load_pem_certs(
    route: &CompiledRoute,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ProxyError> {
    let error = |message: String| ProxyError::UpstreamCa {
        rule: route.rule_id.clone(),
        path: path.to_owned(),
        message,
    };
    let pem = std::fs::read(path).map_err(|err| error(err.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| error(err.to_string()))?;
    if certs.is_empty() {
        return Err(error("the file contains no PEM certificate".to_owned()));
    }
    Ok(certs)
}

/// Opens a TCP connection for `host:port` on `route`.
///
/// With `connect` set, that address is dialled as configured. Otherwise the host is
/// resolved once, every address is checked, and the checked addresses are dialled in
/// order, so a second lookup cannot swap in another address.
pub async fn dial(
    route: &CompiledRoute,
    host: &Host,
    port: u16,
) -> Result<TcpStream, UpstreamError> {
    let addresses: Vec<SocketAddr> = match &route.route.connect {
        Some(target) => tokio::net::lookup_host(target.as_str())
            .await
            .map_err(|source| UpstreamError::Resolve {
                host: target.clone(),
                source,
            })?
            .collect(),
        None => {
            let addresses: Vec<SocketAddr> = match host {
                Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
                Host::Domain(name) => tokio::net::lookup_host((name.as_str(), port))
                    .await
                    .map_err(|source| UpstreamError::Resolve {
                        host: name.clone(),
                        source,
                    })?
                    .collect(),
            };
            for address in &addresses {
                if let Some(reason) = forbidden_upstream_reason(address.ip()) {
                    return Err(UpstreamError::Forbidden {
                        host: host.to_string(),
                        address: address.ip(),
                        reason,
                    });
                }
            }
            addresses
        }
    };

    let mut last_error = None;
    for address in &addresses {
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await;
        let source = match connected {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(source)) => source,
            Err(_) => std::io::Error::from(std::io::ErrorKind::TimedOut),
        };
        last_error = Some(UpstreamError::Connect {
            address: address.to_string(),
            source,
        });
    }
    Err(last_error.unwrap_or_else(|| UpstreamError::NoAddress {
        host: host.to_string(),
    }))
}

/// Connects to the upstream over TLS (SNI and verification against the route host) and
/// performs the HTTP handshake for the protocol ALPN chose. With `upgrades`, the HTTP/1.1
/// connection can switch protocols (pass a configuration that offers only `http/1.1`).
pub async fn connect_tls(
    route: &CompiledRoute,
    tls: Arc<ClientConfig>,
    host: &Host,
    port: u16,
    upgrades: bool,
) -> Result<UpstreamSender, UpstreamError> {
    let tcp = dial(route, host, port).await?;
    let server_name = match host {
        Host::Domain(name) => ServerName::try_from(name.clone()),
        Host::Ip(ip) => Ok(ServerName::IpAddress((*ip).into())),
    }
    .map_err(|err| UpstreamError::Tls {
        host: host.to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, err),
    })?;
    let stream = TlsConnector::from(tls)
        .connect(server_name, tcp)
        .await
        .map_err(|source| UpstreamError::Tls {
            host: host.to_string(),
            source,
        })?;

    let is_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(stream);
    let http_error = |source| UpstreamError::Http {
        host: host.to_string(),
        source,
    };
    if upgrades {
        let (sender, connection) = http1::handshake(io).await.map_err(http_error)?;
        tokio::spawn(connection.with_upgrades());
        Ok(UpstreamSender::Http1(sender))
    } else if is_h2 {
        let (sender, connection) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(http_error)?;
        tokio::spawn(connection);
        Ok(UpstreamSender::Http2(sender))
    } else {
        let (sender, connection) = http1::handshake(io).await.map_err(http_error)?;
        tokio::spawn(connection);
        Ok(UpstreamSender::Http1(sender))
    }
}

/// Connects to a plain HTTP upstream (routes on port 80). With `upgrades`, the connection
/// can switch protocols.
pub async fn connect_plain(
    route: &CompiledRoute,
    host: &Host,
    port: u16,
    upgrades: bool,
) -> Result<UpstreamSender, UpstreamError> {
    let tcp = dial(route, host, port).await?;
    let (sender, connection) = http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|source| UpstreamError::Http {
            host: host.to_string(),
            source,
        })?;
    if upgrades {
        tokio::spawn(connection.with_upgrades());
    } else {
        tokio::spawn(connection);
    }
    Ok(UpstreamSender::Http1(sender))
}
