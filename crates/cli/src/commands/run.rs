//! `bottle run` without `--dry-run`: resolve the plan and hand it to the launcher.

use std::collections::BTreeMap;

use bottle_manifest::{AgentCommand, EnvValue, PathMatchKind, Plan, Repo, RepoKey, Route, Sources};

use crate::cli::{Backend, RunArgs};
use crate::exit::Exit;
use crate::launch::{self, EnvSource, LaunchOptions, LaunchPlan};

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
    if args.backend != Backend::Native {
        return Err(format!(
            "backend {:?} is not available yet; use --backend native",
            args.backend
        )
        .to_lowercase());
    }
    if args.headless {
        return Err(
            "--headless needs an agent provider, which is not supported yet; give the \
                    command after --"
                .to_owned(),
        );
    }

    let plan = if args.agent.is_none() && args.bottles.is_empty() {
        Plan::default_bottle()
    } else {
        super::plan::resolve(args.agent.as_deref(), &args.bottles)?
    };
    let cwd = std::env::current_dir()
        .map_err(|err| format!("cannot read the current directory: {err}"))?;
    let sources = Sources::discover(&cwd).map_err(|err| err.to_string())?;

    let launch_plan = LaunchPlan {
        agent: plan.agent.as_ref().map(|agent| agent.name.clone()),
        bottles: plan
            .bottles
            .iter()
            .map(|bottle| bottle.name.clone())
            .collect(),
        env: plan
            .env
            .iter()
            .map(|entry| (entry.name.clone(), env_source(&entry.value)))
            .collect::<BTreeMap<_, _>>(),
        routes: plan
            .routes
            .iter()
            .map(|route| policy_route(&route.value))
            .collect(),
        egress_log: plan.egress_log.value,
        repos: plan
            .repos
            .iter()
            .map(|repo| gate_repo(&repo.name, &repo.value))
            .collect::<Result<_, _>>()?,
        git_user: git_user(&plan),
        command: command(args, &plan)?,
    };
    let options = LaunchOptions {
        config_dir: sources.config_dir,
        workspace: args.workspace.clone(),
        label: args.label.clone(),
    };
    Ok((launch_plan, options))
}

/// Chooses what runs: the command after `--`, else the agent's `command`, else an
/// interactive shell. An agent provider's own CLI is not launched yet.
fn command(args: &RunArgs, plan: &Plan) -> Result<Vec<String>, String> {
    if !args.command.is_empty() {
        return Ok(args.command.clone());
    }
    if let Some(command) = &plan.command {
        return Ok(match &command.value {
            AgentCommand::Line(line) => vec!["/bin/sh".to_owned(), "-c".to_owned(), line.clone()],
            AgentCommand::Argv(argv) => argv.clone(),
        });
    }
    if let Some(provider) = &plan.provider {
        // TODO(providers): launch the provider's agent CLI once providers exist.
        return Err(format!(
            "agent provider {} cannot be launched yet; give the command after --",
            provider.template.value
        ));
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

/// Converts a validated route of the bottle file into the proxy's route.
fn policy_route(route: &Route) -> bottle_policy::Route {
    bottle_policy::Route {
        host: route.host.to_string(),
        port: route.port,
        auth: route.auth.as_ref().map(|auth| bottle_policy::Auth {
            token_ref: auth.token_ref.clone(),
            scheme: auth.scheme.clone(),
            header: auth.header.clone(),
        }),
        matches: route
            .matches
            .iter()
            .map(|entry| bottle_policy::Match {
                paths: entry
                    .paths
                    .iter()
                    .map(|path| bottle_policy::PathRule {
                        kind: match path.kind {
                            PathMatchKind::Exact => bottle_policy::PathKind::Exact,
                            PathMatchKind::Prefix => bottle_policy::PathKind::Prefix,
                            PathMatchKind::Regex => bottle_policy::PathKind::Regex,
                        },
                        value: path.value.clone(),
                    })
                    .collect(),
                methods: entry.methods.clone(),
                headers: entry
                    .headers
                    .iter()
                    .map(|header| bottle_policy::HeaderRule {
                        name: header.name.clone(),
                        value: header.value.clone(),
                    })
                    .collect(),
            })
            .collect(),
        dlp: route.dlp.clone(),
        websocket: route.websocket,
        passthrough: route.passthrough,
        connect: route
            .connect
            .as_ref()
            .map(|target| format!("{}:{}", target.host, target.port)),
        upstream_ca: route.upstream_ca.clone(),
    }
}

/// Converts a validated repository of the bottle file into the git gate's.
fn gate_repo(name: &str, repo: &Repo) -> Result<bottle_gitgate::GateRepo, String> {
    let identity = match &repo.key {
        RepoKey::Identity(path) => path.clone(),
        RepoKey::ProvisionedKey(_) => {
            // TODO(deploy-keys): register a deploy key through the forge's API.
            return Err(format!(
                "git-gate.repos.{name}.provisioned_key is not supported yet; use identity with \
                 a private key file"
            ));
        }
    };
    Ok(bottle_gitgate::GateRepo {
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
    })
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
