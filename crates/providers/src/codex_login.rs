//! The host's Codex login: read the ChatGPT access token for the sidecar, and write the
//! dummy login file the agent gets in its place.
//!
//! Codex keeps its login in `$CODEX_HOME/auth.json` (default `~/.codex/auth.json`): an
//! `OPENAI_API_KEY` field for API-key logins, or a `tokens` object with `id_token`,
//! `access_token`, `refresh_token` and `account_id` for ChatGPT logins, plus a
//! `last_refresh` time. Codex refreshes the tokens when the access token is near its
//! expiry, so the dummy file carries the real token's expiry and a fresh `last_refresh`.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::error::ProviderError;

/// Token ref of the forwarded ChatGPT access token; the codex routes inject it.
pub const CODEX_TOKEN_REF: &str = "BOTTLE_CODEX_ACCESS_TOKEN";

/// Claim namespace in which ChatGPT tokens carry the plan and account.
const AUTH_CLAIMS: &str = "https://api.openai.com/auth";

/// Signature part of every placeholder JWT: not a signature of anything, so no server
/// accepts the placeholder.
const PLACEHOLDER_SIGNATURE: &[u8] = b"bottle-placeholder-not-a-signature";

/// A ChatGPT login read from the host. `Debug` leaves the token out.
pub struct HostLogin {
    /// The ChatGPT access token, a JWT.
    pub access_token: String,
    /// Expiry of the access token, seconds since the Unix epoch (its `exp` claim).
    pub expires_at: u64,
    /// The ChatGPT account id, which Codex sends in the `chatgpt-account-id` header.
    pub account_id: Option<String>,
    /// The ChatGPT plan, from the ID token; Codex shows it and picks defaults by it.
    pub plan_type: Option<String>,
}

impl std::fmt::Debug for HostLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostLogin")
            .field("expires_at", &self.expires_at)
            .field("account_id", &self.account_id)
            .field("plan_type", &self.plan_type)
            .finish_non_exhaustive()
    }
}

/// Returns the path of the host's Codex login file: `$CODEX_HOME/auth.json`, else
/// `$HOME/.codex/auth.json`.
pub(crate) fn host_login_path(host_var: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(codex_home) = host_var("CODEX_HOME").filter(|value| !value.is_empty()) {
        return PathBuf::from(codex_home).join("auth.json");
    }
    let home = host_var("HOME").unwrap_or_default();
    PathBuf::from(home).join(".codex/auth.json")
}

/// Reads the ChatGPT login in `path` and checks that it can be forwarded: it must be a
/// ChatGPT login (not an API key) whose access token has not expired at `now`.
pub fn read_host_login(path: &Path, now: u64) -> Result<HostLogin, ProviderError> {
    let fail = |reason: &str| ProviderError::HostLogin {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail("the file does not exist"));
        }
        Err(err) => return Err(fail(&format!("the file cannot be read ({err})"))),
    };
    let auth: Value =
        serde_json::from_str(&text).map_err(|_| fail("the file is not valid JSON"))?;

    let tokens = auth.get("tokens").filter(|tokens| !tokens.is_null());
    let has_api_key = auth
        .get("OPENAI_API_KEY")
        .and_then(Value::as_str)
        .is_some_and(|key| !key.is_empty());
    let api_key_mode = auth.get("auth_mode").and_then(Value::as_str) == Some("apikey");
    let Some(tokens) = tokens.filter(|_| !api_key_mode) else {
        if has_api_key || api_key_mode {
            return Err(fail(
                "it is an API-key login, not a ChatGPT login; log in with ChatGPT, or give the \
                 key through agent_provider.auth_token instead",
            ));
        }
        return Err(fail("it holds no ChatGPT tokens"));
    };

    let access_token = tokens
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| fail("it holds no access token"))?;
    let claims = jwt_claims(access_token).ok_or_else(|| fail("its access token is not a JWT"))?;
    let expires_at = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or_else(|| fail("its access token has no expiry (exp)"))?;
    if expires_at <= now {
        return Err(fail("its access token has expired"));
    }

    let id_claims = tokens
        .get("id_token")
        .and_then(Value::as_str)
        .and_then(jwt_claims);
    let auth_claim = |name: &str| {
        id_claims
            .as_ref()
            .and_then(|claims| claims.get(AUTH_CLAIMS))
            .and_then(|claims| claims.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let account_id = tokens
        .get("account_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| auth_claim("chatgpt_account_id"));

    Ok(HostLogin {
        access_token: access_token.to_owned(),
        expires_at,
        account_id,
        plan_type: auth_claim("chatgpt_plan_type"),
    })
}

/// Decodes the claims (middle part) of a JWT without checking its signature.
fn jwt_claims(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.is_object().then_some(claims)
}

/// Header part of every placeholder JWT. It is not a JOSE header (base64url of a JSON
/// object, starting `eyJ`), so neither a JWT library nor the proxy's token scanner takes
/// the placeholder for a real token; Codex decodes only the claims part to read `exp`.
const PLACEHOLDER_HEADER: &str = "bottle-placeholder";

/// Builds a JWT-shaped placeholder with `claims` and a signature that verifies nowhere.
fn placeholder_jwt(claims: &Value) -> String {
    let header = PLACEHOLDER_HEADER;
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signature = URL_SAFE_NO_PAD.encode(PLACEHOLDER_SIGNATURE);
    format!("{header}.{payload}.{signature}")
}

/// Builds the dummy `auth.json` for the agent: a ChatGPT login whose tokens are
/// placeholders that expire with the real access token, and whose `last_refresh` is
/// `now`, so Codex starts without refreshing. It contains no real credential.
pub(crate) fn dummy_chatgpt_login(login: &HostLogin, now: u64) -> String {
    let mut auth_claims = serde_json::Map::new();
    if let Some(account) = &login.account_id {
        auth_claims.insert("chatgpt_account_id".to_owned(), json!(account));
    }
    if let Some(plan) = &login.plan_type {
        auth_claims.insert("chatgpt_plan_type".to_owned(), json!(plan));
    }
    let id_token = placeholder_jwt(&json!({
        "iss": "bottle-placeholder",
        "email": "agent@bottle.invalid",
        "exp": login.expires_at,
        "iat": now,
        AUTH_CLAIMS: auth_claims,
    }));
    let access_token = placeholder_jwt(&json!({
        "iss": "bottle-placeholder",
        "exp": login.expires_at,
        "iat": now,
    }));
    let auth = json!({
        "OPENAI_API_KEY": null,
        "tokens": {
            "id_token": id_token,
            "access_token": access_token,
            "refresh_token": "bottle-placeholder-refresh-token",
            "account_id": login.account_id,
        },
        "last_refresh": rfc3339(now),
    });
    serde_json::to_string_pretty(&auth).expect("a JSON value always serializes")
}

/// Builds the dummy `auth.json` of an API-key login whose key is a placeholder; the
/// proxy injects the real key from `agent_provider.auth_token`.
pub(crate) fn dummy_api_key_login() -> String {
    let auth = json!({ "OPENAI_API_KEY": "bottle-placeholder-openai-key" });
    serde_json::to_string_pretty(&auth).expect("a JSON value always serializes")
}

/// Returns the current time in seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or_default()
}

/// Formats seconds since the Unix epoch as an RFC 3339 UTC time.
fn rfc3339(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days` algorithm, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_780_000_000;
    const REAL_ACCESS: &str = "real-access-token-body";

    fn jwt(claims: &Value) -> String {
        // Stands in for a real token: a distinct signature the dummy must not copy.
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(REAL_ACCESS))
    }

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("auth.json");
        std::fs::write(&path, text).expect("write auth.json");
        path
    }

    fn chatgpt_login(exp: u64) -> String {
        json!({
            "OPENAI_API_KEY": null,
            "tokens": {
                "id_token": jwt(&json!({"email": "me@example.org", AUTH_CLAIMS: {"chatgpt_plan_type": "plus", "chatgpt_account_id": "acct-1"}})),
                "access_token": jwt(&json!({"exp": exp})),
                "refresh_token": "real-refresh-token",
                "account_id": "acct-1",
            },
            "last_refresh": "2026-01-01T00:00:00Z",
        })
        .to_string()
    }

    fn reason(err: ProviderError) -> String {
        let text = err.to_string();
        assert!(text.contains("run `codex login`"), "{text}");
        text
    }

    #[test]
    fn valid_login_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, &chatgpt_login(NOW + 3600));
        let login = read_host_login(&path, NOW).expect("valid login");
        assert_eq!(login.expires_at, NOW + 3600);
        assert_eq!(login.account_id.as_deref(), Some("acct-1"));
        assert_eq!(login.plan_type.as_deref(), Some("plus"));
        assert!(
            login
                .access_token
                .ends_with(&URL_SAFE_NO_PAD.encode(REAL_ACCESS))
        );
        assert!(!format!("{login:?}").contains(&login.access_token));
    }

    #[test]
    fn missing_login_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = read_host_login(&dir.path().join("auth.json"), NOW).expect_err("missing");
        assert!(reason(err).contains("does not exist"));
    }

    #[test]
    fn malformed_login_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (text, expected) in [
            ("{not json", "not valid JSON"),
            (r#"{"tokens": {"access_token": "opaque"}}"#, "not a JWT"),
            (r#"{"tokens": {"refresh_token": "r"}}"#, "no access token"),
            (r#"{"tokens": null}"#, "no ChatGPT tokens"),
        ] {
            let path = write(&dir, text);
            let err = read_host_login(&path, NOW).expect_err(text);
            assert!(reason(err).contains(expected), "{text}");
        }
        let no_exp = json!({"tokens": {"access_token": jwt(&json!({"sub": "x"}))}}).to_string();
        let err = read_host_login(&write(&dir, &no_exp), NOW).expect_err("no exp");
        assert!(reason(err).contains("no expiry"));
    }

    #[test]
    fn expired_login_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, &chatgpt_login(NOW - 1));
        let err = read_host_login(&path, NOW).expect_err("expired");
        assert!(reason(err).contains("has expired"));
        // Positive control: the same file is accepted a second before expiry.
        read_host_login(&path, NOW - 2).expect("not yet expired");
    }

    #[test]
    fn api_key_login_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        for text in [
            r#"{"OPENAI_API_KEY": "sk-test-key", "tokens": null}"#,
            &json!({"auth_mode": "apikey", "OPENAI_API_KEY": "sk-x", "tokens": {"access_token": jwt(&json!({"exp": NOW + 60}))}}).to_string(),
        ] {
            let err = read_host_login(&write(&dir, text), NOW).expect_err("api key");
            let text = reason(err);
            assert!(text.contains("API-key login"), "{text}");
            assert!(!text.contains("sk-"), "the message holds the key: {text}");
        }
    }

    #[test]
    fn dummy_login_matches_expiry_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let login = read_host_login(&write(&dir, &chatgpt_login(NOW + 3600)), NOW).expect("login");
        let dummy = dummy_chatgpt_login(&login, NOW);

        assert!(!dummy.contains(&login.access_token));
        assert!(!dummy.contains(&URL_SAFE_NO_PAD.encode(REAL_ACCESS)));
        assert!(!dummy.contains("real-refresh-token"));
        assert!(!dummy.contains("me@example.org"));

        let auth: Value = serde_json::from_str(&dummy).expect("dummy is JSON");
        let access = auth["tokens"]["access_token"]
            .as_str()
            .expect("access token");
        assert_eq!(jwt_claims(access).expect("JWT shape")["exp"], NOW + 3600);
        let signature = access.rsplit('.').next().expect("signature part");
        assert_eq!(signature, URL_SAFE_NO_PAD.encode(PLACEHOLDER_SIGNATURE));
        assert!(access.starts_with("bottle-placeholder."), "{access}");
        let id = auth["tokens"]["id_token"].as_str().expect("id token");
        assert_eq!(
            jwt_claims(id).expect("JWT shape")[AUTH_CLAIMS]["chatgpt_plan_type"],
            "plus"
        );
        assert_eq!(auth["tokens"]["account_id"], "acct-1");
        assert_eq!(auth["last_refresh"], "2026-05-28T20:26:40Z");
    }

    #[test]
    fn login_path_follows_codex_home() {
        let with_home = |name: &str| match name {
            "CODEX_HOME" => Some("/srv/codex".to_owned()),
            "HOME" => Some("/home/me".to_owned()),
            _ => None,
        };
        assert_eq!(
            host_login_path(&with_home),
            Path::new("/srv/codex/auth.json")
        );
        let without = |name: &str| (name == "HOME").then(|| "/home/me".to_owned());
        assert_eq!(
            host_login_path(&without),
            Path::new("/home/me/.codex/auth.json")
        );
    }
}
