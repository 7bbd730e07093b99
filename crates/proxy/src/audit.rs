//! The audit log: one JSON line per decision, appended to a file the bottle cannot reach.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ProxyError;
use crate::dlp::DlpFinding;
use crate::inbound::InboundFinding;

/// The outcome recorded for a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Forwarded upstream.
    Allow,
    /// Refused by policy or by a protocol check.
    Deny,
    /// Allowed, but the upstream could not be reached.
    Error,
}

/// One audit record. It never contains a header value, a query value or a body.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// RFC 3339 time in UTC.
    pub time: String,
    /// Request method, or `CONNECT` for a tunnel decision.
    pub method: String,
    /// Normalized host, or `null` when the host itself was invalid.
    pub host: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// Canonical path with query keys only (`/search?q&page`), when there is a request.
    pub path: Option<String>,
    /// The verdict.
    pub decision: Verdict,
    /// Rule id that decided.
    pub rule: String,
    /// Why, for refusals and errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// HTTP status sent to the agent (0 when the connection was closed instead).
    pub status: u16,
    /// Response body bytes sent to the agent.
    pub bytes: u64,
    /// Outbound DLP findings: rule, detector, encoding and request part, never the value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<DlpFinding>,
    /// Prompt-injection findings in the response.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inbound: Vec<InboundFinding>,
    /// Id of the queue item when the request was held for an operator's decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

impl AuditRecord {
    /// Starts a record stamped with the current time.
    pub fn new(method: &str, decision: Verdict, rule: &str) -> AuditRecord {
        let time = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .expect("formatting the current UTC time as RFC 3339 cannot fail");
        AuditRecord {
            time,
            method: method.to_owned(),
            host: None,
            port: None,
            path: None,
            decision,
            rule: rule.to_owned(),
            reason: None,
            status: 0,
            bytes: 0,
            findings: Vec::new(),
            inbound: Vec::new(),
            held: None,
        }
    }
}

impl AuditRecord {
    /// Returns true when the record has DLP or prompt-injection findings.
    pub fn is_flagged(&self) -> bool {
        !self.findings.is_empty() || !self.inbound.is_empty()
    }

    /// Returns whether `egress.log` level `level` prints this record on standard error:
    /// 0 never (only the start-up line), 1 every refusal, error and finding, 2 every
    /// request. Printing is rate-limited; the audit file always gets every record.
    pub fn printed_at(&self, level: u8) -> bool {
        match self.decision {
            Verdict::Deny | Verdict::Error => level >= 1,
            Verdict::Allow => level >= 2 || (level >= 1 && self.is_flagged()),
        }
    }
}

/// An append-only JSON-lines file.
#[derive(Debug)]
pub struct AuditLog {
    file: Mutex<File>,
}

impl AuditLog {
    /// Opens (creating with mode 0600) the log at `path` for appending.
    pub fn open(path: &Path) -> Result<AuditLog, ProxyError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| ProxyError::AuditLog {
                path: path.to_owned(),
                source,
            })?;
        Ok(AuditLog {
            file: Mutex::new(file),
        })
    }

    /// Appends one record as one line.
    pub fn write(&self, record: &AuditRecord) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).expect("audit records always serialize");
        line.push(b'\n');
        let mut file = self.file.lock().expect("audit log lock is never poisoned");
        file.write_all(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlp::Location;

    #[test]
    fn log_levels_select_records() {
        let allowed = AuditRecord::new("GET", Verdict::Allow, "route[0]");
        let denied = AuditRecord::new("GET", Verdict::Deny, "default");
        let mut flagged = allowed.clone();
        flagged.findings.push(DlpFinding {
            rule: "known-secret".to_owned(),
            detector: "known_secrets".to_owned(),
            encoding: "raw".to_owned(),
            location: Location::Body,
        });
        let printed = |record: &AuditRecord| -> Vec<bool> {
            (0..=2).map(|level| record.printed_at(level)).collect()
        };
        assert_eq!(printed(&allowed), vec![false, false, true]);
        assert_eq!(printed(&denied), vec![false, true, true]);
        assert_eq!(printed(&flagged), vec![false, true, true]);
    }
}
