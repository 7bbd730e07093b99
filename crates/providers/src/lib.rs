//! Agent providers: the agent CLIs that `bottle` can install, start and give
//! credentials to.
//!
//! A provider is data, not code: a [`ProviderSpec`] names the npm package that contains
//! the CLI, the flags that skip its own permission prompts, how the system prompt reaches
//! it, the API hosts it needs and the environment that switches off its telemetry and
//! auto-update. The built-in `claude` and `codex` specs are JSON files compiled into
//! the binary; a plugin is the same kind of file under
//! `<config>/contrib/<name>/provider.json` (or `.yaml`). No plugin code is ever loaded.
//!
//! [`prepare`] turns a spec and the bottle's `agent_provider` settings into a
//! [`Prepared`] launch: routes whose tokens only the sidecar receives, the agent's
//! placeholder environment and the files written into its home.

mod codex_login;
mod error;
mod install;
mod prepare;
mod spec;
mod tokens;

pub use codex_login::{CODEX_TOKEN_REF, HostLogin, now_unix, read_host_login};
pub use error::ProviderError;
pub use install::{AGENT_MOUNT, ensure_installed, install_dir};
pub use prepare::{
    HOME_FILES_MOUNT, HomeFile, MergedRoute, Prepared, ProviderSettings, ProvisionedEnv,
    RouteOrigin, merge_routes, prepare, provider_routes, route_token_ref,
};
pub use spec::{
    Headless, HostLoginKind, NpmPackage, ProviderRoute, ProviderSpec, RouteAuth, SystemPrompt, load,
};
pub use tokens::{UnresolvedToken, resolve_tokens};
