//! Detection of a known secret split across several requests to the same host, such as
//! one piece per request in the same query parameter.
//!
//! For each host, the proxy keeps the tail of the recent values of each request field
//! (each query parameter, the last path segment, each header, the body), joined by
//! newlines. A new value is scanned together with that tail, and a known secret that
//! starts in the tail and ends in the new value is a finding. Only the known-secrets
//! detector runs here, because token formats assembled from unrelated values would be
//! false alarms.
//!
//! Limits: pieces must arrive in order in the same field, without other text between
//! them (the scanner's split matching allows only separators between characters), and
//! only the last [`TAIL`] bytes of a field's history are kept.

use std::collections::HashMap;
use std::sync::Mutex;

use bottle_scanner::{Detector, Scanner};

use crate::dlp::{DlpFinding, Location};

/// Bytes of history kept per host and field, and bytes of a new value scanned with it.
const TAIL: usize = 4096;

/// Fields tracked in total; the history is cleared when an agent invents more.
const MAX_FIELDS: usize = 4096;

/// Recent field values by host and field name.
#[derive(Debug, Default)]
pub(crate) struct History {
    fields: Mutex<HashMap<(String, String), Vec<u8>>>,
}

impl History {
    /// Scans each `(field, value)` of a request to `host` against the history of that
    /// field, records the values, and returns the findings that span requests.
    pub(crate) fn check(
        &self,
        scanner: &Scanner,
        host: &str,
        values: &[(String, &[u8])],
    ) -> Vec<DlpFinding> {
        let mut fields = self.fields.lock().expect("history lock is never poisoned");
        if fields.len() > MAX_FIELDS {
            fields.clear();
        }
        let mut findings = Vec::new();
        for (field, value) in values {
            if value.is_empty() {
                continue;
            }
            let head = &value[..value.len().min(TAIL)];
            let key = (host.to_owned(), field.clone());
            let previous = fields.entry(key).or_default();
            if !previous.is_empty() {
                let mut joined = previous.clone();
                joined.push(b'\n');
                let boundary = joined.len();
                joined.extend_from_slice(head);
                let spanning = scanner
                    .scan_with(&joined, &[Detector::KnownSecrets])
                    .into_iter()
                    .filter(|finding| finding.start < boundary && finding.end > boundary);
                for finding in spanning {
                    findings.push(DlpFinding {
                        rule: finding.rule.as_str().to_owned(),
                        detector: finding.detector.as_str().to_owned(),
                        encoding: finding.encoding.as_str().to_owned(),
                        location: Location::AcrossRequests(field.clone()),
                    });
                }
                previous.push(b'\n');
            }
            let tail_start = value.len().saturating_sub(TAIL);
            previous.extend_from_slice(&value[tail_start..]);
            let excess = previous.len().saturating_sub(TAIL);
            previous.drain(..excess);
        }
        findings
    }
}

/// Splits a request into the fields whose history is kept: each query parameter's value,
/// the last path segment, each header and the body.
pub(crate) fn fields<'a>(
    path: &'a str,
    query: &'a str,
    headers: &[(&'a str, &'a [u8])],
    body: &'a [u8],
) -> Vec<(String, &'a [u8])> {
    let mut out = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((format!("query {key}"), value.as_bytes()));
    }
    if let Some(segment) = path.rsplit('/').next() {
        out.push(("path".to_owned(), segment.as_bytes()));
    }
    for (name, value) in headers {
        out.push((format!("header {name}"), *value));
    }
    out.push(("body".to_owned(), body));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "split-secret-4f7a9b2c";

    #[test]
    fn pieces_in_one_parameter_are_joined() {
        let scanner = Scanner::new(&[SECRET]);
        let history = History::default();
        let pieces = ["split", "-secr", "et-4f", "7a9b2c"];
        let mut found = Vec::new();
        for piece in pieces {
            let query = format!("c={piece}");
            let values = fields("/x", &query, &[], b"");
            found = history.check(&scanner, "api.example.org", &values);
        }
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].location,
            Location::AcrossRequests("query c".into())
        );

        // Positive control: the same pieces to another host or parameter are unrelated.
        let other = History::default();
        for (index, piece) in pieces.iter().enumerate() {
            let query = format!("c{index}={piece}");
            let values = fields("/x", &query, &[], b"");
            assert!(other.check(&scanner, "api.example.org", &values).is_empty());
        }
    }
}
