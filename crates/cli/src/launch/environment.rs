//! The agent's environment inside the bottle.
//!
//! The launcher builds the whole environment; nothing of the host's is inherited
//! except `TERM`. Values copied from host variables or prompted at launch travel to
//! the sandbox over a pipe and are never written to disk or argv.

use std::collections::BTreeMap;

/// Address of the egress proxy inside the bottle.
pub const PROXY_URL: &str = "http://127.0.0.1:3128";

/// Path of the bottle CA certificate inside the bottle.
pub const CA_PATH: &str = "/etc/bottle/ca.pem";

/// Path of the bottle's git configuration inside the bottle, named by
/// `GIT_CONFIG_SYSTEM` because the compiled-in system path differs between git builds.
pub const GITCONFIG_PATH: &str = "/etc/bottle/gitconfig";

/// The system CA bundle path, which the sandbox replaces with the bottle CA.
pub const SYSTEM_BUNDLE_PATH: &str = "/etc/ssl/certs/ca-certificates.crt";

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The source of one `env` entry's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    /// A literal from the bottle file.
    Literal(String),
    /// `${NAME}`: copied from the host variable `NAME`.
    HostVar(String),
    /// `?` or `?message`: asked of the operator at launch.
    Prompt(Option<String>),
}

/// The agent environment and the values in it that count as known secrets.
#[derive(Default)]
pub struct AgentEnv {
    pub vars: Vec<(String, String)>,
    /// Values copied from the host or prompted. The agent has them, so the proxy
    /// treats them as secrets it must not let leave.
    pub known_secrets: Vec<String>,
}

impl std::fmt::Debug for AgentEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.vars.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("AgentEnv")
            .field("vars", &names)
            .field("known_secrets", &self.known_secrets.len())
            .finish()
    }
}

/// Returns the variables the launcher sets itself; a bottle may not override them.
fn fixed_vars(slug: &str, term: Option<String>) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = [
        ("PATH", PATH),
        ("HOME", "/home/agent"),
        ("USER", "agent"),
        ("LOGNAME", "agent"),
        ("SHELL", "/bin/bash"),
        ("LANG", "C.UTF-8"),
        ("HTTP_PROXY", PROXY_URL),
        ("HTTPS_PROXY", PROXY_URL),
        ("ALL_PROXY", PROXY_URL),
        ("http_proxy", PROXY_URL),
        ("https_proxy", PROXY_URL),
        ("all_proxy", PROXY_URL),
        ("NO_PROXY", "localhost,127.0.0.1,::1"),
        ("no_proxy", "localhost,127.0.0.1,::1"),
        // Node 24 and later read the proxy variables only when asked to.
        ("NODE_USE_ENV_PROXY", "1"),
        ("SSL_CERT_FILE", CA_PATH),
        ("CURL_CA_BUNDLE", CA_PATH),
        ("GIT_SSL_CAINFO", CA_PATH),
        ("REQUESTS_CA_BUNDLE", CA_PATH),
        ("NODE_EXTRA_CA_CERTS", CA_PATH),
        ("PIP_CERT", CA_PATH),
        ("CARGO_HTTP_CAINFO", CA_PATH),
        // Codex reads its own variable first, then SSL_CERT_FILE.
        ("CODEX_CA_CERTIFICATE", CA_PATH),
        ("GIT_CONFIG_SYSTEM", GITCONFIG_PATH),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    vars.push(("BOT_BOTTLE_SLUG".to_owned(), slug.to_owned()));
    vars.push(("TERM".to_owned(), term.unwrap_or_else(|| "dumb".to_owned())));
    vars
}

/// Asks the operator for the value of a variable, given its name and optional message.
pub type Prompt<'a> = dyn Fn(&str, Option<&str>) -> Result<String, String> + 'a;

/// Resolves the bottle's `env` entries and adds the launcher's fixed variables.
///
/// `host_var` reads a host variable and `prompt` prompts the operator; both are passed
/// in so that tests need neither a real environment nor a terminal.
pub fn build(
    slug: &str,
    entries: &BTreeMap<String, EnvSource>,
    host_var: &dyn Fn(&str) -> Option<String>,
    prompt: &Prompt<'_>,
) -> Result<AgentEnv, String> {
    let fixed = fixed_vars(slug, host_var("TERM"));
    let mut env = AgentEnv::default();

    for (name, source) in entries {
        if fixed.iter().any(|(fixed_name, _)| fixed_name == name) {
            return Err(format!(
                "env {name} is set by bottle itself and cannot be overridden; remove it from the \
                 bottle's env"
            ));
        }
        let value = match source {
            EnvSource::Literal(value) => value.clone(),
            EnvSource::HostVar(var) => {
                let value = host_var(var).ok_or_else(|| {
                    format!("env {name} copies host variable {var}, which is not set; export {var} or remove the entry")
                })?;
                env.known_secrets.push(value.clone());
                value
            }
            EnvSource::Prompt(message) => {
                let value = prompt(name, message.as_deref())?;
                env.known_secrets.push(value.clone());
                value
            }
        };
        env.vars.push((name.clone(), value));
    }

    env.vars.extend(fixed);
    env.known_secrets.retain(|value| !value.is_empty());
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_prompt(_: &str, _: Option<&str>) -> Result<String, String> {
        Err("no terminal".to_owned())
    }

    fn lookup<'a>(env: &'a AgentEnv, name: &str) -> Option<&'a str> {
        env.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn proxy_and_ca_variables_are_set() {
        let env = build("b-1", &BTreeMap::new(), &|_| None, &no_prompt).expect("build");
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            assert_eq!(lookup(&env, name), Some(PROXY_URL), "{name}");
        }
        for name in [
            "SSL_CERT_FILE",
            "NODE_EXTRA_CA_CERTS",
            "REQUESTS_CA_BUNDLE",
            "GIT_SSL_CAINFO",
        ] {
            assert_eq!(lookup(&env, name), Some(CA_PATH), "{name}");
        }
    }

    #[test]
    fn host_variable_copied_and_marked_secret() {
        let entries =
            BTreeMap::from([("TOKEN".to_owned(), EnvSource::HostVar("HOST_T".to_owned()))]);
        let env = build(
            "b",
            &entries,
            &|name| (name == "HOST_T").then(|| "s3cret".to_owned()),
            &no_prompt,
        )
        .expect("build");
        assert_eq!(lookup(&env, "TOKEN"), Some("s3cret"));
        assert_eq!(env.known_secrets, ["s3cret"]);
        assert!(!format!("{env:?}").contains("s3cret"));
    }

    #[test]
    fn missing_host_variable_names_it() {
        let entries =
            BTreeMap::from([("TOKEN".to_owned(), EnvSource::HostVar("HOST_T".to_owned()))]);
        let err = build("b", &entries, &|_| None, &no_prompt).expect_err("missing");
        assert_eq!(
            err,
            "env TOKEN copies host variable HOST_T, which is not set; export HOST_T or remove the entry"
        );
    }

    #[test]
    fn fixed_variable_cannot_be_overridden() {
        let entries =
            BTreeMap::from([("HTTPS_PROXY".to_owned(), EnvSource::Literal("x".to_owned()))]);
        let err = build("b", &entries, &|_| None, &no_prompt).expect_err("reserved");
        assert!(
            err.starts_with("env HTTPS_PROXY is set by bottle itself"),
            "{err}"
        );
    }

    #[test]
    fn fixed_variables_are_reserved_in_files() {
        let names: Vec<String> = fixed_vars("b", None)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        for name in &names {
            assert!(
                bottle_manifest::RESERVED_ENV.contains(&name.as_str()),
                "{name} is set by the launcher but bottle files may set it"
            );
        }
    }

    #[test]
    fn prompt_value_used() {
        let entries =
            BTreeMap::from([("PIN".to_owned(), EnvSource::Prompt(Some("PIN?".to_owned())))]);
        let env = build("b", &entries, &|_| None, &|_, message| {
            assert_eq!(message, Some("PIN?"));
            Ok("1234".to_owned())
        })
        .expect("build");
        assert_eq!(lookup(&env, "PIN"), Some("1234"));
        assert_eq!(env.known_secrets, ["1234"]);
    }
}
