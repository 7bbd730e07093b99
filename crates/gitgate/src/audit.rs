//! The push audit log: one JSON line per push decision, appended to `git.jsonl` next to
//! the egress audit log, outside the bottle.
//!
//! A record names the repo, the ref updates, the decision, the reason and the findings by
//! place and rule. It never contains a matched value: ref names are redacted by the
//! scanner, and finding paths are already redacted when the scan builds them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use bottle_scanner::Scanner;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::GateError;
use crate::mirror::state_error;
use crate::policy::RefUpdate;
use crate::scan::PushFinding;

/// What happened to a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Decision {
    /// The upstream accepted the forwarded push.
    Forwarded,
    /// The gate rejected the push, or the upstream did.
    Rejected,
    /// The push waits in the queue for an operator's decision; a second record follows.
    Held,
}

/// How an operator's hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Answer {
    Approved,
    Denied,
    TimedOut,
}

/// One ref update as recorded.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RecordedRef {
    pub name: String,
    pub old: String,
    pub new: String,
}

/// One finding as recorded: place and rule, never the value.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RecordedFinding {
    pub commit: Option<String>,
    pub place: String,
    pub line: usize,
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed_by: Option<String>,
}

/// One line of `git.jsonl`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PushRecord {
    /// RFC 3339 time in UTC.
    pub time: String,
    pub slug: String,
    /// The declared repo, or `null` when the push could not be tied to one.
    pub repo: Option<String>,
    pub refs: Vec<RecordedRef>,
    pub decision: Decision,
    /// Why, for rejections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<RecordedFinding>,
    /// Id of the queue item, for held pushes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// How the hold ended, once it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
}

impl PushRecord {
    /// Starts a record stamped with the current time, with ref names redacted.
    pub fn new(
        scanner: &Scanner,
        slug: &str,
        repo: Option<&str>,
        updates: &[RefUpdate],
        decision: Decision,
    ) -> PushRecord {
        let time = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .expect("formatting the current UTC time as RFC 3339 cannot fail");
        let refs = updates
            .iter()
            .map(|update| {
                let name = update.name.as_bytes();
                let redacted = bottle_scanner::redact(name, &scanner.scan(name));
                RecordedRef {
                    name: String::from_utf8_lossy(&redacted).into_owned(),
                    old: update.old.clone(),
                    new: update.new.clone(),
                }
            })
            .collect();
        PushRecord {
            time,
            slug: slug.to_owned(),
            repo: repo.map(str::to_owned),
            refs,
            decision,
            reason: None,
            findings: Vec::new(),
            held: None,
            answer: None,
        }
    }

    pub fn findings(mut self, findings: &[PushFinding]) -> PushRecord {
        self.findings = findings
            .iter()
            .map(|finding| RecordedFinding {
                commit: finding.commit.clone(),
                place: finding.place_text(),
                line: finding.line,
                rule: finding.rule.clone(),
                suppressed_by: finding.suppressed_by.clone(),
            })
            .collect();
        self
    }

    pub fn reason(mut self, reason: &str) -> PushRecord {
        self.reason = Some(reason.to_owned());
        self
    }
}

/// The open audit file, shared by every push of the gate.
#[derive(Debug)]
pub(crate) struct AuditLog {
    file: Mutex<Option<File>>,
}

impl AuditLog {
    /// Opens `path` for appending (mode 0600), creating its directory.
    pub fn open(path: &Path) -> Result<AuditLog, GateError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| state_error(parent, source))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| state_error(path, source))?;
        Ok(AuditLog {
            file: Mutex::new(Some(file)),
        })
    }

    /// Appends one record as a line.
    pub fn write(&self, record: &PushRecord) {
        let mut line = serde_json::to_vec(record).expect("a push record serializes");
        line.push(b'\n');
        let mut file = self.file.lock().expect("audit log lock is never poisoned");
        if let Some(file) = file.as_mut()
            && let Err(error) = file.write_all(&line)
        {
            tracing::error!("cannot append to the push audit log: {error}");
        }
    }
}
