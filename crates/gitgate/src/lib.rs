//! The sidecar's git gate.
//!
//! The gate is a smart HTTP git server outside the bottle with one bare mirror per
//! declared repo. The bottle's git configuration ([`insteadof_config`]) rewrites each
//! upstream URL to the gate, so the agent clones, fetches and pushes with the upstream
//! URL, while only the gate has the SSH key.
//!
//! - Fetch and clone first refresh the mirror from the upstream over hardened SSH (the
//!   repo's key only, the pinned host keys only, no user or system configuration). If
//!   that fails, the agent's git prints `fatal: remote error: <reason>`; a stale mirror
//!   is never served.
//! - A push lands in git's quarantine, and the pre-receive hook ([`pre_receive_main`],
//!   run as `bottle __pre-receive`) hands the ref updates to the gate over a Unix socket.
//!   The gate checks the push policy and ref names, scans every new commit, tag, file name
//!   and file for secrets, rejects trees with `.git` look-alikes or submodule paths that
//!   leave the repository, and pushes exactly the scanned object ids upstream. Only when the upstream
//!   accepts does git update the mirror.
//!
//! The gate shells out to `git` and `ssh`: git's own `receive-pack` checks the pack
//! (`receive.fsckObjects`) and provides the quarantine, which libraries for reading git
//! repositories do not all see.

mod archive;
mod audit;
mod config;
mod error;
mod gate;
mod git;
mod hold;
mod hook;
mod http;
mod insteadof;
mod mirror;
mod policy;
mod prereceive;
mod scan;
mod suppress;
mod tree_check;
mod url;

pub use config::{GateConfig, GateLimits, GateRepo, PushPolicy};
pub use error::GateError;
pub use gate::serve;
pub use hook::pre_receive_main;
pub use insteadof::{GitUser, insteadof_config};
pub use policy::RefUpdate;
