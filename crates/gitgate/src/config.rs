//! The gate's configuration: declared repositories, their upstreams and push policies.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::GateError;
use crate::url::UpstreamUrl;

/// Everything the gate needs to serve one bottle's repositories.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateConfig {
    /// The bottle's slug, used in log lines.
    pub slug: String,
    /// Directory outside the bottle for the bare mirrors, the hook and the control socket.
    pub state_dir: PathBuf,
    /// The declared repositories; the gate serves these and no others.
    pub repos: Vec<GateRepo>,
    /// Secret values of this bottle; a push containing any of them is rejected.
    #[serde(default)]
    pub known_secrets: Vec<String>,
    /// Program that the pre-receive hook runs, normally the `bottle` executable.
    pub hook_program: PathBuf,
    /// Arguments given to `hook_program`, normally `["__pre-receive"]`.
    #[serde(default)]
    pub hook_args: Vec<String>,
    /// Time and size limits.
    #[serde(default)]
    pub limits: GateLimits,
    /// Queue directory for pushes held for an operator's decision, normally
    /// `<config>/state/<slug>/queue`; `<state_dir>/queue` when unset.
    #[serde(default)]
    pub queue_dir: Option<PathBuf>,
    /// File to which every push decision is appended as a JSON line, normally
    /// `<config>/logs/<slug>/git.jsonl`; `<state_dir>/git.jsonl` when unset.
    #[serde(default)]
    pub audit_log: Option<PathBuf>,
}

impl fmt::Debug for GateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateConfig")
            .field("slug", &self.slug)
            .field("state_dir", &self.state_dir)
            .field("repos", &self.repos)
            .field(
                "known_secrets",
                &format_args!("<{} redacted>", self.known_secrets.len()),
            )
            .field("hook_program", &self.hook_program)
            .field("hook_args", &self.hook_args)
            .field("limits", &self.limits)
            .field("queue_dir", &self.queue_dir)
            .field("audit_log", &self.audit_log)
            .finish()
    }
}

/// One declared repository and the upstream it mirrors.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateRepo {
    /// Name inside the gate: the agent reaches it as `/<name>.git`.
    pub name: String,
    /// SSH upstream: `ssh://[user@]host[:port]/path` or `[user@]host:path`.
    pub url: String,
    /// Pinned host keys of the upstream, one `<type> <base64>` per entry.
    pub host_keys: Vec<String>,
    /// Private key file on the host used to reach the upstream.
    pub identity: PathBuf,
    /// Limits on what a push may change.
    #[serde(default)]
    pub push: PushPolicy,
}

/// Limits on what a push may change upstream. The default allows fast-forward updates and new
/// branches of any name, and nothing else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushPolicy {
    /// Branch names (without `refs/heads/`) a push may create or update. `*` matches any
    /// sequence of characters, `/` included, and `?` matches one character.
    pub branches: Vec<String>,
    /// Allow non-fast-forward updates of matching branches.
    pub force: bool,
    /// Allow deleting matching branches (and tags when `tags` is set).
    pub delete: bool,
    /// Allow creating tags.
    pub tags: bool,
}

impl Default for PushPolicy {
    fn default() -> Self {
        PushPolicy {
            branches: vec!["*".to_owned()],
            force: false,
            delete: false,
            tags: false,
        }
    }
}

/// Time and size limits of the gate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GateLimits {
    /// Seconds allowed for one refresh from the upstream or one forwarded push.
    pub upstream_timeout_secs: u64,
    /// Seconds allowed for the SSH connection to the upstream (`ssh -o ConnectTimeout`).
    pub connect_timeout_secs: u64,
    /// Seconds allowed for the whole pre-receive step: scan and forward.
    pub pre_receive_timeout_secs: u64,
    /// Largest request body, after decompression, and `receive.maxInputSize` of the mirrors.
    pub max_input_bytes: u64,
    /// Largest object the scanner reads; a push with a larger new object is rejected.
    pub max_object_bytes: u64,
    /// Seconds a push held by a suppression marker waits for the operator's decision
    /// before it is rejected. The wait does not count against `pre_receive_timeout_secs`.
    pub hold_timeout_secs: u64,
}

impl Default for GateLimits {
    fn default() -> Self {
        GateLimits {
            upstream_timeout_secs: 300,
            connect_timeout_secs: 20,
            pre_receive_timeout_secs: 900,
            max_input_bytes: 2 << 30,
            max_object_bytes: 256 << 20,
            hold_timeout_secs: 300,
        }
    }
}

impl GateConfig {
    /// Checks names, URLs and host keys, so that a broken configuration stops the gate at
    /// start-up instead of failing a later fetch.
    pub fn validate(&self) -> Result<(), GateError> {
        let mut names = HashSet::new();
        for repo in &self.repos {
            validate_repo_name(&repo.name)?;
            if !names.insert(repo.name.as_str()) {
                return Err(GateError::Config(format!(
                    "repo '{}' is declared twice",
                    repo.name
                )));
            }
            UpstreamUrl::parse(&repo.url).map_err(|reason| {
                GateError::Config(format!("repo '{}': invalid url: {reason}", repo.name))
            })?;
            if repo.host_keys.is_empty() {
                return Err(GateError::Config(format!(
                    "repo '{}': no host key; pin the upstream's public host key",
                    repo.name
                )));
            }
            for key in &repo.host_keys {
                validate_host_key(key).map_err(|reason| {
                    GateError::Config(format!("repo '{}': invalid host key: {reason}", repo.name))
                })?;
            }
            if repo.identity.as_os_str().is_empty() {
                return Err(GateError::Config(format!(
                    "repo '{}': empty identity path",
                    repo.name
                )));
            }
            if let Err(err) = std::fs::File::open(&repo.identity) {
                return Err(GateError::Config(format!(
                    "repo '{}': cannot read identity {}: {err}; give the path of the private \
                     key the gate pushes with",
                    repo.name,
                    repo.identity.display()
                )));
            }
            if repo.push.branches.iter().any(|glob| glob.is_empty()) {
                return Err(GateError::Config(format!(
                    "repo '{}': empty branch pattern in push.branches",
                    repo.name
                )));
            }
        }
        if self.hook_program.as_os_str().is_empty() {
            return Err(GateError::Config("empty hook program".to_owned()));
        }
        Ok(())
    }
}

/// Accepts names that are safe as one path component and as part of a URL.
fn validate_repo_name(name: &str) -> Result<(), GateError> {
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if name.is_empty() || !valid_chars || name.starts_with(['.', '-']) || name.len() > 100 {
        return Err(GateError::Config(format!(
            "invalid repo name '{}': use letters, digits, '-', '_' and '.', not first",
            name.escape_debug()
        )));
    }
    Ok(())
}

/// Splits a `<type> <base64>` host key, rejecting anything that could break the
/// known-hosts file it is written to.
pub(crate) fn validate_host_key(line: &str) -> Result<(&str, &str), String> {
    let mut parts = line.split_ascii_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return Err("expected '<type> <base64>'".to_owned());
    };
    if parts.next().is_some() {
        return Err("expected '<type> <base64>' with nothing after the key".to_owned());
    }
    let kind_ok = kind
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-@.".contains(&b));
    if !kind_ok {
        return Err(format!("invalid key type '{}'", kind.escape_debug()));
    }
    let blob_ok = blob
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    if !blob_ok {
        return Err("the key is not base64".to_owned());
    }
    Ok((kind, blob))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(repos: Vec<GateRepo>) -> GateConfig {
        GateConfig {
            slug: "t".into(),
            state_dir: "/tmp/x".into(),
            repos,
            known_secrets: vec!["hunter2-value".into()],
            hook_program: "/bin/true".into(),
            hook_args: vec![],
            limits: GateLimits::default(),
            queue_dir: None,
            audit_log: None,
        }
    }

    fn repo(name: &str) -> GateRepo {
        GateRepo {
            name: name.into(),
            url: "git@forge.example.org:team/widgets.git".into(),
            host_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIQz".into()],
            identity: "/keys/id".into(),
            push: PushPolicy::default(),
        }
    }

    #[test]
    fn debug_redacts_known_secrets() {
        let text = format!("{:?}", config(vec![]));
        assert!(!text.contains("hunter2-value"));
        assert!(text.contains("<1 redacted>"));
    }

    #[test]
    fn validate_accepts_plain_repo() {
        let identity = tempfile::NamedTempFile::new().expect("temporary key file");
        let mut widgets = repo("widgets");
        widgets.identity = identity.path().to_owned();
        config(vec![widgets]).validate().expect("valid");
    }

    #[test]
    fn validate_rejects_missing_identity() {
        let error = config(vec![repo("widgets")])
            .validate()
            .expect_err("missing key");
        assert!(
            error.to_string().contains("cannot read identity /keys/id"),
            "{error}"
        );
    }

    #[test]
    fn validate_rejects_bad_names() {
        for name in ["", "../x", ".hidden", "-x", "a/b", "a b"] {
            assert!(config(vec![repo(name)]).validate().is_err(), "{name:?}");
        }
    }

    #[test]
    fn validate_rejects_duplicate_repo() {
        assert!(config(vec![repo("a"), repo("a")]).validate().is_err());
    }

    #[test]
    fn validate_rejects_bad_host_keys() {
        for key in [
            "",
            "ssh-ed25519",
            "ssh-ed25519 AAAA extra",
            "ssh-ed25519 AA\nAA",
            "x,y AAAA",
        ] {
            let mut r = repo("a");
            r.host_keys = vec![key.into()];
            assert!(config(vec![r]).validate().is_err(), "{key:?}");
        }
        let mut r = repo("a");
        r.host_keys = vec![];
        assert!(config(vec![r]).validate().is_err());
    }

    #[test]
    fn push_policy_defaults() {
        let policy: PushPolicy = serde_json::from_str("{}").expect("parse");
        assert_eq!(policy.branches, vec!["*"]);
        assert!(!policy.force);
        assert!(!policy.delete);
        assert!(!policy.tags);
    }
}
