//! The resolved plan: everything a launch needs, with the file that set each value.

use std::path::PathBuf;

use serde::Serialize;

use crate::agent::AgentCommand;
use crate::bottle::PartialBottle;
use crate::env::EnvValue;
use crate::gitgate::{PartialGitUser, Repo};
use crate::route::Route;
use crate::sourced::Sourced;

/// The default `egress.log` level: every block and finding.
pub const DEFAULT_EGRESS_LOG: u8 = 1;

/// What a launch runs, resolved from an agent, its bottles and their `extends`.
///
/// The plan holds no secret value: an environment variable copied from the host shows
/// the variable's name, a prompted one shows its prompt, and tokens are named by
/// their host variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The agent, or `None` when only bottles (or the default bottle) run.
    pub agent: Option<AgentSummary>,
    /// The bottles in the order they were folded: parents first, each once.
    pub bottles: Vec<BottleRef>,
    /// The agent's environment, in first-set order.
    pub env: Vec<Named<EnvValue>>,
    /// The agent provider, if a bottle sets `agent_provider.template`.
    pub provider: Option<Provider>,
    /// The custom agent image's Dockerfile.
    pub dockerfile: Option<Sourced<PathBuf>>,
    /// The commit identity inside the bottle.
    pub git_user: GitUser,
    /// The repositories the git gate mirrors, in first-set order.
    pub repos: Vec<Named<Repo>>,
    /// The egress routes, in first-set order.
    pub routes: Vec<Sourced<Route>>,
    /// What the sidecar prints: 0 start-up only, 1 blocks and findings, 2 every request.
    pub egress_log: Sourced<u8>,
    /// The agent's own command; `None` runs the provider's CLI, or else a shell.
    pub command: Option<Sourced<AgentCommand>>,
    /// Skill folders copied from the host's skills directory.
    pub skills: Option<Sourced<Vec<String>>>,
    /// The agent's system prompt (its file's Markdown body), if not empty.
    pub system_prompt: Option<Sourced<String>>,
}

/// The agent file a plan came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentSummary {
    /// The agent's name.
    pub name: String,
    /// The file that defines it.
    pub file: PathBuf,
    /// Whether the file came from the repository rather than the config directory.
    pub from_repository: bool,
    /// The repository's file of the same name, hidden by the user's own file.
    pub shadowed: Option<PathBuf>,
}

/// A bottle folded into the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BottleRef {
    /// The bottle's name.
    pub name: String,
    /// Its file.
    pub file: PathBuf,
}

/// A named value and the file that set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Named<T> {
    /// The name (an environment variable or a repo).
    pub name: String,
    /// The value.
    pub value: T,
    /// The file that set it.
    pub source: Option<PathBuf>,
}

/// The agent provider's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provider {
    /// `claude`, `codex`, or a plugin name.
    pub template: Sourced<String>,
    /// The host variable whose token the proxy injects for the provider's API.
    pub auth_token: Option<Sourced<String>>,
    /// Codex: forward the host login token to the sidecar.
    pub forward_host_credentials: Sourced<bool>,
}

/// The commit identity; each field may be unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GitUser {
    /// `user.name`.
    pub name: Option<Sourced<String>>,
    /// `user.email`.
    pub email: Option<Sourced<String>>,
}

impl Plan {
    /// The embedded default bottle: no routes, no repos, no provider, and an
    /// interactive shell (or the command after `--`). It needs no file.
    pub fn default_bottle() -> Plan {
        Plan {
            agent: None,
            bottles: Vec::new(),
            env: Vec::new(),
            provider: None,
            dockerfile: None,
            git_user: GitUser::default(),
            repos: Vec::new(),
            routes: Vec::new(),
            egress_log: Sourced::default_value(DEFAULT_EGRESS_LOG),
            command: None,
            skills: None,
            system_prompt: None,
        }
    }

    /// Builds a plan from merged bottle settings; the caller adds the agent's part.
    pub(crate) fn from_bottle(bottles: Vec<BottleRef>, merged: PartialBottle) -> Plan {
        let provider = merged.provider.template.map(|template| Provider {
            template,
            auth_token: merged.provider.auth_token,
            forward_host_credentials: merged
                .provider
                .forward_host_credentials
                .unwrap_or_else(|| Sourced::default_value(false)),
        });
        Plan {
            bottles,
            env: merged.env.into_iter().map(named).collect(),
            provider,
            dockerfile: merged.dockerfile,
            git_user: git_user(merged.git_user),
            repos: merged.repos.into_iter().map(named).collect(),
            routes: merged.routes,
            egress_log: merged
                .egress_log
                .unwrap_or_else(|| Sourced::default_value(DEFAULT_EGRESS_LOG)),
            ..Plan::default_bottle()
        }
    }
}

fn named<T>((name, sourced): (String, Sourced<T>)) -> Named<T> {
    Named {
        name,
        value: sourced.value,
        source: sourced.source,
    }
}

pub(crate) fn git_user(partial: PartialGitUser) -> GitUser {
    GitUser {
        name: partial.name,
        email: partial.email,
    }
}
