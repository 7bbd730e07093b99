//! Printing a resolved plan, for `bottle info` and `bottle run --dry-run`.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use bottle_manifest::{
    AgentCommand, EnvValue, OnMatch, PathMatchKind, Plan, RepoKey, Route, Sourced, Sources,
};
use bottle_providers::RouteOrigin;
use serde::Serialize;

use crate::cli::{Backend, RunArgs};
use crate::exit::Exit;

/// `bottle run --dry-run`: prints the plan a launch would use. Invalid files exit with
/// the launcher-failure code, as a real launch would.
pub fn dry_run(args: &RunArgs) -> Exit {
    let resolved = if args.agent.is_none() && args.bottles.is_empty() {
        Ok(Plan::default_bottle())
    } else {
        resolve(args.agent.as_deref(), &args.bottles)
    };
    let (plan, routes) = match resolved.and_then(|plan| {
        let routes = printed_routes(&plan)?;
        Ok((plan, routes))
    }) {
        Ok(resolved) => resolved,
        Err(message) => {
            eprintln!("{message}");
            return Exit::Launcher;
        }
    };

    let command_line = (!args.command.is_empty()).then_some(args.command.as_slice());
    let (backend, runtime) = backend_summary(args.backend);
    if args.json {
        let output = DryRun {
            plan: &plan,
            launch_routes: &routes,
            command_line,
            backend,
            runtime: runtime.as_deref(),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&output).expect("a plan serializes to JSON")
        );
    } else {
        print!("{}", render(&plan, &routes));
        if let Some(command) = command_line {
            println!("command line: {}", command.join(" "));
        }
        println!("{}", backend_line(backend, runtime.as_deref()));
    }
    Exit::Success
}

/// Returns the backend's name and, for docker, the runtime the agent would run on.
pub fn backend_summary(backend: Backend) -> (&'static str, Option<String>) {
    match backend {
        Backend::Native => ("native", None),
        Backend::Docker => ("docker", Some(crate::launch::describe_docker_runtime())),
        Backend::Vm => ("vm", None),
    }
}

/// Formats the backend line of the plan's text form.
pub fn backend_line(backend: &str, runtime: Option<&str>) -> String {
    match runtime {
        Some(runtime) => format!("{:<17}{backend} (agent runtime: {runtime})", "backend"),
        None => format!("{:<17}{backend}", "backend"),
    }
}

/// The JSON of a dry run: the plan, and the command given after `--` if any.
#[derive(Serialize)]
struct DryRun<'a> {
    #[serde(flatten)]
    plan: &'a Plan,
    launch_routes: &'a [LaunchRoute],
    #[serde(skip_serializing_if = "Option::is_none")]
    command_line: Option<&'a [String]>,
    backend: &'a str,
    /// The container runtime of the agent (docker backend).
    #[serde(skip_serializing_if = "Option::is_none")]
    runtime: Option<&'a str>,
}

/// The JSON of `bottle info`: the plan and the routes a launch would use.
#[derive(Serialize)]
pub struct Info<'a> {
    #[serde(flatten)]
    pub plan: &'a Plan,
    pub launch_routes: &'a [LaunchRoute],
}

/// Resolves a plan from the current directory's config and repository, returning the
/// error as the text to print.
pub fn resolve(agent: Option<&str>, bottles: &[String]) -> Result<Plan, String> {
    let cwd = std::env::current_dir()
        .map_err(|error| format!("bottle: cannot read the current directory: {error}"))?;
    let sources = Sources::discover(&cwd).map_err(|error| format!("bottle: {error}"))?;
    bottle_manifest::resolve(&sources, agent, bottles).map_err(|error| error.to_string())
}

/// One route a launch gives the proxy, and where it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct LaunchRoute {
    /// The route as the proxy gets it.
    pub route: bottle_policy::Route,
    /// Whether the bottle or the agent provider set the route.
    pub origin: Origin,
    /// The bottle file that set the route, or none for a provider's route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The provider that added the route or its token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// The origin of a route of a launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A route of a bottle file.
    Bottle,
    /// A default route of the agent provider, for a host the bottles name no route for.
    Provider,
    /// A route of a bottle file that sets no `auth`, so it injects the token of the
    /// provider's route for the same host and port.
    BottleWithProviderAuth,
}

/// Returns the routes a launch of `plan` gives the proxy: the bottle's routes merged with
/// `provider_routes`, the default routes of the plan's agent provider. `bottle run` and
/// the printed plan both take their routes from here.
pub fn launch_routes(plan: &Plan, provider_routes: &[bottle_policy::Route]) -> Vec<LaunchRoute> {
    let bottle_routes: Vec<bottle_policy::Route> = plan
        .routes
        .iter()
        .map(|route| policy_route(&route.value))
        .collect();
    let provider = plan
        .provider
        .as_ref()
        .map(|provider| provider.template.value.clone());
    bottle_providers::merge_routes(provider_routes, &bottle_routes)
        .into_iter()
        .map(|merged| {
            let (origin, index) = match merged.origin {
                RouteOrigin::Provider => (Origin::Provider, None),
                RouteOrigin::Bottle(index) => (Origin::Bottle, Some(index)),
                RouteOrigin::BottleWithProviderAuth(index) => {
                    (Origin::BottleWithProviderAuth, Some(index))
                }
            };
            LaunchRoute {
                route: merged.route,
                origin,
                file: index.and_then(|index| plan.routes[index].source.clone()),
                provider: (origin != Origin::Bottle)
                    .then(|| provider.clone())
                    .flatten(),
            }
        })
        .collect()
}

/// Returns the routes a launch of `plan` would use, for printing. The provider's routes
/// come from the same functions a launch prepares them with, but no credential is read.
pub fn printed_routes(plan: &Plan) -> Result<Vec<LaunchRoute>, String> {
    let Some(provider) = &plan.provider else {
        return Ok(launch_routes(plan, &[]));
    };
    let cwd = std::env::current_dir()
        .map_err(|error| format!("bottle: cannot read the current directory: {error}"))?;
    let sources = Sources::discover(&cwd).map_err(|error| format!("bottle: {error}"))?;
    let in_file = |error: bottle_providers::ProviderError| match &provider.template.source {
        Some(file) => format!(
            "bottle: {}: agent_provider.template: {error}",
            file.display()
        ),
        None => format!("bottle: {error}"),
    };
    let spec =
        bottle_providers::load(&provider.template.value, &sources.config_dir).map_err(in_file)?;
    let settings = bottle_providers::ProviderSettings {
        auth_token: provider
            .auth_token
            .as_ref()
            .map(|token| token.value.clone()),
        forward_host_credentials: provider.forward_host_credentials.value,
        ..bottle_providers::ProviderSettings::default()
    };
    let token_ref = bottle_providers::route_token_ref(&spec, &settings)
        .map_err(|error| format!("bottle: {error}"))?;
    let routes = bottle_providers::provider_routes(&spec, token_ref.as_deref());
    Ok(launch_routes(plan, &routes))
}

/// Renders a plan as text, each value followed by the file that set it, and the routes
/// of the launch, each followed by where it comes from.
pub fn render(plan: &Plan, routes: &[LaunchRoute]) -> String {
    let mut out = String::new();
    render_header(&mut out, plan);
    render_provider(&mut out, plan);
    render_env(&mut out, plan);
    render_git(&mut out, plan);
    render_routes(&mut out, plan, routes);
    render_agent_settings(&mut out, plan);
    out
}

fn render_header(out: &mut String, plan: &Plan) {
    match &plan.agent {
        Some(agent) => {
            let origin = if agent.from_repository {
                ", from the repository"
            } else {
                ""
            };
            line(
                out,
                "agent",
                &agent.name,
                &format!("{}{origin}", agent.file.display()),
            );
            if let Some(shadowed) = &agent.shadowed {
                line(
                    out,
                    "shadows",
                    &shadowed.display().to_string(),
                    "the repository's agent",
                );
            }
        }
        None => line(out, "agent", "(none)", ""),
    }
    if plan.bottles.is_empty() {
        let note = if plan.agent.is_none() {
            "the default bottle"
        } else {
            ""
        };
        line(out, "bottles", "(none)", note);
    }
    for (index, bottle) in plan.bottles.iter().enumerate() {
        let label = if index == 0 { "bottles" } else { "" };
        line(out, label, &bottle.name, &bottle.file.display().to_string());
    }
}

fn render_provider(out: &mut String, plan: &Plan) {
    let Some(provider) = &plan.provider else {
        line(out, "provider", "(none)", "");
        return;
    };
    sourced(
        out,
        "provider",
        &provider.template.value,
        &provider.template,
    );
    if let Some(token) = &provider.auth_token {
        sourced(
            out,
            "  auth_token",
            &format!("host variable {}", token.value),
            token,
        );
    }
    let forward = &provider.forward_host_credentials;
    sourced(
        out,
        "  forward_host_credentials",
        &forward.value.to_string(),
        forward,
    );
    if let Some(dockerfile) = &plan.dockerfile {
        sourced(
            out,
            "dockerfile",
            &dockerfile.value.display().to_string(),
            dockerfile,
        );
    }
}

fn render_env(out: &mut String, plan: &Plan) {
    if plan.env.is_empty() {
        line(out, "env", "(none)", "");
    }
    for (index, var) in plan.env.iter().enumerate() {
        let label = if index == 0 { "env" } else { "" };
        let value = match &var.value {
            EnvValue::Literal { value } => format!("{}={value:?}", var.name),
            EnvValue::Host { variable } => {
                format!("{} copied from host variable {variable}", var.name)
            }
            EnvValue::Prompt {
                message: Some(message),
            } => {
                format!("{} prompted at launch: {message:?}", var.name)
            }
            EnvValue::Prompt { message: None } => format!("{} prompted at launch", var.name),
        };
        line(out, label, &value, &source_text(var.source.as_deref()));
    }
}

fn render_git(out: &mut String, plan: &Plan) {
    match &plan.git_user.name {
        Some(name) => sourced(out, "git user.name", &name.value, name),
        None => line(out, "git user.name", "(unset)", ""),
    }
    match &plan.git_user.email {
        Some(email) => sourced(out, "git user.email", &email.value, email),
        None => line(out, "git user.email", "(unset)", ""),
    }
    if plan.repos.is_empty() {
        line(out, "repos", "(none)", "");
    }
    for (index, repo) in plan.repos.iter().enumerate() {
        let label = if index == 0 { "repos" } else { "" };
        let value = format!("{} {}", repo.name, repo.value.url);
        line(out, label, &value, &source_text(repo.source.as_deref()));
        let key_types: Vec<&str> = repo
            .value
            .host_keys
            .iter()
            .map(|key| key.key_type.as_str())
            .collect();
        detail(out, &format!("host keys: {}", key_types.join(", ")));
        match &repo.value.key {
            RepoKey::Identity(path) => detail(out, &format!("identity: {}", path.display())),
            RepoKey::ProvisionedKey(key) => detail(
                out,
                &format!(
                    "provisioned key: {:?} at {}, forge token from host variable {}{}",
                    key.provider,
                    key.api_url,
                    key.token_env,
                    if key.read_only { ", read-only" } else { "" }
                ),
            ),
        }
        let push = &repo.value.push;
        detail(
            out,
            &format!(
                "push: branches {}; force {}; delete {}; tags {}",
                push.branches.join(", "),
                push.force,
                push.delete,
                push.tags
            ),
        );
    }
}

fn render_routes(out: &mut String, plan: &Plan, routes: &[LaunchRoute]) {
    if routes.is_empty() {
        line(out, "routes", "(none: every destination is refused)", "");
    }
    for (index, planned) in routes.iter().enumerate() {
        let label = if index == 0 { "routes" } else { "" };
        let value = format!("{}:{}", planned.route.host, planned.route.port);
        let file = || source_text(planned.file.as_deref());
        let provider = planned.provider.as_deref().unwrap_or("(none)");
        let origin = match planned.origin {
            Origin::Provider => format!("provider {provider}"),
            Origin::BottleWithProviderAuth => format!("{}; auth from provider {provider}", file()),
            Origin::Bottle => file(),
        };
        line(out, label, &value, &origin);
        render_route_details(out, &planned.route);
    }
    sourced(
        out,
        "egress log",
        &plan.egress_log.value.to_string(),
        &plan.egress_log,
    );
}

fn render_route_details(out: &mut String, route: &bottle_policy::Route) {
    if let Some(auth) = &route.auth {
        let scheme = if auth.scheme.is_empty() {
            "no scheme"
        } else {
            auth.scheme.as_str()
        };
        let token = if auth.token_ref == bottle_providers::CODEX_TOKEN_REF {
            format!("{} (the forwarded host Codex login)", auth.token_ref)
        } else {
            auth.token_ref.clone()
        };
        detail(out, &format!("auth: {token} in {} ({scheme})", auth.header));
    }
    for entry in &route.matches {
        let mut parts = Vec::new();
        if !entry.paths.is_empty() {
            let paths: Vec<String> = entry
                .paths
                .iter()
                .map(|path| {
                    let kind = match path.kind {
                        bottle_policy::PathKind::Exact => "exact",
                        bottle_policy::PathKind::Prefix => "prefix",
                        bottle_policy::PathKind::Regex => "regex",
                    };
                    format!("{kind} {}", path.value)
                })
                .collect();
            parts.push(format!("paths {}", paths.join(", ")));
        }
        if !entry.methods.is_empty() {
            parts.push(format!("methods {}", entry.methods.join(", ")));
        }
        if !entry.headers.is_empty() {
            let names: Vec<&str> = entry
                .headers
                .iter()
                .map(|header| header.name.as_str())
                .collect();
            parts.push(format!("headers {}", names.join(", ")));
        }
        detail(out, &format!("match: {}", parts.join("; ")));
    }
    if route.passthrough {
        detail(
            out,
            "passthrough: TLS is tunnelled unread (no path rules, no DLP, no injection)",
        );
        return;
    }
    let on_match = match route.dlp.outbound_on_match {
        OnMatch::Supervise => "supervise",
        OnMatch::Redact => "redact",
        OnMatch::Block => "block",
    };
    detail(
        out,
        &format!(
            "dlp: {} outbound and {} inbound detectors, on match {on_match}",
            route.dlp.outbound_detectors.len(),
            route.dlp.inbound_detectors.len()
        ),
    );
    if route.websocket {
        detail(out, "websocket: allowed");
    }
    if let Some(connect) = &route.connect {
        detail(out, &format!("connect: {connect}"));
    }
    if let Some(ca) = &route.upstream_ca {
        detail(out, &format!("upstream_ca: {}", ca.display()));
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

fn render_agent_settings(out: &mut String, plan: &Plan) {
    match &plan.command {
        Some(command) => {
            let text = match &command.value {
                AgentCommand::Line(line) => line.clone(),
                AgentCommand::Argv(argv) => argv.join(" "),
            };
            sourced(out, "command", &text, command);
        }
        None if plan.provider.is_some() => line(out, "command", "(the provider's CLI)", ""),
        None => line(out, "command", "(an interactive shell)", ""),
    }
    if let Some(skills) = &plan.skills {
        sourced(out, "skills", &skills.value.join(", "), skills);
    }
    if let Some(prompt) = &plan.system_prompt {
        let source = source_text(prompt.source.as_deref());
        let _ = writeln!(out, "system prompt ({source}):");
        for text in prompt.value.lines() {
            let _ = writeln!(out, "    {text}");
        }
    }
}

fn sourced<T>(out: &mut String, label: &str, value: &str, sourced: &Sourced<T>) {
    line(out, label, value, &source_text(sourced.source.as_deref()));
}

fn source_text(source: Option<&Path>) -> String {
    match source {
        Some(path) => path.display().to_string(),
        None => "default".to_string(),
    }
}

fn line(out: &mut String, label: &str, value: &str, source: &str) {
    let _ = if source.is_empty() {
        writeln!(out, "{label:<16} {value}")
    } else {
        writeln!(out, "{label:<16} {value}  [{source}]")
    };
}

fn detail(out: &mut String, text: &str) {
    let _ = writeln!(out, "{:<16}   {text}", "");
}
