//! The sidecar's egress proxy.
//!
//! The agent reaches the outside only through this proxy, an HTTP forward proxy. Each
//! `CONNECT host:port` is checked against the routes (default deny). The proxy then
//! always terminates TLS with a leaf minted from the per-bottle CA, and checks that the
//! SNI and every inner `Host` / `:authority` equal the CONNECT host. The route's path,
//! method and header rules apply to each request. Allowed requests are forwarded over a
//! fully verified TLS connection, with the agent's credentials replaced by the route's
//! token. Plain `http://` requests are forwarded only for routes on port 80, never with
//! a token. Every decision is appended to a JSON-lines audit log.
//!
//! Before a request is forwarded, the outbound DLP scans its host, path, query, headers
//! and decoded body for the bottle's known secrets, token formats and private keys, and
//! the route's `dlp.outbound_on_match` blocks it, redacts the values or holds it.
//! DNS over HTTPS and TLS are refused on every route. Text answers are scanned for
//! prompt injection as they stream. The magic host `bottle.internal` lists the routes.

mod audit;
mod body;
mod ca;
mod config;
mod decode;
mod dlp;
mod doh;
mod error;
mod headers;
mod history;
mod hold;
mod inbound;
mod inject;
mod limit;
mod listen;
mod magic;
mod outbound;
mod pool;
mod response;
mod server;
mod upstream;
mod websocket;

use std::sync::Arc;

pub use audit::{AuditRecord, Verdict};
pub use ca::CertificateAuthority;
pub use config::SidecarConfig;
pub use dlp::{DlpFinding, Location};
pub use error::ProxyError;
pub use inbound::{InboundFinding, Severity};
pub use listen::Accept;
pub use magic::MAGIC_HOST;
pub use pool::PoolSettings;
pub use response::DECISION_HEADER;
pub use upstream::UpstreamError;

use server::Proxy;

/// Returns the one rustls crypto provider the proxy uses (ring), passed explicitly to
/// every TLS configuration so no process-wide default is needed.
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Serves the proxy on `listener` until it fails. Configuration errors (invalid routes,
/// a missing token, an unreadable CA or audit log) are returned before anything is
/// accepted.
pub async fn serve<L: Accept>(config: SidecarConfig, listener: L) -> Result<(), ProxyError> {
    serve_with(config, PoolSettings::default(), listener).await
}

/// Serves the proxy like [`serve`], with the given upstream connection reuse settings.
pub async fn serve_with<L: Accept>(
    config: SidecarConfig,
    pool: PoolSettings,
    listener: L,
) -> Result<(), ProxyError> {
    let proxy = Arc::new(Proxy::new(config, pool)?);
    proxy.announce(&[listener.describe()]);
    proxy.accept_loop(listener).await
}

/// Builds a tokio runtime and serves the proxy on every listener (inherited from the
/// launcher) until one fails. It blocks the calling thread. `on_ready` runs once the
/// configuration is validated and every listener is being served, so the launcher can
/// wait for it before starting the agent.
pub fn run_sidecar(
    config: SidecarConfig,
    listeners: Vec<std::net::TcpListener>,
    on_ready: impl FnOnce(),
) -> Result<(), ProxyError> {
    // TODO(perf): after a burst of connections the allocator keeps their freed TLS and
    // HTTP buffers, so resident memory stays near its peak (84 MiB after 1,000).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bottle-proxy")
        .build()
        .map_err(ProxyError::Runtime)?;

    runtime.block_on(async move {
        let proxy = Arc::new(Proxy::new(config, PoolSettings::default())?);
        let mut addresses = Vec::with_capacity(listeners.len());
        let mut tasks = tokio::task::JoinSet::new();
        for listener in listeners {
            listener
                .set_nonblocking(true)
                .map_err(ProxyError::Listener)?;
            let listener =
                tokio::net::TcpListener::from_std(listener).map_err(ProxyError::Listener)?;
            addresses.push(listener.describe());
            tasks.spawn(proxy.clone().accept_loop(listener));
        }
        proxy.announce(&addresses);
        on_ready();

        match tasks.join_next().await {
            Some(Ok(result)) => result,
            Some(Err(join_error)) => Err(ProxyError::Listener(std::io::Error::other(join_error))),
            None => Ok(()),
        }
    })
}
