//! The files of the queue: held items and decisions.

use serde::{Deserialize, Serialize};

use crate::git_push::GitPush;
use crate::sanitize::sanitize;

/// The kind of request an item contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A request in which the outbound DLP found a secret, on a `supervise` route.
    Dlp,
    /// A git push held by the git gate.
    GitPush,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Dlp => "dlp",
            Kind::GitPush => "git-push",
        })
    }
}

/// One finding as the operator sees it: rule and location, never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingSummary {
    /// Rule id, such as `known-secret`.
    pub rule: String,
    /// The request part, such as `header authorization` or `body`.
    pub location: String,
}

/// What the operator is shown about a held request. Every field is sanitized of terminal
/// escapes when built with [`Summary::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Request method.
    pub method: String,
    /// Request host, with the port when it is not 443.
    pub host: String,
    /// Canonical path with query keys only (`/search?q&page`).
    pub path: String,
    /// The findings that caused the hold.
    pub findings: Vec<FindingSummary>,
}

impl Summary {
    /// Builds a summary, sanitizing every field. `path` must already carry query keys
    /// only, never values.
    pub fn new(method: &str, host: &str, path: &str, findings: &[(String, String)]) -> Summary {
        Summary {
            method: sanitize(method),
            host: sanitize(host),
            path: sanitize(path),
            findings: findings
                .iter()
                .map(|(rule, location)| FindingSummary {
                    rule: sanitize(rule),
                    location: sanitize(location),
                })
                .collect(),
        }
    }

    /// Returns a one-line description, such as `POST api.example.com/v1 (known-secret in
    /// body)`.
    pub fn line(&self) -> String {
        let findings: Vec<String> = self
            .findings
            .iter()
            .map(|f| format!("{} in {}", f.rule, f.location))
            .collect();
        format!(
            "{} {}{} ({})",
            self.method,
            self.host,
            self.path,
            findings.join(", ")
        )
    }
}

/// A held item, stored as `<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Random id, see [`crate::new_id`].
    pub id: String,
    /// The bottle's slug.
    pub slug: String,
    /// The kind of held request.
    pub kind: Kind,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: u64,
    /// When the hold times out and the request is denied, seconds since the Unix epoch.
    pub expires_unix: u64,
    /// The summary shown to the operator.
    pub summary: Summary,
    /// SHA-256 of the held request, see [`crate::request_digest`] and
    /// [`crate::GitPush::digest`].
    pub digest: String,
    /// The held push, for items of kind [`Kind::GitPush`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_push: Option<GitPush>,
}

/// The operator's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "verdict")]
pub enum Verdict {
    /// Forward the request.
    Approve,
    /// Refuse the request, telling the agent why.
    Deny {
        /// The operator's reason, sanitized.
        reason: String,
    },
}

impl Verdict {
    /// Builds a denial, sanitizing `reason`.
    pub fn deny(reason: &str) -> Verdict {
        Verdict::Deny {
            reason: sanitize(reason),
        }
    }
}

/// A decision, stored as `<id>.decision.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The item decided.
    pub id: String,
    /// The item's digest, so the decision applies to that exact request only.
    pub digest: String,
    /// The verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// Decision time, seconds since the Unix epoch.
    pub decided_unix: u64,
}
