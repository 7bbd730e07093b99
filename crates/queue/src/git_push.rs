//! The typed contents of a held git push: the repo, the ref updates with their tips, and
//! the findings by place, never the matched value.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::item::Summary;
use crate::sanitize::sanitize;

/// Maximum number of findings kept in one item; the rest are counted in
/// [`GitPush::more_findings`].
const MAX_FINDINGS: usize = 50;

/// One ref update of a held push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitRefUpdate {
    /// Full ref name, such as `refs/heads/main`.
    pub name: String,
    /// The ref's value before the push (40 or 64 zeros for a new ref).
    pub old: String,
    /// The pushed tip (zeros for a deletion).
    pub new: String,
}

/// One finding of the gate's scan, by place: commit, path and line, and the rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitFinding {
    /// The commit (or tag object) that brought the secret in, when known.
    pub commit: Option<String>,
    /// Place in the commit: `file <path>`, `file name <path>`, `commit message or author`
    /// or `tag message or tagger`.
    pub place: String,
    /// Line number, 1-based, in the file or message.
    pub line: usize,
    /// Rule id, such as `github-pat`.
    pub rule: String,
    /// The suppression marker on the finding's line, such as `gitleaks:allow`, or the
    /// ignore file of the push that covers it, such as `.gitleaksignore`.
    pub suppressed_by: String,
}

/// A push held by the git gate because suppression markers cover its findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitPush {
    /// The declared repo's name in the bottle.
    pub repo: String,
    /// The ref updates, each with the tip that was scanned.
    pub refs: Vec<GitRefUpdate>,
    /// The findings, at most 50.
    pub findings: Vec<GitFinding>,
    /// Findings not listed because of the cap.
    #[serde(default)]
    pub more_findings: usize,
}

impl GitPush {
    /// Builds a held push, sanitizing every text field for terminal display and keeping
    /// at most 50 findings.
    pub fn new(repo: &str, refs: &[GitRefUpdate], findings: &[GitFinding]) -> GitPush {
        let kept = findings.len().min(MAX_FINDINGS);
        GitPush {
            repo: sanitize(repo),
            refs: refs
                .iter()
                .map(|update| GitRefUpdate {
                    name: sanitize(&update.name),
                    old: sanitize(&update.old),
                    new: sanitize(&update.new),
                })
                .collect(),
            findings: findings[..kept]
                .iter()
                .map(|finding| GitFinding {
                    commit: finding.commit.as_deref().map(sanitize),
                    place: sanitize(&finding.place),
                    line: finding.line,
                    rule: sanitize(&finding.rule),
                    suppressed_by: sanitize(&finding.suppressed_by),
                })
                .collect(),
            more_findings: findings.len() - kept,
        }
    }

    /// Returns the SHA-256 digest that binds a decision to this push: the repo and every
    /// ref update with its old and new object id, length-prefixed.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        };
        field(b"git-push");
        field(self.repo.as_bytes());
        for update in &self.refs {
            field(update.name.as_bytes());
            field(update.old.as_bytes());
            field(update.new.as_bytes());
        }
        hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// Returns the summary shown in one line by `bottle supervise --list`: `push` to the
    /// repo, the refs with their short tips, and each finding as rule and place.
    pub fn summary(&self) -> Summary {
        let refs: Vec<String> = self
            .refs
            .iter()
            .map(|update| format!("{}@{}", update.name, short(&update.new)))
            .collect();
        let mut findings: Vec<(String, String)> = self
            .findings
            .iter()
            .map(|finding| {
                (
                    finding.rule.clone(),
                    format!(
                        "{} line {} ({})",
                        finding.place, finding.line, finding.suppressed_by
                    ),
                )
            })
            .collect();
        if self.more_findings > 0 {
            findings.push((
                format!("{} more", self.more_findings),
                "this push".to_owned(),
            ));
        }
        Summary::new(
            "push",
            &self.repo,
            &format!(" {}", refs.join(" ")),
            &findings,
        )
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(new: &str) -> GitPush {
        GitPush::new(
            "widgets",
            &[GitRefUpdate {
                name: "refs/heads/main".into(),
                old: "a".repeat(40),
                new: new.into(),
            }],
            &[GitFinding {
                commit: Some("c".repeat(40)),
                place: "file config/\u{1b}[2J.env".into(),
                line: 2,
                rule: "github-pat".into(),
                suppressed_by: "gitleaks:allow".into(),
            }],
        )
    }

    #[test]
    fn digest_binds_the_tips() {
        let first = push(&"b".repeat(40));
        assert_eq!(first.digest(), push(&"b".repeat(40)).digest());
        assert_ne!(first.digest(), push(&"d".repeat(40)).digest());
        let mut other_repo = first.clone();
        other_repo.repo = "gadgets".into();
        assert_ne!(first.digest(), other_repo.digest());
    }

    #[test]
    fn summary_is_sanitized_and_names_findings() {
        let line = push(&"b".repeat(40)).summary().line();
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(
            line.starts_with("push widgets refs/heads/main@bbbbbbbbbbbb"),
            "{line}"
        );
        assert!(
            line.contains("github-pat in file config/?[2J.env line 2 (gitleaks:allow)"),
            "{line}"
        );
    }

    #[test]
    fn findings_are_capped() {
        let finding = GitFinding {
            commit: None,
            place: "file a".into(),
            line: 1,
            rule: "r".into(),
            suppressed_by: "nosec".into(),
        };
        let many = vec![finding; MAX_FINDINGS + 3];
        let held = GitPush::new("w", &[], &many);
        assert_eq!(held.findings.len(), MAX_FINDINGS);
        assert_eq!(held.more_findings, 3);
    }
}
