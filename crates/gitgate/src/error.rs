//! Errors of the gate's start-up and of its serving loop.

use std::io;
use std::path::PathBuf;

/// Failure of the gate's start-up or of its serving loop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// The configuration is invalid; the message names the repo and the key.
    #[error("invalid git gate configuration: {0}")]
    Config(String),

    /// A file or directory of the gate's state could not be created or written.
    #[error("git gate: cannot write {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Preparing a bare mirror with `git` failed.
    #[error("git gate: cannot prepare the mirror of repo '{repo}': {reason}")]
    Mirror { repo: String, reason: String },

    /// The secret scanner missed its built-in positive-control sample, so the gate
    /// refuses to serve rather than forward pushes unscanned.
    #[error("git gate: the secret scanner failed its self-test: {0}")]
    ScannerSelfTest(String),

    /// Accepting connections failed.
    #[error("git gate: accepting a connection failed: {0}")]
    Accept(#[source] io::Error),
}
