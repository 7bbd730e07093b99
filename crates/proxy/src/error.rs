//! Errors that stop the sidecar's proxy from starting or serving.

use std::path::PathBuf;

/// Failure to start or keep serving the proxy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The routes are invalid.
    #[error("invalid egress routes: {0}")]
    Routes(#[from] bottle_policy::RouteError),
    /// A route sets TLS passthrough, which is not implemented.
    #[error(
        "route {rule} sets `passthrough`, which this proxy does not implement; remove it so \
         the proxy terminates TLS for that host"
    )]
    PassthroughUnsupported {
        /// Rule id of the route.
        rule: String,
    },
    /// A route's `auth.token_ref` has no value in the configuration.
    #[error("route {rule} needs token ref {token_ref:?}, which the sidecar configuration lacks")]
    MissingToken {
        /// Rule id of the route.
        rule: String,
        /// The missing token ref.
        token_ref: String,
    },
    /// A token value cannot be written into a header.
    #[error("token ref {token_ref:?} has a value with bytes that a header cannot carry")]
    InvalidTokenValue {
        /// The token ref (never the value).
        token_ref: String,
    },
    /// An `upstream_ca` file could not be read or parsed.
    #[error("cannot load upstream CA file {path} for route {rule}: {message}")]
    UpstreamCa {
        /// Rule id of the route.
        rule: String,
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The bottle CA could not be generated or loaded.
    #[error("bottle CA is invalid: {0}")]
    Ca(#[from] rcgen::Error),
    /// A TLS configuration could not be built.
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    /// The audit log could not be opened.
    #[error("cannot open audit log {path}: {source}")]
    AuditLog {
        /// The log file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The known secrets do not fit the scanner.
    #[error("cannot compile the known secrets for the DLP: {0}")]
    Scanner(#[from] bottle_scanner::ScannerError),
    /// The async runtime could not start.
    #[error("cannot start the proxy's async runtime: {0}")]
    Runtime(std::io::Error),
    /// A listener failed.
    #[error("proxy listener failed: {0}")]
    Listener(std::io::Error),
}
