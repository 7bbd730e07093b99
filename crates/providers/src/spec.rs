//! The provider description and where it is loaded from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ProviderError;

const CLAUDE: &str = include_str!("../builtin/claude.json");
const CODEX: &str = include_str!("../builtin/codex.json");

/// One agent provider, as written in its JSON or YAML file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// The provider's name, equal to its `agent_provider.template` value.
    pub name: String,
    /// The npm package that contains the CLI; `None` when `command` is on the bottle's `PATH`.
    #[serde(default)]
    pub package: Option<NpmPackage>,
    /// The CLI's argv prefix, used when there is no `package`.
    #[serde(default)]
    pub command: Vec<String>,
    /// Flags that turn off the CLI's own permission prompts: the bottle is the boundary.
    #[serde(default)]
    pub bypass_flags: Vec<String>,
    /// How the agent's system prompt reaches the CLI.
    #[serde(default)]
    pub system_prompt: SystemPrompt,
    /// How the CLI runs without a terminal, for `--headless --prompt P`.
    #[serde(default)]
    pub headless: Option<Headless>,
    /// Environment for the CLI: telemetry, auto-update and CA trust settings.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Placeholder credentials that let the CLI start; the proxy replaces them.
    #[serde(default)]
    pub placeholder_env: BTreeMap<String, String>,
    /// Egress routes for the provider's API hosts.
    #[serde(default)]
    pub routes: Vec<ProviderRoute>,
    /// Files written into the agent's home before the CLI starts.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// The host login this provider can forward with `forward_host_credentials`.
    #[serde(default)]
    pub host_login: Option<HostLoginKind>,
}

/// An npm package pinned to one version.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpmPackage {
    /// Package name, such as `@openai/codex`.
    pub npm: String,
    /// Exact version.
    pub version: String,
    /// The executable, relative to the install directory. `{platform}` stands for npm's
    /// name of this machine's platform, such as `linux-x64`, for packages that ship a
    /// native binary per platform as an optional dependency.
    pub bin: String,
}

impl NpmPackage {
    /// Returns `bin` with `{platform}` replaced by this machine's npm platform name.
    pub fn bin_path(&self) -> String {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "x64",
            "aarch64" => "arm64",
            other => other,
        };
        // TODO(providers): musl hosts need the `-musl` platform packages; only glibc is chosen.
        let platform = format!("{}-{arch}", std::env::consts::OS);
        self.bin.replace("{platform}", &platform)
    }
}

/// How the system prompt reaches the CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SystemPrompt {
    /// The CLI has no way to take one; the prompt is dropped with a warning.
    #[default]
    None,
    /// A flag followed by the prompt text.
    Flag(String),
    /// A file, relative to the agent's home, that contains the prompt text.
    File(String),
}

/// Arguments for a run without a terminal; the prompt follows them as the last argument.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Headless {
    pub args: Vec<String>,
}

/// A default route of the provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderRoute {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Where the token goes; the token itself comes from `agent_provider.auth_token` or a
    /// forwarded host login.
    #[serde(default)]
    pub auth: Option<RouteAuth>,
}

/// Header and scheme of an injected token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteAuth {
    #[serde(default = "default_scheme")]
    pub scheme: String,
    #[serde(default = "default_header")]
    pub header: String,
}

/// A file of the agent's home, given by its path relative to the home and its contents.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub path: String,
    pub contents: String,
}

/// A host login that can be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostLoginKind {
    /// The Codex CLI's ChatGPT login, `$CODEX_HOME/auth.json`.
    Codex,
}

fn default_port() -> u16 {
    443
}

fn default_scheme() -> String {
    "Bearer".to_owned()
}

fn default_header() -> String {
    "Authorization".to_owned()
}

/// Loads provider `name`: a built-in one, else `<config>/contrib/<name>/provider.json`
/// or `provider.yaml`. A built-in name cannot be replaced by a plugin.
pub fn load(name: &str, config_dir: &Path) -> Result<ProviderSpec, ProviderError> {
    let builtin = match name {
        "claude" => Some(("claude.json", CLAUDE)),
        "codex" => Some(("codex.json", CODEX)),
        _ => None,
    };
    if let Some((file, text)) = builtin {
        let spec = parse_json(Path::new(file), text).expect("built-in provider files are valid");
        return Ok(spec);
    }

    let dir = plugin_dir(name, config_dir)?;
    for (file, yaml) in [
        ("provider.json", false),
        ("provider.yaml", true),
        ("provider.yml", true),
    ] {
        let path = dir.join(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(ProviderError::Read { path, source }),
        };
        let spec = if yaml {
            parse_yaml(&path, &text)?
        } else {
            parse_json(&path, &text)?
        };
        if spec.name != name {
            return Err(ProviderError::Invalid {
                path,
                message: format!("name is {:?}, but the directory is {name:?}", spec.name),
            });
        }
        validate(&path, &spec)?;
        return Ok(spec);
    }
    Err(ProviderError::NotFound {
        name: name.to_owned(),
        dir,
    })
}

/// Returns `<config>/contrib/<name>`, refusing names that would leave that directory.
fn plugin_dir(name: &str, config_dir: &Path) -> Result<PathBuf, ProviderError> {
    let contrib = config_dir.join("contrib");
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain {
        return Err(ProviderError::Invalid {
            path: contrib,
            message: format!(
                "provider name {name:?} is not a plain name; use letters, digits, '-', '_' or '.'"
            ),
        });
    }
    Ok(contrib.join(name))
}

fn parse_json(path: &Path, text: &str) -> Result<ProviderSpec, ProviderError> {
    serde_json::from_str(text).map_err(|err| ProviderError::Invalid {
        path: path.to_path_buf(),
        message: err.to_string(),
    })
}

fn parse_yaml(path: &Path, text: &str) -> Result<ProviderSpec, ProviderError> {
    serde_saphyr::from_str(text).map_err(|err| ProviderError::Invalid {
        path: path.to_path_buf(),
        message: err.to_string(),
    })
}

/// Checks what serde cannot: a plugin must name what to run, and its home files must stay
/// inside the home.
fn validate(path: &Path, spec: &ProviderSpec) -> Result<(), ProviderError> {
    let invalid = |message: String| ProviderError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    if spec.package.is_none() && spec.command.is_empty() {
        return Err(invalid(
            "set package or command: nothing says what to run".to_owned(),
        ));
    }
    let mut home_paths: Vec<&str> = spec.files.iter().map(|file| file.path.as_str()).collect();
    if let SystemPrompt::File(file) = &spec.system_prompt {
        home_paths.push(file);
    }
    for home_path in home_paths {
        if !is_relative_inside(home_path) {
            return Err(invalid(format!(
                "file path {home_path:?} must be relative to the agent's home, without '..'"
            )));
        }
    }
    if let Some(package) = &spec.package
        && !is_relative_inside(&package.bin_path())
    {
        return Err(invalid(format!(
            "package.bin {:?} must be relative to the install directory, without '..'",
            package.bin
        )));
    }
    Ok(())
}

pub(crate) fn is_relative_inside(path: &str) -> bool {
    let path = Path::new(path);
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|component| matches!(component, std::path::Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["claude", "codex"] {
            let spec = load(name, dir.path()).expect(name);
            assert_eq!(spec.name, name);
            assert!(spec.package.is_some(), "{name} has a package");
            assert!(!spec.bypass_flags.is_empty(), "{name} has bypass flags");
            assert!(!spec.routes.is_empty(), "{name} has routes");
        }
    }

    #[test]
    fn plugin_yaml_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plugin = dir.path().join("contrib/gemini");
        std::fs::create_dir_all(&plugin).expect("mkdir");
        std::fs::write(
            plugin.join("provider.yaml"),
            "name: gemini\ncommand: [gemini]\nbypass_flags: [--yolo]\nsystem_prompt: {file: .gemini/GEMINI.md}\nroutes:\n  - host: generativelanguage.googleapis.com\n    auth: {scheme: \"\", header: x-goog-api-key}\n",
        )
        .expect("write");
        let spec = load("gemini", dir.path()).expect("load");
        assert_eq!(spec.command, ["gemini"]);
        assert_eq!(
            spec.system_prompt,
            SystemPrompt::File(".gemini/GEMINI.md".to_owned())
        );
        let auth = spec.routes[0].auth.as_ref().expect("auth");
        assert_eq!(auth.header, "x-goog-api-key");
        assert_eq!(auth.scheme, "");
    }

    #[test]
    fn plugin_missing_names_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load("nothing", dir.path()).expect_err("missing");
        assert!(matches!(err, ProviderError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("contrib/nothing"), "{err}");
    }

    #[test]
    fn plugin_escaping_home_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plugin = dir.path().join("contrib/bad");
        std::fs::create_dir_all(&plugin).expect("mkdir");
        std::fs::write(
            plugin.join("provider.json"),
            r#"{"name": "bad", "command": ["x"], "files": [{"path": "../../etc/x", "contents": ""}]}"#,
        )
        .expect("write");
        let err = load("bad", dir.path()).expect_err("escape");
        assert!(
            err.to_string().contains("relative to the agent's home"),
            "{err}"
        );
    }

    #[test]
    fn plugin_name_must_be_plain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load("../x", dir.path()).expect_err("path name");
        assert!(err.to_string().contains("not a plain name"), "{err}");
    }

    #[test]
    fn plugin_unknown_key_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plugin = dir.path().join("contrib/typo");
        std::fs::create_dir_all(&plugin).expect("mkdir");
        std::fs::write(
            plugin.join("provider.json"),
            r#"{"name": "typo", "comand": ["x"]}"#,
        )
        .expect("write");
        let err = load("typo", dir.path()).expect_err("typo");
        assert!(err.to_string().contains("comand"), "{err}");
    }
}
