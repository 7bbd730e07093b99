//! Errors of deploy-key provisioning. No variant carries the forge token.

use std::io;
use std::path::PathBuf;

/// Failure of a forge request, of key generation or of the journal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForgeError {
    /// The forge settings are invalid: an `api_url` that is not `https://` (or `http://` on
    /// loopback), or a repo path that is not `owner/name`.
    #[error("invalid forge settings: {0}")]
    Config(String),

    /// The request did not get an HTTP response: connection refused, TLS failure, timeout.
    #[error("{operation} for repo '{repo}' failed: {reason}")]
    Request {
        operation: &'static str,
        repo: String,
        reason: String,
    },

    /// The forge returned an unexpected HTTP status. `detail` is the forge's own
    /// message, shortened, with the token removed if the forge echoed it.
    #[error("{operation} for repo '{repo}' failed: HTTP {status}: {detail}")]
    Status {
        operation: &'static str,
        repo: String,
        status: u16,
        detail: String,
    },

    /// The forge returned 2xx with a body that is not what its API documents.
    #[error("{operation} for repo '{repo}' failed: invalid response: {reason}")]
    InvalidResponse {
        operation: &'static str,
        repo: String,
        reason: String,
    },

    /// The key pair could not be generated or its private half not written.
    #[error("cannot write deploy key {path}: {source}")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Generating or encoding the key pair failed.
    #[error("cannot generate a deploy key: {0}")]
    KeyGeneration(String),

    /// The journal of provisioned keys could not be read or replaced.
    #[error("deploy-key journal {path}: {reason}")]
    Journal { path: PathBuf, reason: String },

    /// `gc` found a journal entry whose forge token variable is not set on the host.
    #[error(
        "cannot revoke deploy key {key_id:?} of repo '{repo}': the host variable {token_env} \
         holding the forge token is not set; set it and run `bottle gc` again"
    )]
    MissingToken {
        repo: String,
        key_id: Option<u64>,
        token_env: String,
    },
}
