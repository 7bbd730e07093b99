//! Egress routes: the hosts, ports, paths and methods a bottle may reach.

use std::path::PathBuf;

use serde::Serialize;

use crate::decode::{Cx, backticked};
use crate::host::{HostPattern, normalize_host};
use crate::paths::resolve_path;
use crate::yaml::{Node, Value};

/// The largest compiled size of a path regex, in bytes, so a hostile pattern cannot
/// make the proxy's matcher huge.
const MAX_REGEX_SIZE: usize = 1 << 20;

/// One allowed destination. Converted by the launcher into the proxy's route type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// The host, normalized; or a `*.suffix` pattern that matches subdomains only.
    pub host: HostPattern,
    /// The port; 443 by default. Port 80 allows plain HTTP and never carries a token.
    pub port: u16,
    /// The token injected on this route, if any.
    pub auth: Option<RouteAuth>,
    /// Request filters; a request must satisfy at least one. Empty allows every
    /// path and method.
    pub matches: Vec<RouteMatch>,
    /// The scanners run on this route and the action on a finding.
    pub dlp: Dlp,
    /// Whether WebSocket upgrades are allowed.
    pub websocket: bool,
    /// Whether TLS is tunnelled without being terminated (no path rules, no DLP, no
    /// injection).
    pub passthrough: bool,
    /// The address to connect to instead of resolving `host`. The `host` still
    /// drives SNI, Host and certificate checks. Naming a loopback or private address
    /// here allows it.
    pub connect: Option<ConnectTarget>,
    /// A PEM file of extra CA certificates trusted for this route's upstream only,
    /// resolved against the directory of the file that set it.
    pub upstream_ca: Option<PathBuf>,
}

/// The token a route injects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteAuth {
    /// The name of the token value (a host variable or a provisioned token).
    pub token_ref: String,
    /// The scheme written before the token (`Bearer` by default); empty for a bare
    /// value.
    pub scheme: String,
    /// The header that carries the token (`Authorization` by default).
    pub header: String,
}

/// One request filter: every list that is not empty must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteMatch {
    /// Allowed paths; empty allows any path.
    pub paths: Vec<PathMatch>,
    /// Allowed methods, upper case; empty allows any method.
    pub methods: Vec<String>,
    /// Headers that must be present with exactly these values.
    pub headers: Vec<HeaderMatch>,
}

/// A path filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathMatch {
    /// The comparison of `value` with the canonical request path.
    #[serde(rename = "type")]
    pub kind: PathMatchKind,
    /// The path, prefix, or regular expression (Rust `regex` syntax).
    pub value: String,
}

/// The comparison a [`PathMatch`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PathMatchKind {
    /// The path equals the value.
    Exact,
    /// The path starts with the value.
    Prefix,
    /// The regex matches the whole path.
    Regex,
}

impl PathMatch {
    /// Compiles a regex path filter anchored to the whole path. Loading compiles
    /// every regex once, so only a hand-built value can fail here.
    pub fn anchored_regex(&self) -> Result<regex::Regex, regex::Error> {
        compile_anchored(&self.value)
    }

    /// Returns whether a canonical request path satisfies this filter.
    pub fn matches(&self, path: &str) -> bool {
        match self.kind {
            PathMatchKind::Exact => path == self.value,
            PathMatchKind::Prefix => path.starts_with(&self.value),
            PathMatchKind::Regex => self
                .anchored_regex()
                .is_ok_and(|regex| regex.is_match(path)),
        }
    }
}

fn compile_anchored(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!(r"\A(?:{pattern})\z"))
        .size_limit(MAX_REGEX_SIZE)
        .build()
}

/// A header filter: the header must be present with exactly this value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderMatch {
    /// The header name, lower case.
    pub name: String,
    /// The exact value.
    pub value: String,
}

// The DLP settings are the proxy's own types, so the plan and the sidecar cannot drift.
pub use bottle_policy::{Dlp, InboundDetector, OnMatch, OutboundDetector};

/// Names of the outbound scanners as bottle files spell them, in the order of
/// `OutboundDetector::ALL`.
const OUTBOUND_DETECTOR_NAMES: [&str; 3] = ["known_secrets", "token_patterns", "private_keys"];

/// Names of the inbound scanners, in the order of `InboundDetector::ALL`.
const INBOUND_DETECTOR_NAMES: [&str; 1] = ["prompt_injection"];

/// The address a route connects to instead of resolving its host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectTarget {
    /// A normalized host name or IP literal (IPv6 in brackets).
    pub host: String,
    /// The port.
    pub port: u16,
}

const ROUTE_KEYS: &[&str] = &[
    "host",
    "port",
    "auth",
    "matches",
    "dlp",
    "websocket",
    "passthrough",
    "connect",
    "upstream_ca",
];

/// Decodes one entry of `egress.routes`.
pub(crate) fn decode_route(cx: &mut Cx, node: &Node) -> Option<Route> {
    let fields = cx.fields(node, ROUTE_KEYS)?;
    let before = cx.diagnostics.len();

    let host = cx.required(node, &fields, "host", |cx, node| {
        let text = cx.string(node)?;
        HostPattern::parse(&text)
            .map_err(|message| cx.error(node, message))
            .ok()
    });
    let port = cx.optional(&fields, "port", decode_port).unwrap_or(443);
    let auth = cx.optional(&fields, "auth", decode_auth);
    let matches = cx
        .optional(&fields, "matches", decode_matches)
        .unwrap_or_default();
    let dlp = cx.optional(&fields, "dlp", decode_dlp).unwrap_or_default();
    let websocket = cx.optional(&fields, "websocket", Cx::bool).unwrap_or(false);
    let passthrough = cx
        .optional(&fields, "passthrough", Cx::bool)
        .unwrap_or(false);
    let connect = cx.optional(&fields, "connect", decode_connect);
    let upstream_ca = cx.optional(&fields, "upstream_ca", |cx, node| {
        let text = cx.string(node)?;
        resolve_path(cx.file(), &text)
            .map_err(|message| cx.error(node, message))
            .ok()
    });

    if passthrough {
        for key in ["auth", "matches", "dlp"] {
            if fields.has(key) {
                cx.error(
                    node,
                    format!(
                        "`passthrough: true` tunnels TLS without reading it, so `{key}` cannot \
                         apply; remove one of them"
                    ),
                );
            }
        }
    }
    if port == 80 && fields.has("auth") {
        cx.error(
            node,
            "a route for port 80 carries plain HTTP and never injects a token; remove `auth` \
             or use port 443",
        );
    }

    if cx.diagnostics.len() > before {
        return None;
    }
    Some(Route {
        host: host?,
        port,
        auth,
        matches,
        dlp,
        websocket,
        passthrough,
        connect,
        upstream_ca,
    })
}

fn decode_port(cx: &mut Cx, node: &Node) -> Option<u16> {
    let port = cx.integer(node, 1, 65535)?;
    u16::try_from(port).ok()
}

fn decode_auth(cx: &mut Cx, node: &Node) -> Option<RouteAuth> {
    let fields = cx.fields(node, &["token_ref", "scheme", "header"])?;
    let token_ref = cx.required(node, &fields, "token_ref", |cx, node| {
        let name = cx.string(node)?;
        check_variable_name(cx, node, &name).then_some(name)
    });
    let scheme = cx.optional(&fields, "scheme", |cx, node| {
        let scheme = cx.string(node)?;
        if !scheme.is_empty() && !is_token(&scheme) {
            cx.error(
                node,
                format!("invalid scheme \"{scheme}\"; use a single word such as `Bearer`, or \"\""),
            );
            return None;
        }
        Some(scheme)
    });
    let header = cx.optional(&fields, "header", |cx, node| {
        let header = cx.string(node)?;
        check_header_name(cx, node, &header).then_some(header)
    });
    Some(RouteAuth {
        token_ref: token_ref?,
        scheme: scheme.unwrap_or_else(|| "Bearer".to_string()),
        header: header.unwrap_or_else(|| "Authorization".to_string()),
    })
}

fn decode_matches(cx: &mut Cx, node: &Node) -> Option<Vec<RouteMatch>> {
    let items = cx.list(node)?;
    if items.is_empty() {
        cx.error(
            node,
            "`matches` is empty; remove it to allow every path and method, or add an entry",
        );
        return None;
    }
    let mut matches = Vec::new();
    let mut valid = true;
    for (index, item) in items.iter().enumerate() {
        match cx.at_index(index, |cx| decode_match(cx, item)) {
            Some(entry) => matches.push(entry),
            None => valid = false,
        }
    }
    valid.then_some(matches)
}

fn decode_match(cx: &mut Cx, node: &Node) -> Option<RouteMatch> {
    let before = cx.diagnostics.len();
    let fields = cx.fields(node, &["paths", "methods", "headers"])?;
    let unknown_keys = cx.diagnostics.len() > before;
    if !unknown_keys && !fields.has("paths") && !fields.has("methods") && !fields.has("headers") {
        cx.error(
            node,
            "an entry of `matches` needs `paths`, `methods` or `headers`",
        );
        return None;
    }
    let paths = cx.optional(&fields, "paths", |cx, node| {
        let items = cx.list(node)?;
        let paths: Vec<_> = items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| cx.at_index(index, |cx| decode_path_match(cx, item)))
            .collect();
        Some(paths)
    });
    let methods = cx.optional(&fields, "methods", |cx, node| {
        let methods = cx.string_list(node)?;
        let mut valid = Vec::new();
        for (index, (method, line)) in methods.into_iter().enumerate() {
            if is_token(&method) && method.bytes().all(|byte| !byte.is_ascii_lowercase()) {
                valid.push(method);
            } else {
                let hint = if is_token(&method) {
                    format!(
                        "; methods are upper case: `{}`",
                        method.to_ascii_uppercase()
                    )
                } else {
                    String::new()
                };
                cx.at_index(index, |cx| {
                    cx.error_at_line(line, format!("invalid method \"{method}\"{hint}"))
                });
            }
        }
        Some(valid)
    });
    let headers = cx.optional(&fields, "headers", |cx, node| {
        let items = cx.list(node)?;
        let headers: Vec<_> = items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| cx.at_index(index, |cx| decode_header_match(cx, item)))
            .collect();
        Some(headers)
    });
    if cx.diagnostics.len() > before {
        return None;
    }
    Some(RouteMatch {
        paths: paths.unwrap_or_default(),
        methods: methods.unwrap_or_default(),
        headers: headers.unwrap_or_default(),
    })
}

fn decode_path_match(cx: &mut Cx, node: &Node) -> Option<PathMatch> {
    let fields = cx.fields(node, &["type", "value"])?;
    let kind = cx.required(node, &fields, "type", |cx, node| {
        let kind = cx.string(node)?;
        match kind.as_str() {
            "exact" => Some(PathMatchKind::Exact),
            "prefix" => Some(PathMatchKind::Prefix),
            "regex" => Some(PathMatchKind::Regex),
            _ => {
                cx.error(
                    node,
                    format!("invalid path type \"{kind}\"; expected `exact`, `prefix` or `regex`"),
                );
                None
            }
        }
    });
    let value = cx.required(node, &fields, "value", Cx::string)?;
    let kind = kind?;
    let value_node = fields
        .get("value")
        .expect("a required key that decoded is present");
    match kind {
        PathMatchKind::Exact | PathMatchKind::Prefix => {
            if !value.starts_with('/') {
                cx.at_key("value", |cx| {
                    cx.error(
                        value_node,
                        format!("the path \"{value}\" must start with `/`"),
                    )
                });
                return None;
            }
            if value.chars().any(|c| c.is_control() || c == ' ') {
                cx.at_key("value", |cx| {
                    cx.error(value_node, "the path contains a space or control character")
                });
                return None;
            }
        }
        PathMatchKind::Regex => {
            if let Err(error) = compile_anchored(&value) {
                let text = error.to_string();
                let last_line = text.lines().last().unwrap_or_default();
                let detail = last_line.trim().trim_start_matches("error: ").to_string();
                cx.at_key("value", |cx| {
                    cx.error(value_node, format!("invalid regular expression: {detail}"))
                });
                return None;
            }
        }
    }
    Some(PathMatch { kind, value })
}

fn decode_header_match(cx: &mut Cx, node: &Node) -> Option<HeaderMatch> {
    let fields = cx.fields(node, &["name", "value"])?;
    let name = cx.required(node, &fields, "name", |cx, node| {
        let name = cx.string(node)?;
        check_header_name(cx, node, &name).then(|| name.to_ascii_lowercase())
    });
    let value = cx.required(node, &fields, "value", |cx, node| {
        let value = cx.string(node)?;
        if value.chars().any(|c| c.is_control() && c != '\t') {
            cx.error(node, "the header value contains a control character");
            return None;
        }
        Some(value)
    });
    Some(HeaderMatch {
        name: name?,
        value: value?,
    })
}

fn decode_dlp(cx: &mut Cx, node: &Node) -> Option<Dlp> {
    let fields = cx.fields(
        node,
        &[
            "outbound_detectors",
            "inbound_detectors",
            "outbound_on_match",
        ],
    )?;
    let outbound = cx.optional(&fields, "outbound_detectors", |cx, node| {
        decode_detectors(cx, node, &OUTBOUND_DETECTOR_NAMES, &OutboundDetector::ALL)
    });
    let inbound = cx.optional(&fields, "inbound_detectors", |cx, node| {
        decode_detectors(cx, node, &INBOUND_DETECTOR_NAMES, &InboundDetector::ALL)
    });
    let on_match = cx.optional(&fields, "outbound_on_match", |cx, node| {
        let value = cx.string(node)?;
        match value.as_str() {
            "supervise" => Some(OnMatch::Supervise),
            "redact" => Some(OnMatch::Redact),
            "block" => Some(OnMatch::Block),
            _ => {
                cx.error(
                    node,
                    format!("invalid value \"{value}\"; expected `supervise`, `redact` or `block`"),
                );
                None
            }
        }
    });
    let defaults = Dlp::default();
    Some(Dlp {
        outbound_detectors: outbound.unwrap_or(defaults.outbound_detectors),
        inbound_detectors: inbound.unwrap_or(defaults.inbound_detectors),
        outbound_on_match: on_match.unwrap_or(defaults.outbound_on_match),
    })
}

/// Decodes a detector list, or `false` for none.
fn decode_detectors<T: Copy>(
    cx: &mut Cx,
    node: &Node,
    names: &[&str],
    values: &[T],
) -> Option<Vec<T>> {
    if node.value == Value::Bool(false) {
        return Some(Vec::new());
    }
    if let Value::Bool(true) = node.value {
        cx.error(
            node,
            "expected a list of detectors or `false`; omit the key to run them all",
        );
        return None;
    }
    let items = cx.string_list(node)?;
    let mut detectors = Vec::new();
    for (index, (name, line)) in items.into_iter().enumerate() {
        match names.iter().position(|candidate| *candidate == name) {
            Some(position) => detectors.push(values[position]),
            None => cx.at_index(index, |cx| {
                cx.error_at_line(
                    line,
                    format!(
                        "unknown detector \"{name}\"; expected {}",
                        backticked(names)
                    ),
                )
            }),
        }
    }
    Some(detectors)
}

fn decode_connect(cx: &mut Cx, node: &Node) -> Option<ConnectTarget> {
    let text = cx.string(node)?;
    let invalid = |cx: &mut Cx, detail: &str| {
        cx.error(
            node,
            format!("invalid target \"{text}\": {detail}; expected `address:port`"),
        );
    };
    let Some((host, port)) = text.rsplit_once(':') else {
        invalid(cx, "no port");
        return None;
    };
    let port = match port.parse::<u16>() {
        Ok(port) if port > 0 => port,
        _ => {
            invalid(cx, "the port must be 1 to 65535");
            return None;
        }
    };
    match normalize_host(host) {
        Ok(host) => Some(ConnectTarget { host, port }),
        Err(message) => {
            invalid(cx, &message);
            None
        }
    }
}

/// Returns whether `text` is an HTTP token (RFC 9110 `tchar`s).
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

fn check_header_name(cx: &mut Cx, node: &Node, name: &str) -> bool {
    if is_token(name) {
        return true;
    }
    cx.error(
        node,
        format!("invalid header name \"{}\"", name.escape_default()),
    );
    false
}

/// Checks an environment variable name (`[A-Za-z_][A-Za-z0-9_]*`), reporting on `node`.
pub(crate) fn check_variable_name(cx: &mut Cx, node: &Node, name: &str) -> bool {
    if is_variable_name(name) {
        return true;
    }
    cx.error(
        node,
        format!(
            "invalid variable name \"{}\"; use letters, digits and `_`, not starting with a digit",
            name.escape_default()
        ),
    );
    false
}

/// Returns whether `name` is a valid environment variable name.
pub(crate) fn is_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}
