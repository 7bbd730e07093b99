//! Writing a checked request to an upstream connection: a pooled one when there is one,
//! a fresh one otherwise, and one retry on a fresh connection when a pooled connection
//! fails before anything of the response arrived.

use super::*;
use crate::pool::{PoolKey, is_idempotent};

/// A checked request, ready to be shaped for the upstream's protocol.
#[derive(Clone)]
pub(super) struct Prepared {
    pub(super) parts: http::request::Parts,
    pub(super) body: Full<Bytes>,
    /// Origin-form target.
    pub(super) path_and_query: String,
    /// `host` or `host:port` as the upstream expects it.
    pub(super) authority: String,
}

/// The reason a request could not be sent.
pub(super) enum Failure {
    /// The upstream could not be reached or the exchange failed.
    Upstream(UpstreamError),
    /// The request target cannot be written as a URI.
    Target,
}

/// Builds the request for an HTTP/1.1 (`http2` false) or HTTP/2 connection: origin form
/// and `Host` for HTTP/1.1, absolute form (`:authority`) without `Host` for HTTP/2.
fn shape(
    mut parts: http::request::Parts,
    body: Full<Bytes>,
    path_and_query: &str,
    authority: &str,
    http2: bool,
) -> Result<Request<Full<Bytes>>, Failure> {
    if http2 {
        parts.version = Version::HTTP_2;
        parts.uri = Uri::builder()
            .scheme("https")
            .authority(authority)
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| Failure::Target)?;
        parts.headers.remove(HOST);
    } else {
        parts.version = Version::HTTP_11;
        parts.uri = Uri::try_from(path_and_query).map_err(|_| Failure::Target)?;
        let host = HeaderValue::from_str(authority).expect("a normalized host is a valid header");
        parts.headers.insert(HOST, host);
    }
    Ok(Request::from_parts(parts, body))
}

impl Proxy {
    /// Sends a WebSocket handshake on a connection of its own, which the upgrade consumes.
    pub(super) async fn send_upgrade(
        &self,
        route: &CompiledRoute,
        tunnel: &Tunnel,
        tls: bool,
        prepared: Prepared,
    ) -> Result<Response<Incoming>, Failure> {
        let connected = if tls {
            let config = self.upstream_tls_http1[tunnel.route].clone();
            upstream::connect_tls(route, config, &tunnel.host, tunnel.port, true).await
        } else {
            upstream::connect_plain(route, &tunnel.host, tunnel.port, true).await
        };
        let UpstreamSender::Http1(mut sender) = connected.map_err(Failure::Upstream)? else {
            unreachable!("a connection that allows upgrades offers only HTTP/1.1");
        };
        let Prepared {
            parts,
            body,
            path_and_query,
            authority,
        } = prepared;
        sender
            .send_request(shape(parts, body, &path_and_query, &authority, false)?)
            .await
            .map_err(|source| http_failure(tunnel, source))
    }

    /// Sends an ordinary request, reusing a pooled connection of the same key when there
    /// is one. A pooled connection that fails before the response starts is replaced by
    /// a fresh one once: for any method when the request was never written, and only for
    /// idempotent methods when it may have been.
    pub(super) async fn send_pooled(
        &self,
        route: &CompiledRoute,
        tunnel: &Tunnel,
        tls: bool,
        prepared: Prepared,
    ) -> Result<Response<Incoming>, Failure> {
        let key = PoolKey {
            route: tunnel.route,
            host: tunnel.host.clone(),
            port: tunnel.port,
            tls,
        };
        let mut prepared = prepared;
        if let Some(sender) = self.pool.checkout(&key) {
            let retry_copy = is_idempotent(&prepared.parts.method).then(|| prepared.clone());
            match self.try_send(&key, sender, prepared).await? {
                Sent::Response(response) => return Ok(response),
                Sent::Unsent(request, _) => {
                    tracing::debug!(host = %tunnel.host, "pooled connection closed; retrying on a fresh one");
                    prepared = request;
                }
                Sent::Failed(source) => match retry_copy {
                    Some(copy) => {
                        tracing::debug!(host = %tunnel.host, error = %source, "pooled connection failed; retrying on a fresh one");
                        prepared = copy;
                    }
                    None => return Err(http_failure(tunnel, source)),
                },
            }
        }

        let sender = if tls {
            let config = self.upstream_tls[tunnel.route].clone();
            upstream::connect_tls(route, config, &tunnel.host, tunnel.port, false).await
        } else {
            upstream::connect_plain(route, &tunnel.host, tunnel.port, false).await
        }
        .map_err(Failure::Upstream)?;
        if let UpstreamSender::Http2(sender) = &sender {
            self.pool.share_http2(&key, sender);
        }
        match self.try_send(&key, sender, prepared).await? {
            Sent::Response(response) => Ok(response),
            Sent::Unsent(_, source) | Sent::Failed(source) => Err(http_failure(tunnel, source)),
        }
    }

    /// Writes `prepared` to `sender`; an HTTP/1.1 connection goes back to the pool once
    /// its response has been read.
    async fn try_send(
        &self,
        key: &PoolKey,
        sender: UpstreamSender,
        prepared: Prepared,
    ) -> Result<Sent, Failure> {
        let Prepared {
            parts,
            body,
            path_and_query,
            authority,
        } = prepared;
        let result = match sender {
            UpstreamSender::Http1(mut sender) => {
                let request = shape(parts, body, &path_and_query, &authority, false)?;
                let result = sender.try_send_request(request).await;
                if result.is_ok() {
                    self.pool.checkin_when_idle(key.clone(), sender);
                }
                result
            }
            UpstreamSender::Http2(mut sender) => {
                let request = shape(parts, body, &path_and_query, &authority, true)?;
                sender.try_send_request(request).await
            }
        };
        let unsent = |request: Request<Full<Bytes>>| {
            let (parts, body) = request.into_parts();
            Prepared {
                parts,
                body,
                path_and_query,
                authority,
            }
        };
        Ok(match result {
            Ok(response) => Sent::Response(response),
            Err(mut err) => match err.take_message() {
                Some(request) => Sent::Unsent(unsent(request), err.into_error()),
                None => Sent::Failed(err.into_error()),
            },
        })
    }
}

/// The outcome of one attempt.
enum Sent {
    Response(Response<Incoming>),
    /// The request was never written; it comes back for another connection.
    Unsent(Prepared, hyper::Error),
    /// The request may have been written, and no response arrived.
    Failed(hyper::Error),
}

fn http_failure(tunnel: &Tunnel, source: hyper::Error) -> Failure {
    Failure::Upstream(UpstreamError::Http {
        host: tunnel.host.to_string(),
        source,
    })
}
