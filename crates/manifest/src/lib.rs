//! Bottle and agent files: parsing, the schema, `extends`, the trust boundary, and the
//! resolved [`Plan`].
//!
//! A file is Markdown with YAML front matter. Bottles carry credentials, egress routes
//! and git remotes, so they are read only from `<config>/bottles/`. Agents are read from
//! `<config>/agents/` and from the current repository's `.bot-bottle/agents/`, and they
//! can set no policy key, so nothing a repository ships can change policy. Every key is checked: unknown keys, wrong types and invalid
//! values are errors that name the file, line and key path.
//!
//! ```no_run
//! let sources = bottle_manifest::Sources::discover(&std::env::current_dir()?)?;
//! let plan = bottle_manifest::resolve(&sources, Some("reviewer"), &[])?;
//! println!("{}", serde_json::to_string_pretty(&plan)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Tests state their expectations with `unwrap`; a failure there is the report.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod agent;
mod bottle;
mod check;
mod decode;
mod env;
mod error;
mod file;
pub mod frontmatter;
mod gitgate;
mod host;
mod names;
mod paths;
mod plan;
mod resolve;
mod route;
mod sourced;
mod sources;
mod yaml;

pub use agent::AgentCommand;
pub use check::{Checked, FileKind, check_all, check_file, check_paths};
pub use env::{EnvValue, RESERVED_ENV};
pub use error::{Diagnostic, Error};
pub use file::MAX_FILE_BYTES;
pub use gitgate::{Forge, GitUrl, HostKey, ProvisionedKey, PushPolicy, Repo, RepoKey};
pub use host::{HostPattern, normalize_host};
pub use names::is_plain_name;
pub use plan::{AgentSummary, BottleRef, DEFAULT_EGRESS_LOG, GitUser, Named, Plan, Provider};
pub use resolve::{MAX_EXTENDS_DEPTH, resolve};
pub use route::{
    ConnectTarget, Dlp, HeaderMatch, InboundDetector, OnMatch, OutboundDetector, PathMatch,
    PathMatchKind, Route, RouteAuth, RouteMatch,
};
pub use sourced::Sourced;
pub use sources::{AgentLocation, CONFIG_DIR_ENV, Sources, find_repo_root};

#[cfg(test)]
mod tests;
