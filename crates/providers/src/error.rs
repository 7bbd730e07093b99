//! Errors of loading a provider and preparing its launch.

use std::path::PathBuf;

/// Errors of loading a provider or preparing its launch. No variant carries a token value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// No built-in provider and no plugin file has this name.
    #[error(
        "agent provider {name} not found: it is not built in (claude, codex) and {dir} holds \
         no provider.json or provider.yaml"
    )]
    NotFound { name: String, dir: PathBuf },

    /// A plugin's provider file cannot be read.
    #[error("cannot read provider file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A provider file does not match the provider schema.
    #[error("invalid provider file {path}: {message}")]
    Invalid { path: PathBuf, message: String },

    /// The Codex login on the host cannot be forwarded.
    #[error(
        "cannot forward the host's Codex login from {path}: {reason}; run `codex login` on the host and launch again"
    )]
    HostLogin { path: PathBuf, reason: String },

    /// The bottle sets `forward_host_credentials`, but the provider has no login to forward.
    #[error(
        "agent_provider.forward_host_credentials is set, but provider {provider} cannot forward \
         a host login; remove the key or use agent_provider.auth_token"
    )]
    NoHostLogin { provider: String },

    /// Installing the agent CLI failed.
    #[error("cannot install {package}@{version} into {dir}: {reason}")]
    Install {
        package: String,
        version: String,
        dir: PathBuf,
        reason: String,
    },
}
