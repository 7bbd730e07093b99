//! `bottle run` without `--dry-run`: resolve the plan and hand it to the launcher.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bottle_manifest::{AgentCommand, EnvValue, Forge, Plan, Repo, RepoKey, Sources};

use crate::cli::{Backend, RunArgs};
use crate::exit::Exit;
use crate::launch::{self, EnvSource, LaunchOptions, LaunchPlan, PlannedRepo};

pub fn run(args: &RunArgs) -> Exit {
    match prepare(args) {
        Ok((plan, options)) => launch::run(&plan, &options),
        Err(message) => {
            eprintln!("bottle: {message}");
            Exit::Launcher
        }
    }
}

fn prepare(args: &RunArgs) -> Result<(LaunchPlan, LaunchOptions), String> {
    let backend = match args.backend {
        Backend::Native => launch::BackendKind::Native,
        Backend::Docker => launch::BackendKind::Docker,
        Backend::Vm => {
            return Err(
                "backend vm is not available yet; use --backend native or docker".to_owned(),
            );
        }
    };
    let plan = if args.agent.is_none() && args.bottles.is_empty() {
        Plan::default_bottle()
    } else {
        super::plan::resolve(args.agent.as_deref(), &args.bottles)?
    };
    let cwd = std::env::current_dir()
        .map_err(|err| format!("cannot read the current directory: {err}"))?;
    let sources = Sources::discover(&cwd).map_err(|err| err.to_string())?;
    let provider = provider_launch(args, &plan, &sources.config_dir)?;
    let mut env: BTreeMap<String, EnvSource> = plan
        .env
        .iter()
        .map(|entry| (entry.name.clone(), env_source(&entry.value)))
        .collect();
    if let Some(provider) = &provider {
        // The bottle's own `env` wins over the provider's defaults.
        for (name, value) in &provider.prepared.env {
            env.entry(name.clone())
                .or_insert_with(|| EnvSource::Literal(value.clone()));
        }
    }

    let launch_plan = LaunchPlan {
        agent: plan.agent.as_ref().map(|agent| agent.name.clone()),
        bottles: plan
            .bottles
            .iter()
            .map(|bottle| bottle.name.clone())
            .collect(),
        env,
        // The printed plan takes its routes from the same function.
        routes: super::plan::launch_routes(
            &plan,
            provider
                .as_ref()
                .map_or(&[][..], |provider| &provider.prepared.routes),
        )
        .into_iter()
        .map(|planned| planned.route)
        .collect(),
        egress_log: plan.egress_log.value,
        repos: plan
            .repos
            .iter()
            .map(|repo| gate_repo(&repo.name, &repo.value))
            .collect(),
        git_user: git_user(&plan),
        command: command(args, &plan, provider.as_ref())?,
        provisioned: provider
            .as_ref()
            .map(|provider| provider.prepared.provisioned.clone())
            .unwrap_or_default(),
        home_files: provider
            .as_ref()
            .filter(|provider| provider.runs_cli)
            .map(|provider| provider.prepared.home_files.clone())
            .unwrap_or_default(),
        agent_install: provider.and_then(|provider| provider.install_dir),
        dockerfile: plan.dockerfile.as_ref().map(|file| file.value.clone()),
    };
    let options = LaunchOptions {
        backend,
        config_dir: sources.config_dir,
        workspace: args.workspace.clone(),
        label: args.label.clone(),
    };
    Ok((launch_plan, options))
}

/// The provider's part of a launch.
struct ProviderLaunch {
    prepared: bottle_providers::Prepared,
    /// Whether the provider's CLI is what runs (no command after `--`, no agent command).
    runs_cli: bool,
    /// The installed CLI, bound read-only into the bottle when it runs.
    install_dir: Option<PathBuf>,
}

/// Loads and prepares the plan's provider, and installs its CLI when that is what runs.
/// Forwarded host credentials are read here, before anything starts.
fn provider_launch(
    args: &RunArgs,
    plan: &Plan,
    config_dir: &Path,
) -> Result<Option<ProviderLaunch>, String> {
    let runs_cli = args.command.is_empty() && plan.command.is_none();
    let Some(provider) = &plan.provider else {
        if args.headless {
            return Err(
                "--headless runs an agent provider's CLI, but no bottle sets \
                        agent_provider.template; give the command after -- instead"
                    .to_owned(),
            );
        }
        return Ok(None);
    };
    if args.headless && !runs_cli {
        return Err(
            "--headless runs the agent provider's CLI, but a command replaces it; \
                    drop the command or --headless"
                .to_owned(),
        );
    }

    let spec =
        bottle_providers::load(&provider.template.value, config_dir).map_err(
            |err| match &provider.template.source {
                Some(file) => format!("{}: agent_provider.template: {err}", file.display()),
                None => err.to_string(),
            },
        )?;
    let settings = bottle_providers::ProviderSettings {
        auth_token: provider
            .auth_token
            .as_ref()
            .map(|token| token.value.clone()),
        forward_host_credentials: provider.forward_host_credentials.value,
        system_prompt: plan
            .system_prompt
            .as_ref()
            .map(|prompt| prompt.value.clone()),
        headless_prompt: args.prompt.clone().filter(|_| args.headless),
    };
    let now = bottle_providers::now_unix();
    let prepared =
        bottle_providers::prepare(&spec, &settings, &|name| std::env::var(name).ok(), now)
            .map_err(|err| err.to_string())?;

    let install_dir = match (&spec.package, runs_cli) {
        (Some(package), true) => {
            let dir = bottle_providers::install_dir(config_dir, package);
            if !dir.join(package.bin_path()).exists() {
                eprintln!(
                    "bottle: installing {}@{} into {}",
                    package.npm,
                    package.version,
                    dir.display()
                );
            }
            Some(bottle_providers::ensure_installed(&dir, package).map_err(|err| err.to_string())?)
        }
        _ => None,
    };
    Ok(Some(ProviderLaunch {
        prepared,
        runs_cli,
        install_dir,
    }))
}

/// Chooses what runs: the command after `--`, else the agent's `command`, else the
/// provider's CLI, else an interactive shell.
fn command(
    args: &RunArgs,
    plan: &Plan,
    provider: Option<&ProviderLaunch>,
) -> Result<Vec<String>, String> {
    if !args.command.is_empty() {
        return Ok(args.command.clone());
    }
    if let Some(command) = &plan.command {
        return Ok(match &command.value {
            AgentCommand::Line(line) => vec!["/bin/sh".to_owned(), "-c".to_owned(), line.clone()],
            AgentCommand::Argv(argv) => argv.clone(),
        });
    }
    if let Some(provider) = provider {
        return Ok(provider.prepared.argv_with_home_files());
    }
    Ok(Vec::new())
}

fn env_source(value: &EnvValue) -> EnvSource {
    match value {
        EnvValue::Literal { value } => EnvSource::Literal(value.clone()),
        EnvValue::Host { variable } => EnvSource::HostVar(variable.clone()),
        EnvValue::Prompt { message } => EnvSource::Prompt(message.clone()),
    }
}

/// Converts a validated repository of the bottle file into the git gate's, with the
/// forge settings when its deploy key is created at launch.
fn gate_repo(name: &str, repo: &Repo) -> PlannedRepo {
    let (identity, provision) = match &repo.key {
        RepoKey::Identity(path) => (path.clone(), None),
        // The launcher fills in the identity once the key is registered.
        RepoKey::ProvisionedKey(key) => (
            PathBuf::new(),
            Some(bottle_forge::ProvisionSettings {
                provider: match key.provider {
                    Forge::Gitea => bottle_forge::Provider::Gitea,
                    Forge::Github => bottle_forge::Provider::Github,
                    Forge::Gitlab => bottle_forge::Provider::Gitlab,
                },
                api_url: key.api_url.clone(),
                token_env: key.token_env.clone(),
                read_only: key.read_only,
                title: key.title.clone(),
            }),
        ),
    };
    let gate = bottle_gitgate::GateRepo {
        name: name.to_owned(),
        url: repo.url.to_string(),
        host_keys: repo
            .host_keys
            .iter()
            .map(|key| format!("{} {}", key.key_type, key.base64))
            .collect(),
        identity,
        push: bottle_gitgate::PushPolicy {
            branches: repo.push.branches.clone(),
            force: repo.push.force,
            delete: repo.push.delete,
            tags: repo.push.tags,
        },
    };
    PlannedRepo { gate, provision }
}

fn git_user(plan: &Plan) -> Option<bottle_gitgate::GitUser> {
    let name = plan.git_user.name.as_ref().map(|name| name.value.clone());
    let email = plan
        .git_user
        .email
        .as_ref()
        .map(|email| email.value.clone());
    (name.is_some() || email.is_some()).then_some(bottle_gitgate::GitUser { name, email })
}
