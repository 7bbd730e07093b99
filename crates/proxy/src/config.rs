//! The sidecar configuration, sent by the launcher on the sidecar's standard input.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use bottle_policy::Route;
use serde::{Deserialize, Serialize};

/// Everything the sidecar's proxy needs. It contains secrets (token values and the CA
/// key), so its `Debug` output redacts them and it must never be logged or written where
/// the bottle can read it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarConfig {
    /// The bottle's slug, for log lines.
    pub slug: String,
    /// Egress routes, in the order the resolved plan lists them.
    pub routes: Vec<Route>,
    /// Token values by token ref.
    #[serde(default)]
    pub tokens: BTreeMap<String, String>,
    /// The bottle CA certificate, PEM.
    pub ca_cert_pem: String,
    /// The bottle CA private key, PEM.
    pub ca_key_pem: String,
    /// The JSON-lines audit log, appended to.
    pub audit_log: PathBuf,
    /// Level of standard-error logging: 0 the start-up line only, 1 also every block, 2 also
    /// every request. The audit log is always complete.
    #[serde(default = "default_log_level")]
    pub log_level: u8,
    /// Secret values the outbound DLP looks for besides the token values (which are always
    /// included): every `env` value copied from the host or prompted at launch, and the
    /// material of the bottle's keys.
    #[serde(default)]
    pub known_secrets: Vec<String>,
    /// Seconds a request held by a `supervise` route waits for an operator before it is
    /// denied.
    #[serde(default = "default_hold_timeout")]
    pub hold_timeout_secs: u64,
}

fn default_log_level() -> u8 {
    1
}

fn default_hold_timeout() -> u64 {
    30
}

impl SidecarConfig {
    /// Checks everything the proxy checks at start-up except the audit log: the routes,
    /// the token of every `auth` route, the CA certificate and key, the known secrets and
    /// every `upstream_ca` file. The launcher calls it before starting the bottle, so a bad
    /// policy stops the launch early.
    pub fn validate(&self) -> Result<(), crate::ProxyError> {
        let (policy, _) = crate::server::prepare_routes(self)?;
        crate::CertificateAuthority::from_pem(&self.ca_cert_pem, &self.ca_key_pem)?;
        bottle_scanner::Scanner::try_new(&self.known_secret_values())?;
        for route in policy.routes() {
            crate::upstream::route_tls_config(route, &[])?;
        }
        Ok(())
    }
}

impl SidecarConfig {
    /// Returns every value the outbound DLP looks for: the token values and
    /// `known_secrets`.
    pub(crate) fn known_secret_values(&self) -> Vec<&str> {
        let tokens = self.tokens.values().map(String::as_str);
        tokens
            .chain(self.known_secrets.iter().map(String::as_str))
            .collect()
    }
}

/// Stand-in for a secret in `Debug` output.
const REDACTED: &str = "<redacted>";

impl fmt::Debug for SidecarConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tokens: BTreeMap<&str, &str> = self
            .tokens
            .keys()
            .map(|key| (key.as_str(), REDACTED))
            .collect();
        f.debug_struct("SidecarConfig")
            .field("slug", &self.slug)
            .field("routes", &self.routes)
            .field("tokens", &tokens)
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("ca_key_pem", &REDACTED)
            .field("audit_log", &self.audit_log)
            .field("log_level", &self.log_level)
            .field("known_secrets", &self.known_secrets.len())
            .field("hold_timeout_secs", &self.hold_timeout_secs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let config = SidecarConfig {
            slug: "demo-abcde".into(),
            routes: Vec::new(),
            tokens: BTreeMap::from([("API_TOKEN".to_owned(), "s3cr3t-value".to_owned())]),
            ca_cert_pem: "CERT".into(),
            ca_key_pem: "-----BEGIN PRIVATE KEY-----".into(),
            audit_log: "/tmp/egress.jsonl".into(),
            log_level: 1,
            known_secrets: vec!["prompted-value-x9".to_owned()],
            hold_timeout_secs: 30,
        };
        let text = format!("{config:?}");
        assert!(text.contains("API_TOKEN"), "{text}");
        assert!(!text.contains("s3cr3t-value"), "{text}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(!text.contains("prompted-value"), "{text}");
    }
}
