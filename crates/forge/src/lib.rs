//! Per-bottle deploy keys: an ed25519 key pair generated in process, registered with the
//! forge through its API before the agent starts, and deleted at teardown.
//!
//! Every key is written to a journal in the bottle's state directory before it is
//! registered, and removed from it only once the forge confirmed the deletion. A key that
//! could not be revoked stays in the journal, and [`gc`] retries it later.
//!
//! The forge token is passed in by the caller, which reads it from a host variable. It is
//! sent only in the request header: [`ForgeToken`] does not print it, and errors never
//! contain it.

mod error;
#[cfg(feature = "fake-forge")]
pub mod fake;
mod forge;
mod http;
mod journal;
mod key;
mod provision;

pub use error::ForgeError;
pub use forge::{
    Forge, ForgeFuture, ForgeToken, Provider, REQUEST_TIMEOUT, RemoteKey, connect, repo_from_url,
    validate_repo,
};
pub use journal::{JOURNAL_FILE, Journal, JournalEntry, find_journals};
pub use key::{GeneratedKey, generate_key};
pub use provision::{
    KEY_DIR, KeyRequest, ProvisionSettings, RevokeReport, env_token, gc, key_title, provision_key,
    provision_repo_key, revoke_journal, revoke_key,
};
