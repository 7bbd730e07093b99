//! Turning a provider spec and the bottle's `agent_provider` settings into a launch.

use std::collections::BTreeMap;

use crate::codex_login::{self, CODEX_TOKEN_REF};
use crate::error::ProviderError;
use crate::install::AGENT_MOUNT;
use crate::spec::{HostLoginKind, ProviderSpec, SystemPrompt};

/// Read-only directory inside the bottle holding the files that the start-up step copies
/// into the agent's home, where the CLI may then change them.
pub const HOME_FILES_MOUNT: &str = "/etc/bottle/home";

/// The bottle's `agent_provider` settings and the run's prompts.
#[derive(Debug, Clone, Default)]
pub struct ProviderSettings {
    /// `agent_provider.auth_token`: the host variable whose value the proxy injects.
    pub auth_token: Option<String>,
    /// `agent_provider.forward_host_credentials`.
    pub forward_host_credentials: bool,
    /// The agent's system prompt.
    pub system_prompt: Option<String>,
    /// The prompt of `--headless --prompt P`; `None` runs the CLI interactively.
    pub headless_prompt: Option<String>,
}

/// Token values that only the sidecar receives, by token ref. `Debug` shows names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProvisionedEnv(pub BTreeMap<String, String>);

impl std::fmt::Debug for ProvisionedEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A file written into the agent's home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeFile {
    /// Path relative to the home; it never leaves the home.
    pub path: String,
    pub contents: String,
}

/// Everything a launch takes from the provider.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The CLI's argv, with the paths it has inside the bottle.
    pub argv: Vec<String>,
    /// Default routes for the provider's API hosts, their tokens named by token ref.
    pub routes: Vec<bottle_policy::Route>,
    /// The agent's environment: telemetry switches, CA trust and placeholder tokens.
    pub env: Vec<(String, String)>,
    /// Token values for the sidecar only.
    pub provisioned: ProvisionedEnv,
    /// Files for the agent's home.
    pub home_files: Vec<HomeFile>,
}

impl Prepared {
    /// Returns the argv that first copies [`HOME_FILES_MOUNT`] into `$HOME`, then execs
    /// the CLI. Without home files it is the CLI's argv unchanged.
    pub fn argv_with_home_files(&self) -> Vec<String> {
        if self.home_files.is_empty() {
            return self.argv.clone();
        }
        let script = format!("cp -R {HOME_FILES_MOUNT}/. \"$HOME\"/ && exec \"$@\"");
        let mut argv = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            script,
            "bottle-provision".to_owned(),
        ];
        argv.extend(self.argv.iter().cloned());
        argv
    }
}

/// Prepares a launch of `spec` with `settings`. `host_var` reads the host environment
/// (for `CODEX_HOME` and `HOME`) and `now` is the time in seconds since the Unix epoch,
/// against which a forwarded login's expiry is checked.
pub fn prepare(
    spec: &ProviderSpec,
    settings: &ProviderSettings,
    host_var: &dyn Fn(&str) -> Option<String>,
    now: u64,
) -> Result<Prepared, ProviderError> {
    let mut provisioned = BTreeMap::new();
    let mut home_files: Vec<HomeFile> = spec
        .files
        .iter()
        .map(|file| HomeFile {
            path: file.path.clone(),
            contents: file.contents.clone(),
        })
        .collect();

    let token_ref = route_token_ref(spec, settings)?;
    if let (Some(HostLoginKind::Codex), true) = (spec.host_login, settings.forward_host_credentials)
    {
        let path = codex_login::host_login_path(host_var);
        let login = codex_login::read_host_login(&path, now)?;
        home_files.push(HomeFile {
            path: ".codex/auth.json".to_owned(),
            contents: codex_login::dummy_chatgpt_login(&login, now),
        });
        // TODO(providers): the forwarded token is never refreshed, so a bottle that
        // outlives its expiry gets 401s until the host logs in again and relaunches.
        provisioned.insert(CODEX_TOKEN_REF.to_owned(), login.access_token);
        tracing::info!(
            path = %path.display(),
            expires_at = login.expires_at,
            "forwarding the host's Codex login to the sidecar"
        );
    } else if spec.host_login == Some(HostLoginKind::Codex) && settings.auth_token.is_some() {
        home_files.push(HomeFile {
            path: ".codex/auth.json".to_owned(),
            contents: codex_login::dummy_api_key_login(),
        });
    }
    let routes = provider_routes(spec, token_ref.as_deref());

    let mut argv = match &spec.package {
        Some(package) => vec![format!("{AGENT_MOUNT}/{}", package.bin_path())],
        None => spec.command.clone(),
    };
    if settings.headless_prompt.is_some() {
        let Some(headless) = &spec.headless else {
            return Err(ProviderError::Invalid {
                path: format!("provider {}", spec.name).into(),
                message: "it has no headless mode, so --headless cannot run it".to_owned(),
            });
        };
        argv.extend(headless.args.iter().cloned());
    }
    argv.extend(spec.bypass_flags.iter().cloned());
    if let Some(prompt) = settings
        .system_prompt
        .as_ref()
        .filter(|text| !text.is_empty())
    {
        match &spec.system_prompt {
            SystemPrompt::Flag(flag) => argv.extend([flag.clone(), prompt.clone()]),
            SystemPrompt::File(path) => home_files.push(HomeFile {
                path: path.clone(),
                contents: prompt.clone(),
            }),
            SystemPrompt::None => tracing::warn!(
                provider = %spec.name,
                "the provider takes no system prompt; the agent's prompt is not passed on"
            ),
        }
    }
    if let Some(prompt) = &settings.headless_prompt {
        // TODO(providers): a prompt that starts with `-` is parsed as a flag by the CLI;
        // neither CLI documents `--` before its prompt argument.
        argv.push(prompt.clone());
    }

    let mut env: Vec<(String, String)> = spec
        .env
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    env.extend(
        spec.placeholder_env
            .iter()
            .map(|(name, value)| (name.clone(), value.clone())),
    );

    Ok(Prepared {
        argv,
        routes,
        env,
        provisioned: ProvisionedEnv(provisioned),
        home_files,
    })
}

/// Returns the token ref that the provider's routes inject, without reading any
/// credential: the forwarded host login's when `forward_host_credentials` is set, else
/// `agent_provider.auth_token`, else none.
pub fn route_token_ref(
    spec: &ProviderSpec,
    settings: &ProviderSettings,
) -> Result<Option<String>, ProviderError> {
    if !settings.forward_host_credentials {
        return Ok(settings.auth_token.clone());
    }
    match spec.host_login {
        Some(HostLoginKind::Codex) => Ok(Some(CODEX_TOKEN_REF.to_owned())),
        None => Err(ProviderError::NoHostLogin {
            provider: spec.name.clone(),
        }),
    }
}

/// Builds the provider's default routes for its API hosts. Those whose spec names an
/// `auth` inject `token_ref` when there is one.
pub fn provider_routes(spec: &ProviderSpec, token_ref: Option<&str>) -> Vec<bottle_policy::Route> {
    spec.routes
        .iter()
        .map(|route| {
            // The policy crate's own defaults fill the fields a provider does not set.
            let mut policy_route: bottle_policy::Route = serde_json::from_value(
                serde_json::json!({ "host": route.host, "port": route.port }),
            )
            .expect("a host and a port make a valid route");
            let auth = route.auth.as_ref().zip(token_ref);
            policy_route.auth = auth.map(|(auth, token_ref)| bottle_policy::Auth {
                token_ref: token_ref.to_owned(),
                scheme: auth.scheme.clone(),
                header: auth.header.clone(),
            });
            policy_route
        })
        .collect()
}

/// The origin of a route in a merged list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteOrigin {
    /// A default route of the provider, for a host the bottle names no route for.
    Provider,
    /// The bottle's route at this index of its list, used as it is.
    Bottle(usize),
    /// The bottle's route at this index, which sets no `auth` and so injects the token of
    /// the provider's route for the same host and port.
    BottleWithProviderAuth(usize),
}

/// A route of a launch and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedRoute {
    pub route: bottle_policy::Route,
    pub origin: RouteOrigin,
}

/// Merges the provider's default routes with the bottle's. A bottle route for the same
/// host and port replaces the provider's, but keeps the provider's `auth` when it sets
/// none, so that pointing an API host elsewhere (`connect`, `upstream_ca`) still injects
/// the provider's token. The provider's remaining routes come first, then the bottle's
/// in their order.
pub fn merge_routes(
    provider: &[bottle_policy::Route],
    bottle: &[bottle_policy::Route],
) -> Vec<MergedRoute> {
    let same = |a: &bottle_policy::Route, b: &bottle_policy::Route| {
        a.host.eq_ignore_ascii_case(&b.host) && a.port == b.port
    };
    let mut merged: Vec<MergedRoute> = provider
        .iter()
        .filter(|route| !bottle.iter().any(|own| same(own, route)))
        .map(|route| MergedRoute {
            route: route.clone(),
            origin: RouteOrigin::Provider,
        })
        .collect();
    for (index, own) in bottle.iter().enumerate() {
        let mut route = own.clone();
        let mut origin = RouteOrigin::Bottle(index);
        if route.auth.is_none()
            && let Some(default) = provider.iter().find(|default| same(default, own))
            && default.auth.is_some()
        {
            route.auth = default.auth.clone();
            origin = RouteOrigin::BottleWithProviderAuth(index);
        }
        merged.push(MergedRoute { route, origin });
    }
    merged
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::spec::load;

    const NOW: u64 = 1_780_000_000;

    fn builtin(name: &str) -> ProviderSpec {
        load(name, Path::new("/nonexistent")).expect("built-in provider")
    }

    fn no_host(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn claude_injects_auth_token_var() {
        let settings = ProviderSettings {
            auth_token: Some("MY_CLAUDE_TOKEN".to_owned()),
            system_prompt: Some("Be brief.".to_owned()),
            headless_prompt: Some("say hi".to_owned()),
            ..ProviderSettings::default()
        };
        let prepared = prepare(&builtin("claude"), &settings, &no_host, NOW).expect("prepare");

        let route = &prepared.routes[0];
        assert_eq!(route.host, "api.anthropic.com");
        let auth = route.auth.as_ref().expect("auth");
        assert_eq!(auth.token_ref, "MY_CLAUDE_TOKEN");
        assert_eq!(auth.scheme, "Bearer");
        assert!(prepared.provisioned.0.is_empty());

        let platform_binary = "/opt/bottle/agent/node_modules/@anthropic-ai/claude-code-";
        assert!(
            prepared.argv[0].starts_with(platform_binary),
            "{}",
            prepared.argv[0]
        );
        assert!(
            prepared.argv[0].ends_with("/claude"),
            "{}",
            prepared.argv[0]
        );
        assert_eq!(
            &prepared.argv[1..],
            [
                "--print",
                "--dangerously-skip-permissions",
                "--append-system-prompt",
                "Be brief.",
                "say hi"
            ]
        );
        let placeholder = prepared
            .env
            .iter()
            .find(|(name, _)| name == "ANTHROPIC_AUTH_TOKEN")
            .map(|(_, value)| value.as_str())
            .expect("placeholder token");
        assert!(!placeholder.starts_with("sk-ant-"), "{placeholder}");
        assert!(
            prepared
                .env
                .iter()
                .any(|(name, _)| name == "DISABLE_TELEMETRY")
        );
    }

    #[test]
    fn codex_forwards_host_login() {
        let dir = tempfile::tempdir().expect("tempdir");
        let claims = URL_SAFE_NO_PAD.encode(format!("{{\"exp\":{}}}", NOW + 600));
        let access = format!("eyJhbGciOiJSUzI1NiJ9.{claims}.cmVhbC1zaWduYXR1cmU");
        let auth = serde_json::json!({"tokens": {"access_token": access, "account_id": "acct"}});
        std::fs::write(dir.path().join("auth.json"), auth.to_string()).expect("write");
        let codex_home = dir.path().display().to_string();
        let host = move |name: &str| (name == "CODEX_HOME").then(|| codex_home.clone());
        let settings = ProviderSettings {
            forward_host_credentials: true,
            system_prompt: Some("Be brief.".to_owned()),
            ..ProviderSettings::default()
        };

        let prepared = prepare(&builtin("codex"), &settings, &host, NOW).expect("prepare");

        assert_eq!(prepared.provisioned.0[CODEX_TOKEN_REF], access);
        assert!(!format!("{:?}", prepared.provisioned).contains(&access));
        let hosts: Vec<&str> = prepared.routes.iter().map(|r| r.host.as_str()).collect();
        assert_eq!(hosts, ["api.openai.com", "chatgpt.com"]);
        for route in &prepared.routes {
            let auth = route.auth.as_ref().expect("auth");
            assert_eq!(auth.token_ref, CODEX_TOKEN_REF, "{}", route.host);
        }
        let files: Vec<&str> = prepared
            .home_files
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert!(files.contains(&".codex/auth.json"), "{files:?}");
        assert!(files.contains(&".codex/AGENTS.md"), "{files:?}");
        for file in &prepared.home_files {
            assert!(
                !file.contents.contains(&access),
                "{} holds the token",
                file.path
            );
        }
        assert!(!prepared.argv.iter().any(|arg| arg.contains("Be brief")));
        assert_eq!(prepared.argv_with_home_files()[0], "/bin/sh");
    }

    #[test]
    fn codex_expired_login_stops_prepare() {
        let dir = tempfile::tempdir().expect("tempdir");
        let claims = URL_SAFE_NO_PAD.encode(format!("{{\"exp\":{}}}", NOW - 1));
        let auth = serde_json::json!({"tokens": {"access_token": format!("a.{claims}.c")}});
        std::fs::write(dir.path().join("auth.json"), auth.to_string()).expect("write");
        let codex_home = dir.path().display().to_string();
        let host = move |name: &str| (name == "CODEX_HOME").then(|| codex_home.clone());
        let settings = ProviderSettings {
            forward_host_credentials: true,
            ..ProviderSettings::default()
        };
        let err = prepare(&builtin("codex"), &settings, &host, NOW).expect_err("expired");
        assert!(err.to_string().contains("has expired"), "{err}");
        assert!(err.to_string().contains("codex login"), "{err}");
    }

    #[test]
    fn forwarding_needs_host_login_kind() {
        let settings = ProviderSettings {
            forward_host_credentials: true,
            ..ProviderSettings::default()
        };
        let err = prepare(&builtin("claude"), &settings, &no_host, NOW).expect_err("claude");
        assert!(matches!(err, ProviderError::NoHostLogin { .. }), "{err}");
    }

    #[test]
    fn no_token_means_no_auth() {
        let prepared = prepare(
            &builtin("claude"),
            &ProviderSettings::default(),
            &no_host,
            NOW,
        )
        .expect("prepare");
        assert!(prepared.routes.iter().all(|route| route.auth.is_none()));
        assert_eq!(
            prepared.argv_with_home_files()[0],
            "/bin/sh",
            "claude has home files"
        );
    }

    #[test]
    fn bottle_route_keeps_provider_auth() {
        let settings = ProviderSettings {
            auth_token: Some("TOKEN_VAR".to_owned()),
            ..ProviderSettings::default()
        };
        let prepared = prepare(&builtin("codex"), &settings, &no_host, NOW).expect("prepare");
        let own: bottle_policy::Route = serde_json::from_value(serde_json::json!({
            "host": "api.openai.com", "connect": "127.0.0.1:9"
        }))
        .expect("route");
        let merged = merge_routes(&prepared.routes, &[own]);

        assert_eq!(merged.len(), 2);
        let openai = merged
            .iter()
            .find(|r| r.route.host == "api.openai.com")
            .expect("openai");
        assert_eq!(openai.route.connect.as_deref(), Some("127.0.0.1:9"));
        assert_eq!(
            openai.route.auth.as_ref().expect("auth").token_ref,
            "TOKEN_VAR"
        );
        assert_eq!(openai.origin, RouteOrigin::BottleWithProviderAuth(0));
        let chatgpt = merged
            .iter()
            .find(|r| r.route.host == "chatgpt.com")
            .expect("chatgpt");
        assert_eq!(chatgpt.origin, RouteOrigin::Provider);
    }

    #[test]
    fn bottle_route_auth_wins() {
        let settings = ProviderSettings {
            auth_token: Some("TOKEN_VAR".to_owned()),
            ..ProviderSettings::default()
        };
        let prepared = prepare(&builtin("claude"), &settings, &no_host, NOW).expect("prepare");
        let own: bottle_policy::Route = serde_json::from_value(serde_json::json!({
            "host": "api.anthropic.com", "auth": {"token_ref": "OWN_VAR"}
        }))
        .expect("route");
        let merged = merge_routes(&prepared.routes, &[own]);

        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].origin, RouteOrigin::Bottle(0));
        assert_eq!(
            merged[0].route.auth.as_ref().expect("auth").token_ref,
            "OWN_VAR"
        );
    }

    #[test]
    fn token_ref_needs_no_credential() {
        let forward = ProviderSettings {
            forward_host_credentials: true,
            ..ProviderSettings::default()
        };
        assert_eq!(
            route_token_ref(&builtin("codex"), &forward).expect("codex forwards"),
            Some(CODEX_TOKEN_REF.to_owned())
        );
        let err = route_token_ref(&builtin("claude"), &forward).expect_err("no host login");
        assert!(
            err.to_string().contains("forward_host_credentials"),
            "{err}"
        );
        assert_eq!(
            route_token_ref(&builtin("claude"), &ProviderSettings::default()).expect("none"),
            None
        );
    }

    #[test]
    fn headless_without_mode_rejected() {
        let mut spec = builtin("claude");
        spec.headless = None;
        let settings = ProviderSettings {
            headless_prompt: Some("x".to_owned()),
            ..ProviderSettings::default()
        };
        let err = prepare(&spec, &settings, &no_host, NOW).expect_err("no headless");
        assert!(err.to_string().contains("--headless"), "{err}");
    }
}
