//! The checks every request passes after the route allowed it and before it is forwarded:
//! header bytes, DNS over HTTPS, and the outbound DLP with the route's `block`, `redact`
//! or `supervise` action. The body is buffered (up to a cap), decoded and scanned; a body
//! that cannot be scanned is refused, never forwarded.

use bottle_policy::{CompiledRoute, OnMatch};
use bottle_queue::{RequestDigest, Summary};
use bottle_scanner::{Detector, Scanner};
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;

use bottle_policy::query_keys_only;

use crate::decode::{self, MAX_BODY};
use crate::dlp::{self, DlpFinding, Located, Location, RequestParts};
use crate::doh::{self, DNS_RULE};
use crate::history::{self, History};
use crate::hold::{Outcome, Supervisor};

/// Rule id prefix of DLP refusals: `dlp:<scanner rule>`, or `dlp` alone for bodies that
/// cannot be scanned.
pub(crate) const DLP_RULE: &str = "dlp";

/// A request that passed the checks, possibly rewritten by `redact`.
#[derive(Debug)]
pub(crate) struct Inspected {
    pub(crate) request: Request<Full<Bytes>>,
    pub(crate) findings: Vec<DlpFinding>,
    /// Queue item id when the operator approved the request.
    pub(crate) held: Option<String>,
}

/// The reason a request is rejected, with the findings that caused it (if any).
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) rule: String,
    pub(crate) reason: String,
    pub(crate) findings: Vec<DlpFinding>,
    /// Queue item id when the request was held for the operator.
    pub(crate) held: Option<String>,
}

impl Refusal {
    fn new(rule: &str, reason: impl Into<String>) -> Refusal {
        Refusal {
            rule: rule.to_owned(),
            reason: reason.into(),
            findings: Vec::new(),
            held: None,
        }
    }
}

/// Settings of the checks that do not come from the route.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checks<'a> {
    pub(crate) scanner: &'a Scanner,
    /// The known secret values the scanner was built with.
    pub(crate) known_secrets: &'a [String],
    /// The queue of requests held by `supervise` routes, and the values the operator approved.
    pub(crate) supervisor: &'a Supervisor,
    /// Recent field values per host, for secrets split across requests.
    pub(crate) history: &'a History,
}

/// Runs the checks on `request` for `route`. `host` is the normalized request host.
pub(crate) async fn inspect(
    checks: Checks<'_>,
    route: &CompiledRoute,
    host: &str,
    canonical_path: &str,
    request: Request<Incoming>,
) -> Result<Inspected, Refusal> {
    let (mut parts, body) = request.into_parts();
    check_header_bytes(&parts.headers)?;
    if let Some(reason) = doh::request_reason(canonical_path, &parts.headers) {
        return Err(Refusal::new(DNS_RULE, reason));
    }

    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(Refusal::new(
                DLP_RULE,
                format!(
                    "the request body exceeds {MAX_BODY} bytes; the proxy never forwards a \
                     body it has not scanned"
                ),
            ));
        }
        Err(_) => {
            return Err(Refusal::new(
                crate::server::PROTOCOL_RULE,
                "the request body is malformed or ended early, so it cannot be scanned",
            ));
        }
    };
    let decoded = decode::decode_body(&parts.headers, &body)
        .map_err(|err| Refusal::new(DLP_RULE, format!("{err}; the request is refused")))?;

    let detectors = dlp::detectors(&route.route.dlp.outbound_detectors);
    let headers: Vec<(HeaderName, HeaderValue)> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let scan_parts = RequestParts {
        host,
        path: path.as_bytes(),
        query: query.as_bytes(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect(),
        body: &decoded,
    };
    let mut found = dlp::scan_request(checks.scanner, &detectors, &scan_parts);
    if !detectors.is_empty() {
        let streams = decode::embedded_streams(&decoded)
            .map_err(|err| Refusal::new(DLP_RULE, format!("{err}; the request is refused")))?;
        for stream in &streams {
            let inner = RequestParts {
                host: "",
                path: b"",
                query: b"",
                headers: Vec::new(),
                body: stream,
            };
            found.extend(
                dlp::scan_request(checks.scanner, &detectors, &inner)
                    .into_iter()
                    .map(|located| Located {
                        finding: DlpFinding {
                            location: Location::CompressedInBody,
                            ..located.finding
                        },
                        part: None,
                        start: 0,
                        end: 0,
                    }),
            );
        }
    }
    if detectors.contains(&Detector::KnownSecrets) {
        found.extend(dlp::find_pieced(checks.known_secrets, &scan_parts));
        let fields = history::fields(&path, &query, &scan_parts.headers, &decoded);
        let across = checks.history.check(checks.scanner, host, &fields);
        found.extend(across.into_iter().map(|finding| Located {
            finding,
            part: None,
            start: 0,
            end: 0,
        }));
    }
    // Values the operator approved for this host pass again, and stay in the audit
    // record as findings of the forwarded request.
    let mut approved = Vec::new();
    if route.route.dlp.outbound_on_match == OnMatch::Supervise {
        let (earlier, unanswered): (Vec<Located>, Vec<Located>) =
            found.into_iter().partition(|located| {
                finding_value(&scan_parts, located)
                    .is_some_and(|value| checks.supervisor.is_approved(host, value))
            });
        approved = earlier.into_iter().map(|located| located.finding).collect();
        found = unanswered;
    }
    if found.is_empty() {
        return Ok(Inspected {
            request: Request::from_parts(parts, Full::new(body)),
            findings: approved,
            held: None,
        });
    }

    let findings: Vec<DlpFinding> = found.iter().map(|l| l.finding.clone()).collect();
    let summary = dlp::summary(&found);
    let rule = format!("{DLP_RULE}:{}", findings[0].rule);
    let refuse = |reason: String| Refusal {
        rule: rule.clone(),
        reason,
        findings: findings.clone(),
        held: None,
    };
    match route.route.dlp.outbound_on_match {
        OnMatch::Block => Err(refuse(format!(
            "request blocked: it carries {summary}; this route blocks such requests"
        ))),
        OnMatch::Supervise => {
            let locations: Vec<(String, String)> = findings
                .iter()
                .map(|f| (f.rule.clone(), f.location.to_string()))
                .collect();
            let audit_path = match parts.uri.query() {
                Some(query) => format!("{canonical_path}?{}", query_keys_only(query)),
                None => canonical_path.to_owned(),
            };
            // The secret may sit in the host or path, and the operator must not see it.
            let shown = Summary::new(
                parts.method.as_str(),
                &scrub(checks.scanner, host),
                &scrub(checks.scanner, &audit_path),
                &locations,
            );
            let target = match parts.uri.query() {
                Some(query) => format!("{canonical_path}?{query}"),
                None => canonical_path.to_owned(),
            };
            let digest = bottle_queue::request_digest(&RequestDigest {
                method: parts.method.as_str(),
                authority: host,
                path_and_query: &target,
                headers: &scan_parts.headers,
                body: &body,
            });
            let supervisor = checks.supervisor;
            match supervisor.hold(shown, &digest).await {
                Outcome::Approved { id } => {
                    supervisor.approve_values(
                        host,
                        found
                            .iter()
                            .filter_map(|located| finding_value(&scan_parts, located)),
                    );
                    let mut findings = findings;
                    findings.extend(approved);
                    Ok(Inspected {
                        request: Request::from_parts(parts, Full::new(body)),
                        findings,
                        held: Some(id),
                    })
                }
                Outcome::Denied { id, reason } => Err(Refusal {
                    held: Some(id.clone()),
                    ..refuse(format!(
                        "request held for operator approval because it carries {summary}; the \
                         operator denied it (item {id}): {reason}"
                    ))
                }),
                Outcome::TimedOut { id } => Err(Refusal {
                    held: Some(id.clone()),
                    ..refuse(format!(
                        "request held for operator approval because it carries {summary}; no \
                         operator approved it within {} s (item {id}), so it is denied",
                        supervisor.timeout().as_secs()
                    ))
                }),
                Outcome::QueueFull => Err(refuse(format!(
                    "request held for operator approval because it carries {summary}; too \
                     many requests already wait for the operator, so it is denied"
                ))),
                Outcome::Unqueued => Err(refuse(format!(
                    "request held for operator approval because it carries {summary}; the \
                     approval queue cannot be written, so it is denied"
                ))),
            }
        }
        OnMatch::Redact => {
            let unredactable = found.iter().find(|l| {
                matches!(
                    l.finding.location,
                    Location::Spanning
                        | Location::Host
                        | Location::CompressedInBody
                        | Location::AcrossRequests(_)
                )
            });
            if let Some(located) = unredactable {
                return Err(refuse(format!(
                    "request blocked: it carries {} in {}, which cannot be redacted",
                    located.finding.rule, located.finding.location
                )));
            }
            let body_part = 3 + headers.len();
            let new_path = dlp::redact_part(path.as_bytes(), 1, &found, true);
            let new_query = dlp::redact_part(query.as_bytes(), 2, &found, true);
            let mut target = String::from_utf8_lossy(&new_path).into_owned();
            if parts.uri.query().is_some() {
                target.push('?');
                target.push_str(&String::from_utf8_lossy(&new_query));
            }
            parts.uri = rebuild_uri(&parts.uri, &target)
                .ok_or_else(|| refuse("request blocked: the redacted URI is invalid".into()))?;

            let mut rebuilt = HeaderMap::with_capacity(headers.len());
            for (index, (name, value)) in headers.iter().enumerate() {
                let bytes = dlp::redact_part(value.as_bytes(), 3 + index, &found, false);
                let value = HeaderValue::from_bytes(&bytes)
                    .map_err(|_| refuse("request blocked: a redacted header is invalid".into()))?;
                rebuilt.append(name.clone(), value);
            }
            // The body goes out decoded (and redacted), so its encoding header goes.
            let body = Bytes::from(dlp::redact_part(&decoded, body_part, &found, false));
            rebuilt.remove(CONTENT_ENCODING);
            rebuilt.remove(CONTENT_LENGTH);
            parts.headers = rebuilt;
            Ok(Inspected {
                request: Request::from_parts(parts, Full::new(body)),
                findings,
                held: None,
            })
        }
    }
}

/// Returns `text` with every value the scanner finds replaced by a marker.
fn scrub(scanner: &Scanner, text: &str) -> String {
    let found = scanner.scan(text.as_bytes());
    if found.is_empty() {
        return text.to_owned();
    }
    String::from_utf8_lossy(&bottle_scanner::redact(text.as_bytes(), &found)).into_owned()
}

/// Returns the bytes a finding covers, or `None` when it spans parts or was found across
/// requests.
// TODO(supervise): values spanning parts or split across requests have no single span,
// so an approval of them is not remembered and each such request is held again.
fn finding_value<'a>(parts: &RequestParts<'a>, located: &Located) -> Option<&'a [u8]> {
    let part = located.part?;
    let header_count = parts.headers.len();
    let bytes: &'a [u8] = match part {
        0 => parts.host.as_bytes(),
        1 => parts.path,
        2 => parts.query,
        index if index < 3 + header_count => parts.headers[index - 3].1,
        index if index == 3 + header_count => parts.body,
        _ => return None,
    };
    bytes.get(located.start..located.end)
}

/// Refuses header values with CR, LF or NUL. hyper's parsers reject them already; this
/// keeps the guarantee if a parser ever lets one through, since such a value forwarded to
/// an HTTP/1.1 upstream would split the request.
fn check_header_bytes(headers: &HeaderMap) -> Result<(), Refusal> {
    for (name, value) in headers {
        if value
            .as_bytes()
            .iter()
            .any(|b| matches!(b, b'\r' | b'\n' | 0))
        {
            return Err(Refusal::new(
                crate::server::PROTOCOL_RULE,
                format!("header {name} contains CR, LF or NUL"),
            ));
        }
    }
    Ok(())
}

/// Replaces the path and query of `uri`, keeping its scheme and authority.
fn rebuild_uri(uri: &Uri, path_and_query: &str) -> Option<Uri> {
    let mut builder = Uri::builder();
    if let Some(scheme) = uri.scheme() {
        builder = builder.scheme(scheme.clone());
    }
    if let Some(authority) = uri.authority() {
        builder = builder.authority(authority.clone());
    }
    builder.path_and_query(path_and_query).build().ok()
}
