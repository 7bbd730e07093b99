//! Outbound data-loss prevention: every part of a request (host, path, query, headers and
//! the decoded body) is scanned for the bottle's known secrets, token formats and private
//! keys before anything is forwarded.
//!
//! The parts are scanned as one buffer, joined by newlines, so a secret split across
//! adjacent parts (half in the path, half in a header) is still found by the scanner's
//! separator-split matching. A finding is then attributed to the part it falls in.

use bottle_policy::OutboundDetector;
use bottle_scanner::{Detector, Finding, Scanner};
use serde::Serialize;

/// Where in the request a finding sits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "part", content = "name")]
pub enum Location {
    /// The request host (a wildcard route lets the agent choose subdomain labels).
    Host,
    /// The path.
    Path,
    /// The query string.
    Query,
    /// A header, by name.
    Header(String),
    /// The decoded body.
    Body,
    /// Across two or more parts.
    Spanning,
    /// Compressed data inside the body, such as a gzip file uploaded without
    /// `Content-Encoding`.
    CompressedInBody,
    /// A WebSocket message from the agent.
    WebSocket,
    /// A field (`query <key>`, `path`, `header <name>`, `body`) of this request together
    /// with the same field of earlier requests to the host.
    AcrossRequests(String),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Host => f.write_str("host"),
            Location::Path => f.write_str("path"),
            Location::Query => f.write_str("query"),
            Location::Header(name) => write!(f, "header {name}"),
            Location::Body => f.write_str("body"),
            Location::Spanning => f.write_str("several parts"),
            Location::CompressedInBody => f.write_str("compressed data in the body"),
            Location::WebSocket => f.write_str("a WebSocket message"),
            Location::AcrossRequests(field) => write!(f, "{field} across requests"),
        }
    }
}

/// A finding as the audit log records it: rule, detector, encoding and location, never
/// the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DlpFinding {
    /// Rule id, such as `known-secret` or `github-pat`.
    pub rule: String,
    /// Detector name (`known_secrets`, `token_patterns`, `private_keys`).
    pub detector: String,
    /// Encoding the value was found in (`raw`, `base64`, ...).
    pub encoding: String,
    /// The request part.
    pub location: Location,
}

/// The request parts to scan. Each is scanned as bytes.
#[derive(Debug, Default)]
pub(crate) struct RequestParts<'a> {
    pub(crate) host: &'a str,
    pub(crate) path: &'a [u8],
    pub(crate) query: &'a [u8],
    pub(crate) headers: Vec<(&'a str, &'a [u8])>,
    pub(crate) body: &'a [u8],
}

/// A finding with its span relative to the start of its part.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub(crate) finding: DlpFinding,
    /// Index of the part in scan order (host, path, query, headers..., body), or `None`
    /// when it spans parts.
    pub(crate) part: Option<usize>,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Maps the route's detector names to the scanner's detectors.
pub(crate) fn detectors(route: &[OutboundDetector]) -> Vec<Detector> {
    route
        .iter()
        .map(|detector| match detector {
            OutboundDetector::KnownSecrets => Detector::KnownSecrets,
            OutboundDetector::TokenPatterns => Detector::TokenPatterns,
            OutboundDetector::PrivateKeys => Detector::PrivateKeys,
        })
        .collect()
}

/// Scans every part of the request and returns the findings with their locations.
pub(crate) fn scan_request(
    scanner: &Scanner,
    detectors: &[Detector],
    parts: &RequestParts<'_>,
) -> Vec<Located> {
    if detectors.is_empty() {
        return Vec::new();
    }
    let mut locations = vec![Location::Host, Location::Path, Location::Query];
    let mut pieces: Vec<&[u8]> = vec![parts.host.as_bytes(), parts.path, parts.query];
    for (name, value) in &parts.headers {
        locations.push(Location::Header((*name).to_owned()));
        pieces.push(value);
    }
    locations.push(Location::Body);
    pieces.push(parts.body);

    let mut joined = Vec::with_capacity(pieces.iter().map(|p| p.len() + 1).sum());
    let mut starts = Vec::with_capacity(pieces.len());
    for piece in &pieces {
        starts.push(joined.len());
        joined.extend_from_slice(piece);
        joined.push(b'\n');
    }

    scanner
        .scan_with(&joined, detectors)
        .into_iter()
        .map(|finding| locate(&finding, &starts, &pieces, &locations))
        .collect()
}

fn locate(finding: &Finding, starts: &[usize], pieces: &[&[u8]], names: &[Location]) -> Located {
    let index = starts
        .iter()
        .rposition(|start| *start <= finding.start)
        .expect("the first part starts at 0");
    let start = finding.start - starts[index];
    let end = finding.end - starts[index];
    let inside = end <= pieces[index].len();
    Located {
        finding: DlpFinding {
            rule: finding.rule.as_str().to_owned(),
            detector: finding.detector.as_str().to_owned(),
            encoding: finding.encoding.as_str().to_owned(),
            location: if inside {
                names[index].clone()
            } else {
                Location::Spanning
            },
        },
        part: inside.then_some(index),
        start,
        end,
    }
}

/// Finds known secrets assembled, in order, from whole field values of one request (path
/// segments, query values, header values, the body) with other values between the pieces,
/// as in `?a=prom&junk=1&b=pted-value`. The scanner's split matching allows only
/// separators between characters, so unrelated values hide such a secret from it. A value
/// found whole is left to the scanner; here a secret needs at least two pieces.
pub(crate) fn find_pieced(known_secrets: &[String], parts: &RequestParts<'_>) -> Vec<Located> {
    // A piece is shorter than the secret it belongs to, so longer values (most bodies)
    // are never copied.
    let longest = known_secrets.iter().map(String::len).max().unwrap_or(0);
    let mut values: Vec<Vec<u8>> = Vec::new();
    let mut keep = |value: Vec<u8>| {
        if !value.is_empty() && value.len() < longest {
            values.push(value);
        }
    };
    let path = String::from_utf8_lossy(parts.path);
    for segment in path.split('/') {
        keep(percent_decode(segment.as_bytes()));
    }
    let query = String::from_utf8_lossy(parts.query);
    for pair in query.split('&') {
        let value = pair.split_once('=').map_or("", |(_, value)| value);
        keep(percent_decode(value.as_bytes()));
    }
    for (_, value) in &parts.headers {
        if value.len() < longest {
            keep(value.to_vec());
        }
    }
    if parts.body.len() < longest {
        keep(parts.body.to_vec());
    }

    known_secrets
        .iter()
        .filter(|secret| secret.len() >= MIN_PIECED_SECRET && assembled(secret.as_bytes(), &values))
        .map(|_| Located {
            finding: DlpFinding {
                rule: "known-secret".to_owned(),
                detector: Detector::KnownSecrets.as_str().to_owned(),
                encoding: "separated".to_owned(),
                location: Location::Spanning,
            },
            part: None,
            start: 0,
            end: 0,
        })
        .collect()
}

/// Known secrets shorter than this are not searched for in pieces, as in the scanner.
const MIN_PIECED_SECRET: usize = 8;

/// Returns true when some of `values`, in order, concatenate to `secret` with at least two
/// of them. It tracks the fewest pieces that reach each prefix length of the secret, so a
/// decoy value that matches a wrong prefix cannot hide the right one.
fn assembled(secret: &[u8], values: &[Vec<u8>]) -> bool {
    let mut fewest: Vec<Option<usize>> = vec![None; secret.len() + 1];
    fewest[0] = Some(0);
    for value in values {
        let before = fewest.clone();
        for (start, pieces) in before.iter().enumerate() {
            let Some(pieces) = pieces else { continue };
            let end = start + value.len();
            if end <= secret.len() && secret[start..end] == value[..] {
                let slot = &mut fewest[end];
                *slot = Some(slot.map_or(pieces + 1, |current| current.min(pieces + 1)));
            }
        }
    }
    // The fewest pieces for the whole secret may be one; a second way with more pieces
    // is then not tracked, but the scanner already finds the whole value.
    fewest[secret.len()].is_some_and(|pieces| pieces >= 2)
}

/// Decodes percent-encoding, keeping invalid escapes as written.
fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    out
}

/// Returns one line naming the findings' rules and locations, for refusals and logs.
pub(crate) fn summary(findings: &[Located]) -> String {
    let mut items: Vec<String> = findings
        .iter()
        .map(|located| {
            format!(
                "{} ({}) in {}",
                located.finding.rule, located.finding.encoding, located.finding.location
            )
        })
        .collect();
    items.dedup();
    items.join(", ")
}

/// Replaces the spans of `findings` that lie in part `part` of `bytes` with
/// `[REDACTED:<rule>]`, percent-encoded when `escape` is set (for the path and query).
pub(crate) fn redact_part(
    bytes: &[u8],
    part: usize,
    findings: &[Located],
    escape: bool,
) -> Vec<u8> {
    let mut spans: Vec<(usize, usize, &str)> = findings
        .iter()
        .filter(|located| located.part == Some(part))
        .map(|located| (located.start, located.end, located.finding.rule.as_str()))
        .collect();
    spans.sort_unstable();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    for (start, end, rule) in spans {
        if start < at {
            // Overlapping spans: the earlier replacement already covers this one's start.
            at = at.max(end);
            continue;
        }
        out.extend_from_slice(&bytes[at..start]);
        let marker = if escape {
            format!("%5BREDACTED%3A{rule}%5D")
        } else {
            format!("[REDACTED:{rule}]")
        };
        out.extend_from_slice(marker.as_bytes());
        at = end;
    }
    out.extend_from_slice(&bytes[at.min(bytes.len())..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "known-secret-value-8d2f1a";

    #[test]
    fn attributes_findings_to_parts() {
        let scanner = Scanner::new(&[SECRET]);
        let header = format!("x {SECRET}");
        let parts = RequestParts {
            host: "api.example.org",
            path: b"/upload",
            query: b"a=1",
            headers: vec![("x-trace", header.as_bytes())],
            body: b"nothing here",
        };
        let found = scan_request(&scanner, &detectors(&OutboundDetector::ALL), &parts);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].finding.location,
            Location::Header("x-trace".to_owned())
        );
        let redacted = redact_part(header.as_bytes(), 3, &found, false);
        assert_eq!(redacted, b"x [REDACTED:known-secret]");

        // Positive control for the detector switch: no detectors, no findings.
        assert!(scan_request(&scanner, &[], &parts).is_empty());
    }

    #[test]
    fn pieced_secret_found_despite_junk() {
        let known = vec![SECRET.to_owned()];
        let (head, tail) = SECRET.split_at(10);
        let (middle, tail) = tail.split_at(5);
        let query = format!("a={head}&junk=1&b={middle}&c=kno&d={tail}");
        let parts = RequestParts {
            host: "api.example.org",
            path: b"/x",
            query: query.as_bytes(),
            headers: vec![("x-trace", b"unrelated")],
            body: b"",
        };
        let found = find_pieced(&known, &parts);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].finding.location, Location::Spanning);

        // Positive control: the same pieces out of order do not spell the secret.
        let query = format!("a={tail}&b={middle}&c={head}");
        let parts = RequestParts {
            query: query.as_bytes(),
            ..parts
        };
        assert!(find_pieced(&known, &parts).is_empty());
    }

    #[test]
    fn finds_a_secret_split_between_path_and_query() {
        let scanner = Scanner::new(&[SECRET]);
        let (head, tail) = SECRET.split_at(12);
        let path = format!("/x/{head}");
        let parts = RequestParts {
            host: "api.example.org",
            path: path.as_bytes(),
            query: tail.as_bytes(),
            ..RequestParts::default()
        };
        let found = scan_request(&scanner, &detectors(&OutboundDetector::ALL), &parts);
        assert!(
            found
                .iter()
                .any(|l| l.finding.location == Location::Spanning),
            "{found:?}"
        );
    }
}
