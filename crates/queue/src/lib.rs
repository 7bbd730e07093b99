//! The per-bottle queue of requests held for an operator's decision.
//!
//! A queue is a directory outside the bottle, `<config>/state/<slug>/queue/`, which the
//! agent cannot see. The sidecar writes one `<id>.json` file per held item; the operator's
//! `bottle approve ID` or `bottle deny ID --reason R` writes `<id>.decision.json` next to
//! it. Every file is written atomically (a temporary file renamed into place) with mode
//! 0600. An item carries a SHA-256 digest of the exact request it holds, and a decision
//! repeats that digest, so an approval cannot be applied to another request.

mod digest;
mod git_push;
mod id;
mod item;
mod sanitize;
mod store;

pub use digest::{RequestDigest, request_digest, value_digest};
pub use git_push::{GitFinding, GitPush, GitRefUpdate};
pub use id::{is_valid_id, new_id};
pub use item::{Decision, FindingSummary, Item, Kind, Summary, Verdict};
pub use sanitize::sanitize;
pub use store::{Queue, bottle_queue_dir, decide, find, pending};

use std::path::PathBuf;

/// An error of the queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// An id does not have the form the queue issues (10 base32 characters).
    #[error("invalid item id {0:?}: expected 10 characters from a-z and 2-7")]
    InvalidId(String),
    /// No bottle's queue holds the id.
    #[error("no held item has id {0}; `bottle supervise --list` shows the pending ones")]
    NotFound(String),
    /// The item's hold timed out, so the request was already denied.
    #[error("held item {0} has expired; its request was denied when the hold timed out")]
    Expired(String),
    /// The item was already decided.
    #[error("held item {0} already has a decision")]
    AlreadyDecided(String),
    /// A file of the queue could not be read, written or removed.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file of the queue is not valid JSON of the expected shape.
    #[error("invalid queue file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}
