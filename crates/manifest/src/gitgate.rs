//! The `git-gate` key: commit identity and the repositories the gate mirrors.

use std::fmt;
use std::path::PathBuf;

use serde::{Serialize, Serializer};

use crate::decode::{Cx, Fields};
use crate::host::normalize_host;
use crate::names::is_plain_name;
use crate::paths::resolve_path;
use crate::route::check_variable_name;
use crate::sourced::Sourced;
use crate::yaml::Node;

/// Host key types the gate can pin.
const HOST_KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// `git-gate.user` as written in one file; each field may be absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartialGitUser {
    pub name: Option<Sourced<String>>,
    pub email: Option<Sourced<String>>,
}

impl PartialGitUser {
    /// Overlays `later` on `self` field by field.
    pub fn merge(&mut self, later: &PartialGitUser) {
        if later.name.is_some() {
            self.name.clone_from(&later.name);
        }
        if later.email.is_some() {
            self.email.clone_from(&later.email);
        }
    }
}

/// One repository the git gate mirrors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repo {
    /// The SSH upstream.
    pub url: GitUrl,
    /// The pinned host keys of the upstream, one per line of `host_key`.
    pub host_keys: Vec<HostKey>,
    /// The deploy key the gate pushes with.
    pub key: RepoKey,
    /// The push policy of this repository.
    pub push: PushPolicy,
}

/// An SSH upstream URL: `ssh://[user@]host[:port]/path` or `user@host:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitUrl {
    /// The SSH user, if given.
    pub user: Option<String>,
    /// The normalized host.
    pub host: String,
    /// The port, if given (`ssh://` form only).
    pub port: Option<u16>,
    /// The repository path on the host; starts with `/` in the `ssh://` form.
    pub path: String,
    /// Whether the URL was written in the `user@host:path` form.
    pub scp_like: bool,
}

impl fmt::Display for GitUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scp_like {
            let user = self.user.as_deref().unwrap_or_default();
            return write!(formatter, "{user}@{}:{}", self.host, self.path);
        }
        formatter.write_str("ssh://")?;
        if let Some(user) = &self.user {
            write!(formatter, "{user}@")?;
        }
        formatter.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(formatter, ":{port}")?;
        }
        formatter.write_str(&self.path)
    }
}

impl Serialize for GitUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A pinned public host key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostKey {
    /// The key type, such as `ssh-ed25519`.
    pub key_type: String,
    /// The base64 key blob.
    pub base64: String,
}

/// The key a repository is pushed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RepoKey {
    /// A private key file on the host.
    Identity(PathBuf),
    /// A deploy key generated at launch and registered through the forge's API.
    ProvisionedKey(ProvisionedKey),
}

/// How to register a generated deploy key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvisionedKey {
    /// The forge.
    pub provider: Forge,
    /// The forge's API base URL.
    pub api_url: String,
    /// The host variable holding the forge token (its name, never its value).
    pub token_env: String,
    /// Whether the deploy key is read-only.
    pub read_only: bool,
    /// The deploy key's title on the forge, if set.
    pub title: Option<String>,
}

/// A forge whose API can register deploy keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Forge {
    /// Gitea or Forgejo.
    Gitea,
    /// GitHub.
    Github,
    /// GitLab.
    Gitlab,
}

/// The push policy: which pushes the gate forwards upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushPolicy {
    /// Branch name globs that may be pushed; `["*"]` by default.
    pub branches: Vec<String>,
    /// Whether non-fast-forward pushes are allowed.
    pub force: bool,
    /// Whether branches may be deleted.
    pub delete: bool,
    /// Whether tags may be pushed.
    pub tags: bool,
}

impl Default for PushPolicy {
    fn default() -> PushPolicy {
        PushPolicy {
            branches: vec!["*".to_string()],
            force: false,
            delete: false,
            tags: false,
        }
    }
}

/// Decodes `git-gate.user`.
pub(crate) fn decode_user(cx: &mut Cx, node: &Node) -> Option<PartialGitUser> {
    let fields = cx.fields(node, &["name", "email"])?;
    let name = cx
        .optional(&fields, "name", decode_identity_text)
        .map(|name| cx.sourced(name));
    let email = cx
        .optional(&fields, "email", decode_identity_text)
        .map(|email| cx.sourced(email));
    Some(PartialGitUser { name, email })
}

fn decode_identity_text(cx: &mut Cx, node: &Node) -> Option<String> {
    let text = cx.string(node)?;
    if text.trim().is_empty() {
        cx.error(node, "the value is empty");
        return None;
    }
    if text.chars().any(|c| c.is_control() || c == '<' || c == '>') {
        cx.error(node, "the value contains a control character, `<` or `>`");
        return None;
    }
    Some(text)
}

/// Decodes `git-gate.repos` in file order.
pub(crate) fn decode_repos(cx: &mut Cx, node: &Node) -> Option<Vec<(String, Sourced<Repo>)>> {
    let entries = cx.entries(node)?;
    let mut repos = Vec::new();
    for (key, value) in entries {
        cx.at_key(&key.name, |cx| {
            if !is_plain_name(&key.name) {
                cx.error_at_line(
                    key.line,
                    "invalid repo name; use letters, digits, `.`, `_` and `-`, starting with a \
                     letter or digit",
                );
                return;
            }
            if let Some(repo) = decode_repo(cx, value) {
                repos.push((key.name.clone(), cx.sourced(repo)));
            }
        });
    }
    Some(repos)
}

fn decode_repo(cx: &mut Cx, node: &Node) -> Option<Repo> {
    let fields = cx.fields(
        node,
        &["url", "host_key", "identity", "provisioned_key", "push"],
    )?;
    let url = cx.required(node, &fields, "url", decode_url);
    let host_keys = cx.required(node, &fields, "host_key", decode_host_keys);
    let key = decode_repo_key(cx, node, &fields);
    let push = cx
        .optional(&fields, "push", decode_push)
        .unwrap_or_default();
    Some(Repo {
        url: url?,
        host_keys: host_keys?,
        key: key?,
        push,
    })
}

fn decode_repo_key(cx: &mut Cx, node: &Node, fields: &Fields<'_>) -> Option<RepoKey> {
    match (fields.has("identity"), fields.has("provisioned_key")) {
        (true, true) => {
            cx.error(
                node,
                "set exactly one of `identity` and `provisioned_key`, not both",
            );
            None
        }
        (false, false) => {
            cx.error(
                node,
                "set exactly one of `identity` and `provisioned_key`; neither is set",
            );
            None
        }
        (true, false) => cx.optional(fields, "identity", |cx, node| {
            let text = cx.string(node)?;
            resolve_path(cx.file(), &text)
                .map(RepoKey::Identity)
                .map_err(|message| cx.error(node, message))
                .ok()
        }),
        (false, true) => cx.optional(fields, "provisioned_key", decode_provisioned_key),
    }
}

fn decode_url(cx: &mut Cx, node: &Node) -> Option<GitUrl> {
    let text = cx.string(node)?;
    match parse_git_url(&text) {
        Ok(url) => Some(url),
        Err(detail) => {
            cx.error(
                node,
                format!(
                    "invalid upstream URL: {detail}; expected `ssh://[user@]host[:port]/path` \
                     or `user@host:path`"
                ),
            );
            None
        }
    }
}

/// Parses an SSH upstream URL.
pub(crate) fn parse_git_url(text: &str) -> Result<GitUrl, String> {
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("it contains whitespace or a control character".into());
    }
    if let Some(rest) = text.strip_prefix("ssh://") {
        let (authority, path) = match rest.find('/') {
            Some(index) => rest.split_at(index),
            None => return Err("it has no path".into()),
        };
        if path.len() < 2 {
            return Err("it has no path".into());
        }
        let (user, host_port) = match authority.rsplit_once('@') {
            Some((user, host_port)) => (Some(check_user(user)?), host_port),
            None => (None, authority),
        };
        let (host, port) = split_host_port(host_port)?;
        return Ok(GitUrl {
            user,
            host,
            port,
            path: path.to_string(),
            scp_like: false,
        });
    }
    if text.contains("://") {
        return Err("the git gate pushes over SSH only".into());
    }
    let Some((user, rest)) = text.split_once('@') else {
        return Err("it names no user".into());
    };
    let Some((host, path)) = rest.split_once(':') else {
        return Err("it has no `:` before the path".into());
    };
    if path.is_empty() {
        return Err("it has no path".into());
    }
    if path.starts_with('-') {
        return Err("the path starts with `-`".into());
    }
    let user = check_user(user)?;
    let host = normalize_host(host)?;
    Ok(GitUrl {
        user: Some(user),
        host,
        port: None,
        path: path.to_string(),
        scp_like: true,
    })
}

fn check_user(user: &str) -> Result<String, String> {
    let valid = user
        .bytes()
        .next()
        .is_some_and(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
        && user
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte));
    if valid {
        Ok(user.to_string())
    } else if user.contains(':') {
        Err("a password does not belong in the URL; use `identity` or `provisioned_key`".into())
    } else {
        Err(format!("invalid user \"{user}\""))
    }
}

fn split_host_port(host_port: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if host_port.starts_with('[') {
        match host_port.find(']') {
            Some(index) => {
                let (host, rest) = host_port.split_at(index + 1);
                (host, rest.strip_prefix(':'))
            }
            None => return Err("the IPv6 address has no closing `]`".into()),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let port = match port {
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port > 0 => Some(port),
            _ => return Err(format!("invalid port \"{port}\"")),
        },
        None => None,
    };
    Ok((normalize_host(host)?, port))
}

fn decode_host_keys(cx: &mut Cx, node: &Node) -> Option<Vec<HostKey>> {
    let text = cx.string(node)?;
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        match parse_host_key(line) {
            Ok(key) => keys.push(key),
            Err(detail) => {
                cx.error(
                    node,
                    format!("invalid host key: {detail}; expected `<type> <base64>`"),
                );
                return None;
            }
        }
    }
    if keys.is_empty() {
        cx.error(
            node,
            "no host key given; pin the upstream's key, e.g. from `ssh-keyscan`",
        );
        return None;
    }
    Some(keys)
}

/// Parses one `<type> <base64> [comment]` line and checks that the blob names the
/// same key type.
pub(crate) fn parse_host_key(line: &str) -> Result<HostKey, String> {
    let mut words = line.split_whitespace();
    let key_type = words.next().unwrap_or_default();
    let Some(blob) = words.next() else {
        return Err("the key has no base64 part".into());
    };
    if !HOST_KEY_TYPES.contains(&key_type) {
        return Err(format!(
            "unknown key type \"{}\"; expected one of {}",
            key_type.escape_default(),
            HOST_KEY_TYPES.join(", ")
        ));
    }
    let decoded = decode_base64(blob).ok_or("the base64 part is not valid base64")?;
    let embedded = decoded
        .get(..4)
        .map(|length| u32::from_be_bytes([length[0], length[1], length[2], length[3]]) as usize)
        .and_then(|length| decoded.get(4..4 + length));
    if embedded != Some(key_type.as_bytes()) {
        return Err(format!("the base64 part is not a {key_type} key"));
    }
    Ok(HostKey {
        key_type: key_type.to_string(),
        base64: blob.to_string(),
    })
}

/// Decodes standard padded base64; `None` if it is malformed.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn sextet(byte: u8) -> Option<u32> {
        match byte {
            b'A'..=b'Z' => Some(u32::from(byte - b'A')),
            b'a'..=b'z' => Some(u32::from(byte - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(byte - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut output = Vec::with_capacity(bytes.len() / 4 * 3);
    let chunks = bytes.len() / 4;
    for (index, chunk) in bytes.chunks(4).enumerate() {
        let padding = chunk.iter().rev().take_while(|byte| **byte == b'=').count();
        if padding > 2 || (padding > 0 && index + 1 != chunks) {
            return None;
        }
        let mut group = 0u32;
        for byte in &chunk[..4 - padding] {
            group = (group << 6) | sextet(*byte)?;
        }
        for _ in 0..padding {
            group <<= 6;
        }
        let group_bytes = group.to_be_bytes();
        output.extend_from_slice(&group_bytes[1..4 - padding]);
    }
    Some(output)
}

fn decode_provisioned_key(cx: &mut Cx, node: &Node) -> Option<RepoKey> {
    let fields = cx.fields(
        node,
        &["provider", "api_url", "token_env", "read_only", "title"],
    )?;
    let provider = cx.required(node, &fields, "provider", |cx, node| {
        let provider = cx.string(node)?;
        match provider.as_str() {
            "gitea" => Some(Forge::Gitea),
            "github" => Some(Forge::Github),
            "gitlab" => Some(Forge::Gitlab),
            _ => {
                cx.error(
                    node,
                    format!(
                        "unknown provider \"{provider}\"; expected `gitea`, `github` or `gitlab`"
                    ),
                );
                None
            }
        }
    });
    let api_url = cx.required(node, &fields, "api_url", decode_api_url);
    let token_env = cx.required(node, &fields, "token_env", |cx, node| {
        let name = cx.string(node)?;
        check_variable_name(cx, node, &name).then_some(name)
    });
    let read_only = cx.optional(&fields, "read_only", Cx::bool).unwrap_or(false);
    let title = cx.optional(&fields, "title", |cx, node| {
        let title = cx.string(node)?;
        if title.chars().any(char::is_control) {
            cx.error(node, "the title contains a control character");
            return None;
        }
        Some(title)
    });
    Some(RepoKey::ProvisionedKey(ProvisionedKey {
        provider: provider?,
        api_url: api_url?,
        token_env: token_env?,
        read_only,
        title,
    }))
}

/// Checks a forge API URL: `https://host[:port][/path]`, or `http://` to a loopback
/// address (a local test forge).
fn decode_api_url(cx: &mut Cx, node: &Node) -> Option<String> {
    let text = cx.string(node)?;
    let invalid = |cx: &mut Cx, detail: &str| {
        cx.error(node, format!("invalid API URL: {detail}"));
    };
    let (https, rest) = if let Some(rest) = text.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = text.strip_prefix("http://") {
        (false, rest)
    } else {
        invalid(cx, "it must start with `https://`");
        return None;
    };
    if rest.contains(['?', '#']) || rest.chars().any(|c| c.is_control() || c.is_whitespace()) {
        invalid(
            cx,
            "it contains a query, fragment, whitespace or control character",
        );
        return None;
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        invalid(cx, "credentials do not belong in the URL; use `token_env`");
        return None;
    }
    let host = match split_host_port(authority) {
        Ok((host, _)) => host,
        Err(detail) => {
            invalid(cx, &detail);
            return None;
        }
    };
    let loopback = host == "localhost" || host.starts_with("127.") || host == "[::1]";
    if !https && !loopback {
        invalid(
            cx,
            "plain `http://` is allowed only for a loopback address; use `https://`",
        );
        return None;
    }
    Some(text.trim_end_matches('/').to_string())
}

fn decode_push(cx: &mut Cx, node: &Node) -> Option<PushPolicy> {
    let fields = cx.fields(node, &["branches", "force", "delete", "tags"])?;
    let branches = cx.optional(&fields, "branches", |cx, node| {
        let globs = cx.string_list(node)?;
        let mut valid = Vec::new();
        for (index, (glob, line)) in globs.into_iter().enumerate() {
            let bad = glob.is_empty()
                || glob.contains("..")
                || glob
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || "~^:?[\\".contains(c));
            if bad {
                cx.at_index(index, |cx| {
                    cx.error_at_line(
                        line,
                        format!("invalid branch pattern \"{}\"", glob.escape_default()),
                    )
                });
            } else {
                valid.push(glob);
            }
        }
        Some(valid)
    });
    let defaults = PushPolicy::default();
    Some(PushPolicy {
        branches: branches.unwrap_or(defaults.branches),
        force: cx.optional(&fields, "force", Cx::bool).unwrap_or(false),
        delete: cx.optional(&fields, "delete", Cx::bool).unwrap_or(false),
        tags: cx.optional(&fields, "tags", Cx::bool).unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIQzVK80EvAY6oH+ocpNWO8I9EQJ47Eotz7cRxpJRYXr";

    #[test]
    fn parse_git_url_forms() {
        let url = parse_git_url("ssh://git@Forge.example.org:2222/team/widgets.git").unwrap();
        assert_eq!(url.user.as_deref(), Some("git"));
        assert_eq!(url.host, "forge.example.org");
        assert_eq!(url.port, Some(2222));
        assert_eq!(url.path, "/team/widgets.git");
        assert_eq!(
            url.to_string(),
            "ssh://git@forge.example.org:2222/team/widgets.git"
        );

        let url = parse_git_url("ssh://example.org/repo").unwrap();
        assert_eq!((url.user, url.port), (None, None));

        let url = parse_git_url("git@github.com:team/widgets.git").unwrap();
        assert!(url.scp_like);
        assert_eq!(url.path, "team/widgets.git");
        assert_eq!(url.to_string(), "git@github.com:team/widgets.git");

        let url = parse_git_url("ssh://git@[::1]:22/r").unwrap();
        assert_eq!(url.host, "[::1]");
    }

    #[test]
    fn parse_git_url_rejects() {
        let cases = [
            (
                "https://example.org/r.git",
                "the git gate pushes over SSH only",
            ),
            ("example.org:r.git", "it names no user"),
            ("git@example.org", "it has no `:` before the path"),
            ("git@example.org:", "it has no path"),
            (
                "git@example.org:-oProxyCommand=x",
                "the path starts with `-`",
            ),
            ("-oProxy@example.org:r", "invalid user \"-oProxy\""),
            ("ssh://example.org", "it has no path"),
            ("ssh://example.org/", "it has no path"),
            ("ssh://git@example.org:0/r", "invalid port \"0\""),
            ("ssh://git@example.org:99999/r", "invalid port \"99999\""),
            (
                "ssh://git@exa mple.org/r",
                "it contains whitespace or a control character",
            ),
            (
                "ssh://a:b@example.org/r",
                "a password does not belong in the URL; use `identity` or `provisioned_key`",
            ),
        ];
        for (input, message) in cases {
            assert_eq!(
                parse_git_url(input),
                Err(message.to_string()),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn parse_host_key_checks_blob() {
        let key = parse_host_key(ED25519).unwrap();
        assert_eq!(key.key_type, "ssh-ed25519");
        assert!(parse_host_key(&format!("{ED25519} comment@host")).is_ok());
        assert_eq!(
            parse_host_key(
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIIQzVK80EvAY6oH+ocpNWO8I9EQJ47Eotz7cRxpJRYXr"
            ),
            Err("the base64 part is not a ssh-rsa key".into())
        );
        assert_eq!(
            parse_host_key("ssh-ed25519 not*base64"),
            Err("the base64 part is not valid base64".into())
        );
        assert_eq!(
            parse_host_key("ssh-ed25519"),
            Err("the key has no base64 part".into())
        );
        assert!(
            parse_host_key("ssh-dss AAAA")
                .unwrap_err()
                .starts_with("unknown key type")
        );
    }

    #[test]
    fn decode_base64_vectors() {
        assert_eq!(decode_base64("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(decode_base64("Zm9vYg==").unwrap(), b"foob");
        assert_eq!(decode_base64("Zm9vYmE=").unwrap(), b"fooba");
        assert_eq!(decode_base64("Zm=9"), None);
        assert_eq!(decode_base64("Zg==Zg=="), None);
        assert_eq!(decode_base64("Zm9"), None);
    }
}
