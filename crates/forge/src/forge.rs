//! The `Forge` trait and its Gitea, GitHub and GitLab implementations, each over the
//! forge's documented repository deploy-key endpoints.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use http::Method;
use serde::{Deserialize, Serialize};

use crate::error::ForgeError;
use crate::http::{ApiBase, Response, encode_segment, send};

/// A boxed future, so that `Forge` can be used as `dyn Forge`.
pub type ForgeFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ForgeError>> + Send + 'a>>;

/// Time allowed for one forge request, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The forge software behind `api_url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Gitea,
    Github,
    Gitlab,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::Gitea => "gitea",
            Provider::Github => "github",
            Provider::Gitlab => "gitlab",
        })
    }
}

/// A forge API token. `Debug` and `Display` never show the value.
#[derive(Clone)]
pub struct ForgeToken(String);

impl ForgeToken {
    pub fn new(value: impl Into<String>) -> ForgeToken {
        ForgeToken(value.into())
    }

    fn value(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ForgeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ForgeToken(<redacted>)")
    }
}

/// One deploy key as the forge lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteKey {
    pub id: u64,
    pub title: String,
    /// The public key, `<type> <base64>` with or without a comment.
    pub key: String,
}

/// A forge's repository deploy-key API. `repo` is the repository path, `owner/name`
/// (GitLab also accepts `group/subgroup/name`).
pub trait Forge: Send + Sync + fmt::Debug {
    /// Registers `public_key` as a deploy key of `repo` and returns the forge's key id.
    fn create_key<'a>(
        &'a self,
        repo: &'a str,
        title: &'a str,
        public_key: &'a str,
        read_only: bool,
    ) -> ForgeFuture<'a, u64>;

    /// Deletes deploy key `id` of `repo`. A key the forge does not know (HTTP 404) counts
    /// as deleted; any other failure is an error naming the repo and the HTTP status.
    fn delete_key<'a>(&'a self, repo: &'a str, id: u64) -> ForgeFuture<'a, ()>;

    /// Lists the deploy keys of `repo` (first page of up to 100 keys).
    fn list_keys<'a>(&'a self, repo: &'a str) -> ForgeFuture<'a, Vec<RemoteKey>>;
}

/// Returns the client for `provider` at `api_url`.
///
/// `api_url` is the forge's base URL: for Gitea and GitLab the web address
/// (`https://forge.example.org`, the client adds `/api/v1` or `/api/v4`), for GitHub the
/// REST API root (`https://api.github.com`, or `https://<host>/api/v3` for GitHub
/// Enterprise Server).
pub fn connect(
    provider: Provider,
    api_url: &str,
    token: ForgeToken,
) -> Result<Box<dyn Forge>, ForgeError> {
    let suffix = match provider {
        Provider::Gitea => "/api/v1",
        Provider::Github => "",
        Provider::Gitlab => "/api/v4",
    };
    let client = Client {
        provider,
        base: ApiBase::parse(api_url, suffix)?,
        token,
        timeout: REQUEST_TIMEOUT,
    };
    Ok(Box::new(client))
}

/// Checks a repository path: two or more non-empty segments of safe characters.
pub fn validate_repo(repo: &str) -> Result<(), ForgeError> {
    let segments: Vec<&str> = repo.split('/').collect();
    let valid = segments.len() >= 2
        && segments.iter().all(|segment| {
            !segment.is_empty()
                && *segment != "."
                && *segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    if valid {
        Ok(())
    } else {
        Err(ForgeError::Config(format!(
            "invalid repo path '{}': expected owner/name",
            repo.escape_debug()
        )))
    }
}

/// Returns the repository path (`owner/name`) of an SSH upstream URL, such as
/// `git@forge.example.org:team/widgets.git` or `ssh://git@forge.example.org:2222/team/widgets`.
pub fn repo_from_url(url: &str) -> Option<String> {
    let path = if let Some(rest) = url.strip_prefix("ssh://") {
        let slash = rest.find('/')?;
        &rest[slash + 1..]
    } else {
        url.split_once(':')?.1
    };
    let path = path.trim_start_matches('/').trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    validate_repo(path).ok().map(|()| path.to_owned())
}

#[derive(Debug)]
struct Client {
    provider: Provider,
    base: ApiBase,
    token: ForgeToken,
    timeout: Duration,
}

#[derive(Deserialize)]
struct CreatedKey {
    id: u64,
}

#[derive(Deserialize)]
struct ListedKey {
    id: u64,
    #[serde(default)]
    title: String,
    #[serde(default)]
    key: String,
}

impl Client {
    /// Returns the path of the repo's deploy-key collection below the API prefix.
    fn keys_path(&self, repo: &str) -> Result<String, ForgeError> {
        validate_repo(repo)?;
        let encoded: Vec<String> = repo.split('/').map(encode_segment).collect();
        Ok(match self.provider {
            Provider::Gitea | Provider::Github => format!("/repos/{}/keys", encoded.join("/")),
            Provider::Gitlab => format!("/projects/{}/deploy_keys", encode_segment(repo)),
        })
    }

    fn auth_header(&self) -> (&'static str, String) {
        match self.provider {
            Provider::Gitea => ("authorization", format!("token {}", self.token.value())),
            Provider::Github => ("authorization", format!("Bearer {}", self.token.value())),
            Provider::Gitlab => ("private-token", self.token.value().to_owned()),
        }
    }

    async fn call(
        &self,
        operation: &'static str,
        repo: &str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, ForgeError> {
        let (name, value) = self.auth_header();
        let mut headers = vec![(name, value.as_str())];
        if self.provider == Provider::Github {
            headers.push(("accept", "application/vnd.github+json"));
            headers.push(("x-github-api-version", "2022-11-28"));
        }
        send(&self.base, method, path, &headers, body, self.timeout)
            .await
            .map_err(|reason| ForgeError::Request {
                operation,
                repo: repo.to_owned(),
                reason: self.redact(&reason),
            })
    }

    fn status_error(&self, operation: &'static str, repo: &str, response: &Response) -> ForgeError {
        ForgeError::Status {
            operation,
            repo: repo.to_owned(),
            status: response.status,
            detail: self.redact(&error_detail(&response.body)),
        }
    }

    /// Removes the token from text that came from the forge or the network.
    fn redact(&self, text: &str) -> String {
        let token = self.token.value();
        if token.is_empty() {
            text.to_owned()
        } else {
            text.replace(token, "[REDACTED]")
        }
    }

    async fn create(
        &self,
        repo: &str,
        title: &str,
        public_key: &str,
        read_only: bool,
    ) -> Result<u64, ForgeError> {
        const OPERATION: &str = "registering a deploy key";
        let path = self.keys_path(repo)?;
        let body = match self.provider {
            Provider::Gitea | Provider::Github => serde_json::json!({
                "title": title, "key": public_key, "read_only": read_only,
            }),
            Provider::Gitlab => serde_json::json!({
                "title": title, "key": public_key, "can_push": !read_only,
            }),
        };
        let body = serde_json::to_vec(&body).expect("a JSON value serializes");
        let response = self
            .call(OPERATION, repo, Method::POST, &path, Some(body))
            .await?;
        if !(200..300).contains(&response.status) {
            return Err(self.status_error(OPERATION, repo, &response));
        }
        let created: CreatedKey = serde_json::from_slice(&response.body).map_err(|error| {
            ForgeError::InvalidResponse {
                operation: OPERATION,
                repo: repo.to_owned(),
                reason: format!("expected a JSON object with a numeric id: {error}"),
            }
        })?;
        tracing::info!(provider = %self.provider, repo, key_id = created.id, "deploy key registered");
        Ok(created.id)
    }

    async fn delete(&self, repo: &str, id: u64) -> Result<(), ForgeError> {
        const OPERATION: &str = "deleting a deploy key";
        let path = format!("{}/{id}", self.keys_path(repo)?);
        let response = self
            .call(OPERATION, repo, Method::DELETE, &path, None)
            .await?;
        match response.status {
            200..=299 => {
                tracing::info!(provider = %self.provider, repo, key_id = id, "deploy key deleted");
                Ok(())
            }
            404 => {
                tracing::info!(provider = %self.provider, repo, key_id = id, "deploy key was already gone");
                Ok(())
            }
            _ => Err(self.status_error(OPERATION, repo, &response)),
        }
    }

    async fn list(&self, repo: &str) -> Result<Vec<RemoteKey>, ForgeError> {
        const OPERATION: &str = "listing deploy keys";
        let path = match self.provider {
            Provider::Gitea => format!("{}?limit=100", self.keys_path(repo)?),
            Provider::Github | Provider::Gitlab => {
                format!("{}?per_page=100", self.keys_path(repo)?)
            }
        };
        let response = self.call(OPERATION, repo, Method::GET, &path, None).await?;
        if !(200..300).contains(&response.status) {
            return Err(self.status_error(OPERATION, repo, &response));
        }
        let listed: Vec<ListedKey> = serde_json::from_slice(&response.body).map_err(|error| {
            ForgeError::InvalidResponse {
                operation: OPERATION,
                repo: repo.to_owned(),
                reason: format!("expected a JSON array of keys: {error}"),
            }
        })?;
        Ok(listed
            .into_iter()
            .map(|key| RemoteKey {
                id: key.id,
                title: key.title,
                key: key.key,
            })
            .collect())
    }
}

impl Forge for Client {
    fn create_key<'a>(
        &'a self,
        repo: &'a str,
        title: &'a str,
        public_key: &'a str,
        read_only: bool,
    ) -> ForgeFuture<'a, u64> {
        Box::pin(self.create(repo, title, public_key, read_only))
    }

    fn delete_key<'a>(&'a self, repo: &'a str, id: u64) -> ForgeFuture<'a, ()> {
        Box::pin(self.delete(repo, id))
    }

    fn list_keys<'a>(&'a self, repo: &'a str) -> ForgeFuture<'a, Vec<RemoteKey>> {
        Box::pin(self.list(repo))
    }
}

/// Returns the forge's error message from a response body (`message` in Gitea, GitHub
/// and GitLab), or the start of the body, without control characters.
fn error_detail(body: &[u8]) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| match value.get("message") {
            Some(serde_json::Value::String(text)) => Some(text.clone()),
            Some(other) => Some(other.to_string()),
            None => None,
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let clean: String = message
        .chars()
        .map(|ch| if ch.is_control() { ' ' } else { ch })
        .take(200)
        .collect();
    if clean.trim().is_empty() {
        "no message".to_owned()
    } else {
        clean.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_paths() {
        assert_eq!(
            repo_from_url("git@forge.example.org:team/widgets.git").as_deref(),
            Some("team/widgets")
        );
        assert_eq!(
            repo_from_url("ssh://git@forge.example.org:2222/team/widgets").as_deref(),
            Some("team/widgets")
        );
        assert_eq!(
            repo_from_url("ssh://git@h.example.org/group/sub/proj.git").as_deref(),
            Some("group/sub/proj")
        );
        assert_eq!(repo_from_url("ssh://h.example.org/widgets.git"), None);
        assert_eq!(repo_from_url("git@h.example.org:../x/y"), None);
    }

    #[test]
    fn keys_paths_per_provider() {
        let token = ForgeToken::new("t");
        let client = |provider| Client {
            provider,
            base: ApiBase::parse("https://forge.example.org", "").expect("url"),
            token: token.clone(),
            timeout: REQUEST_TIMEOUT,
        };
        assert_eq!(
            client(Provider::Gitea)
                .keys_path("team/widgets")
                .expect("path"),
            "/repos/team/widgets/keys"
        );
        assert_eq!(
            client(Provider::Github)
                .keys_path("team/widgets")
                .expect("path"),
            "/repos/team/widgets/keys"
        );
        assert_eq!(
            client(Provider::Gitlab)
                .keys_path("group/sub/proj")
                .expect("path"),
            "/projects/group%2Fsub%2Fproj/deploy_keys"
        );
        assert!(client(Provider::Gitea).keys_path("../x").is_err());
    }

    #[test]
    fn token_is_redacted() {
        let token = ForgeToken::new("s3cr3t-token-value");
        assert!(!format!("{token:?}").contains("s3cr3t"));
        let forge = connect(Provider::Gitea, "https://forge.example.org", token).expect("connect");
        assert!(!format!("{forge:?}").contains("s3cr3t"));
    }

    #[test]
    fn error_detail_prefers_message() {
        assert_eq!(error_detail(br#"{"message":"key exists"}"#), "key exists");
        assert_eq!(error_detail(b"plain\x1b[31m text"), "plain [31m text");
        assert_eq!(error_detail(b""), "no message");
    }
}
