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

/// Maximum length of a value whose scan result is remembered for a repeat of it.
const REMEMBERED_VALUE: usize = 512;

/// The history of one field of one host.
#[derive(Debug, Default)]
struct FieldHistory {
    /// The last [`TAIL`] bytes of the field's values, joined by newlines.
    tail: Vec<u8>,
    /// The value scanned with the tail by the last check (when short), and the findings
    /// of that scan. If the tail has not changed since, a repeat of that value gives the
    /// same bytes to scan, so the scan is not run again.
    last: Option<(Vec<u8>, Vec<DlpFinding>)>,
    /// Whether the last update left the tail as it was.
    stable: bool,
}

impl FieldHistory {
    /// Appends `piece` (the end of a value) to the tail, keeping its last [`TAIL`] bytes.
    fn push(&mut self, piece: &[u8]) {
        let newline = usize::from(!self.tail.is_empty());
        let added = newline + piece.len();
        let len = self.tail.len();
        // A full tail stays the same when it is periodic with the added length and ends
        // with the added bytes. A stream of one repeated value reaches that state.
        self.stable = len == TAIL
            && added <= len
            && self.tail[len - added + newline..] == *piece
            && (newline == 0 || self.tail[len - added] == b'\n')
            && self.tail[added..] == self.tail[..len - added];
        if self.stable {
            return;
        }
        if newline == 1 {
            self.tail.push(b'\n');
        }
        self.tail.extend_from_slice(piece);
        let excess = self.tail.len().saturating_sub(TAIL);
        self.tail.drain(..excess);
    }
}

/// Field histories by host, then by field name, and how many fields they have in all.
type Hosts = (HashMap<String, HashMap<String, FieldHistory>>, usize);

/// Recent field values by host and field name.
#[derive(Debug)]
pub(crate) struct History {
    hosts: Mutex<Hosts>,
    /// Whether scan results are remembered for repeated values; off only in tests that
    /// compare against the plain algorithm.
    remember: bool,
}

impl Default for History {
    fn default() -> History {
        History {
            hosts: Mutex::default(),
            remember: true,
        }
    }
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
        let mut guard = self.hosts.lock().expect("history lock is never poisoned");
        let (hosts, count) = &mut *guard;
        if *count > MAX_FIELDS {
            hosts.clear();
            *count = 0;
        }
        if !hosts.contains_key(host) {
            hosts.insert(host.to_owned(), HashMap::new());
        }
        let fields = hosts.get_mut(host).expect("inserted above");
        let mut findings = Vec::new();
        let mut joined = Vec::new();
        for (field, value) in values {
            if value.is_empty() {
                continue;
            }
            let head = &value[..value.len().min(TAIL)];
            if !fields.contains_key(field) {
                fields.insert(field.clone(), FieldHistory::default());
                *count += 1;
            }
            let history = fields.get_mut(field).expect("inserted above");
            if history.tail.is_empty() {
                history.last = None;
            } else {
                let repeat = match &history.last {
                    Some((last, found)) if history.stable && last.as_slice() == head => {
                        Some(found.clone())
                    }
                    _ => None,
                };
                let found = match repeat {
                    Some(found) => found,
                    None => {
                        joined.clear();
                        joined.extend_from_slice(&history.tail);
                        joined.push(b'\n');
                        let boundary = joined.len();
                        joined.extend_from_slice(head);
                        let found: Vec<DlpFinding> = scanner
                            .scan_with(&joined, &[Detector::KnownSecrets])
                            .into_iter()
                            .filter(|finding| finding.start < boundary && finding.end > boundary)
                            .map(|finding| DlpFinding {
                                rule: finding.rule.as_str().to_owned(),
                                detector: finding.detector.as_str().to_owned(),
                                encoding: finding.encoding.as_str().to_owned(),
                                location: Location::AcrossRequests(field.clone()),
                            })
                            .collect();
                        history.last = (self.remember && head.len() <= REMEMBERED_VALUE)
                            .then(|| (head.to_vec(), found.clone()));
                        found
                    }
                };
                findings.extend(found);
            }
            let tail_start = value.len().saturating_sub(TAIL);
            history.push(&value[tail_start..]);
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
    use proptest::prelude::*;

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

    /// Returns a history that scans every time, as the plain algorithm does.
    fn forgetful() -> History {
        History {
            remember: false,
            ..History::default()
        }
    }

    #[test]
    fn tail_turns_stable_on_repeats() {
        let mut field = FieldHistory::default();
        for _ in 0..2000 {
            field.push(b"*/*");
        }
        assert!(field.stable);
        assert_eq!(field.tail.len(), TAIL);
        field.push(b"text/html");
        assert!(!field.stable);
        assert!(field.tail.ends_with(b"\n*/*\ntext/html"));
    }

    #[test]
    fn repeat_after_change_is_rescanned() {
        let scanner = Scanner::new(&[SECRET]);
        let history = History::default();
        let mut found = Vec::new();
        for piece in ["split", "-secr", "et-4f", "7a9b2c", "7a9b2c"] {
            let values = vec![("header x".to_owned(), piece.as_bytes())];
            found.push(history.check(&scanner, "api.example.org", &values).len());
        }
        // The fourth piece completes the secret; its repeat follows a tail that now ends
        // with the whole secret, so it completes nothing.
        assert_eq!(found, vec![0, 0, 0, 1, 0]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Remembering scan results changes nothing: the findings are those of scanning
        /// every time, also once the tail is full and stable.
        #[test]
        fn remembering_finds_what_scanning_every_time_finds(
            picks in proptest::collection::vec(0usize..12, 1..150),
        ) {
            let filler = "filler-".repeat(70);
            let values: [&[u8]; 5] = [
                b"split",
                b"-secr",
                b"et-4f",
                b"7a9b2c",
                filler.as_bytes(),
            ];
            let scanner = Scanner::new(&[SECRET]);
            let (remembering, plain) = (History::default(), forgetful());
            for pick in picks {
                // Half of the picks are the filler, so the tail often fills up and turns stable.
                let value = values[pick.min(4)];
                let fields = vec![("header x".to_owned(), value)];
                let found = remembering.check(&scanner, "api.example.org", &fields);
                let expected = plain.check(&scanner, "api.example.org", &fields);
                prop_assert_eq!(found, expected);
            }
        }
    }
}
