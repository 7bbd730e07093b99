//! The runtime route: what the launcher hands to the sidecar after resolving the bottle
//! files, and its validated, compiled form.

use std::path::PathBuf;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::dlp::Dlp;
use crate::host::{Host, HostError};

/// One egress route: a host (and port) the bottle may reach, with optional request rules
/// and token injection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Exact host (`api.example.org`, an IP literal) or `*.example.org`, which matches any
    /// subdomain of `example.org` but not `example.org` itself.
    pub host: String,
    /// Port the route allows. Port 80 allows plain HTTP and never carries a token.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Token injected into every request on this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// Request rules: a request must satisfy at least one entry. Empty allows everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<Match>,
    /// Whether WebSocket upgrades are allowed.
    #[serde(default)]
    pub websocket: bool,
    /// Whether TLS is tunnelled without termination. Not implemented: the proxy refuses
    /// to start with such a route.
    #[serde(default)]
    pub passthrough: bool,
    /// Upstream `address:port` to dial instead of resolving `host`. The host still drives
    /// SNI, `Host` and certificate checks. Naming an internal address here allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<String>,
    /// PEM file of extra CA certificates trusted for this route's upstream only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_ca: Option<PathBuf>,
    /// Data-loss-prevention settings: scanners on requests and responses, and what a
    /// finding in a request does.
    #[serde(default, skip_serializing_if = "Dlp::is_default")]
    pub dlp: Dlp,
}

fn default_port() -> u16 {
    443
}

/// Token injection settings of a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Name of the token value in the sidecar configuration.
    pub token_ref: String,
    /// Scheme written before the token (`Bearer`); empty for the bare token value.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// Header that carries the token.
    #[serde(default = "default_auth_header")]
    pub header: String,
}

fn default_scheme() -> String {
    "Bearer".to_owned()
}

fn default_auth_header() -> String {
    "Authorization".to_owned()
}

/// One entry of a route's request rules. Every non-empty field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// Path rules, any of which may match the canonical path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<PathRule>,
    /// Allowed methods, compared exactly after upper-casing the configured names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Headers that must all be present with exactly these values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderRule>,
}

/// A path rule, matched against the canonical path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRule {
    /// Comparison applied to `value`.
    #[serde(rename = "type", alias = "kind")]
    pub kind: PathKind,
    /// The path, prefix or regular expression.
    pub value: String,
}

/// Comparison kind of a path rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// The canonical path equals the value.
    Exact,
    /// The canonical path starts with the value.
    Prefix,
    /// The Rust `regex` matches the whole canonical path.
    Regex,
}

/// A header that a request must carry with an exact value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRule {
    /// Header name, compared case-insensitively.
    pub name: String,
    /// Header value, compared exactly.
    pub value: String,
}

/// Validation failure of a route list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The route's host does not parse.
    #[error("route {index} host {host:?} is invalid: {source}")]
    InvalidHost {
        /// Position of the route.
        index: usize,
        /// The configured host.
        host: String,
        /// The parse failure.
        source: HostError,
    },
    /// A `*` anywhere but one leading `*.` label, or a wildcard over an IP literal.
    #[error("route {index} host {host:?} is an invalid wildcard: use `*.example.org`")]
    InvalidWildcard {
        /// Position of the route.
        index: usize,
        /// The configured host.
        host: String,
    },
    /// The port is 0.
    #[error("route {index} ({host}) has port 0")]
    InvalidPort {
        /// Position of the route.
        index: usize,
        /// The configured host.
        host: String,
    },
    /// Two routes for the same host and port.
    #[error("routes {first} and {second} are both for {host}:{port}; merge them into one")]
    Duplicate {
        /// Position of the earlier route.
        first: usize,
        /// Position of the later route.
        second: usize,
        /// Host pattern.
        host: String,
        /// Port.
        port: u16,
    },
    /// A path regex does not compile.
    #[error("route {index} ({host}) has an invalid path regex {pattern:?}: {message}")]
    InvalidRegex {
        /// Position of the route.
        index: usize,
        /// The configured host.
        host: String,
        /// The regex as configured.
        pattern: String,
        /// The compiler's message.
        message: String,
    },
    /// An exact or prefix path rule that is not itself a canonical path.
    #[error(
        "route {index} ({host}) path rule {value:?} must be a canonical path starting with `/`"
    )]
    InvalidPathRule {
        /// Position of the route.
        index: usize,
        /// The configured host.
        host: String,
        /// The rule value.
        value: String,
    },
    /// A method or header name that is not an HTTP token.
    #[error("route {index} ({host}) has an invalid {field} {value:?}")]
    InvalidToken {
        /// Position of the route.
        index: usize,
        /// The configured host.
        host: String,
        /// `method` or `header name`.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// `auth` on a port-80 route, which would send the token in clear text.
    #[error("route {index} ({host}) is on port 80 (plain HTTP) and cannot carry `auth`")]
    AuthOnPlainHttp {
        /// Position of the route.
        index: usize,
        /// The configured host.
        host: String,
    },
    /// A `connect` value that is not `address:port`.
    #[error("route {index} ({host}) has an invalid connect {connect:?}: use address:port")]
    InvalidConnect {
        /// Position of the route.
        index: usize,
        /// The configured host.
        host: String,
        /// The configured value.
        connect: String,
    },
    /// An auth scheme or header that cannot be written into a request.
    #[error("route {index} ({host}) has an invalid auth {field}")]
    InvalidAuth {
        /// Position of the route.
        index: usize,
        /// The configured host.
        host: String,
        /// `scheme`, `header` or `token_ref`.
        field: &'static str,
    },
}

/// The host side of a compiled route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this host.
    Exact(Host),
    /// Any host strictly below this domain (the stored value has no leading dot).
    Subdomains(String),
}

impl HostPattern {
    /// Returns true when `host` matches: label-aligned, and never the apex for a wildcard.
    pub fn matches(&self, host: &Host) -> bool {
        match (self, host) {
            (HostPattern::Exact(expected), host) => expected == host,
            (HostPattern::Subdomains(suffix), Host::Domain(name)) => name
                .strip_suffix(suffix.as_str())
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty()),
            (HostPattern::Subdomains(_), Host::Ip(_)) => false,
        }
    }
}

/// A validated route with its regexes compiled.
#[derive(Debug, Clone)]
pub struct CompiledRoute {
    /// The route as configured.
    pub route: Route,
    /// The normalized host pattern.
    pub pattern: HostPattern,
    /// Stable rule id for decisions and the audit log, such as `route[2]:api.example.org:443`.
    pub rule_id: String,
    pub(crate) matches: Vec<CompiledMatch>,
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledMatch {
    pub(crate) paths: Vec<CompiledPath>,
    pub(crate) methods: Vec<String>,
    pub(crate) headers: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub(crate) enum CompiledPath {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

impl CompiledPath {
    pub(crate) fn matches(&self, path: &str) -> bool {
        match self {
            CompiledPath::Exact(value) => path == value,
            CompiledPath::Prefix(value) => path.starts_with(value.as_str()),
            CompiledPath::Regex(regex) => regex.is_match(path),
        }
    }
}

/// Parses a route host: an exact host, or `*.` followed by a domain.
pub fn parse_host_pattern(text: &str) -> Result<HostPattern, HostError> {
    match text.strip_prefix("*.") {
        Some(rest) => match Host::parse(rest)? {
            Host::Domain(name) => Ok(HostPattern::Subdomains(name)),
            Host::Ip(_) => Err(HostError::ForbiddenCharacter(
                "a wildcard over an IP literal",
            )),
        },
        None => Ok(HostPattern::Exact(Host::parse(text)?)),
    }
}

pub(crate) fn compile(index: usize, route: &Route) -> Result<CompiledRoute, RouteError> {
    let host = route.host.clone();
    let stars = route.host.matches('*').count();
    if stars > 1 || (stars == 1 && !route.host.starts_with("*.")) {
        return Err(RouteError::InvalidWildcard { index, host });
    }
    let pattern = parse_host_pattern(&route.host).map_err(|source| {
        if route.host.starts_with("*.") && matches!(source, HostError::ForbiddenCharacter(_)) {
            RouteError::InvalidWildcard {
                index,
                host: host.clone(),
            }
        } else {
            RouteError::InvalidHost {
                index,
                host: host.clone(),
                source,
            }
        }
    })?;
    if route.port == 0 {
        return Err(RouteError::InvalidPort { index, host });
    }
    if let Some(auth) = &route.auth {
        check_auth(index, &host, route.port, auth)?;
    }
    if let Some(connect) = &route.connect
        && crate::host::parse_authority(connect, None).is_err()
    {
        return Err(RouteError::InvalidConnect {
            index,
            host,
            connect: connect.clone(),
        });
    }

    let mut matches = Vec::with_capacity(route.matches.len());
    for entry in &route.matches {
        matches.push(compile_match(index, &host, entry)?);
    }

    let pattern_text = match &pattern {
        HostPattern::Exact(exact) => exact.to_authority_host(),
        HostPattern::Subdomains(suffix) => format!("*.{suffix}"),
    };
    let rule_id = format!("route[{index}]:{pattern_text}:{}", route.port);
    Ok(CompiledRoute {
        route: route.clone(),
        pattern,
        rule_id,
        matches,
    })
}

fn check_auth(index: usize, host: &str, port: u16, auth: &Auth) -> Result<(), RouteError> {
    let host = host.to_owned();
    if port == 80 {
        return Err(RouteError::AuthOnPlainHttp { index, host });
    }
    if auth.token_ref.is_empty() {
        return Err(RouteError::InvalidAuth {
            index,
            host,
            field: "token_ref",
        });
    }
    if !is_token(&auth.header) {
        return Err(RouteError::InvalidAuth {
            index,
            host,
            field: "header",
        });
    }
    if !auth.scheme.is_empty() && !is_token(&auth.scheme) {
        return Err(RouteError::InvalidAuth {
            index,
            host,
            field: "scheme",
        });
    }
    Ok(())
}

fn compile_match(index: usize, host: &str, entry: &Match) -> Result<CompiledMatch, RouteError> {
    let mut paths = Vec::with_capacity(entry.paths.len());
    for rule in &entry.paths {
        let compiled = match rule.kind {
            PathKind::Exact | PathKind::Prefix => {
                let canonical = crate::path::canonicalize_path(&rule.value).ok();
                if canonical.as_deref() != Some(rule.value.as_str()) {
                    return Err(RouteError::InvalidPathRule {
                        index,
                        host: host.to_owned(),
                        value: rule.value.clone(),
                    });
                }
                if rule.kind == PathKind::Exact {
                    CompiledPath::Exact(rule.value.clone())
                } else {
                    CompiledPath::Prefix(rule.value.clone())
                }
            }
            PathKind::Regex => {
                let anchored = format!(r"\A(?:{})\z", rule.value);
                let regex = Regex::new(&anchored).map_err(|err| RouteError::InvalidRegex {
                    index,
                    host: host.to_owned(),
                    pattern: rule.value.clone(),
                    message: err.to_string(),
                })?;
                CompiledPath::Regex(regex)
            }
        };
        paths.push(compiled);
    }

    let mut methods = Vec::with_capacity(entry.methods.len());
    for method in &entry.methods {
        if !is_token(method) {
            return Err(RouteError::InvalidToken {
                index,
                host: host.to_owned(),
                field: "method",
                value: method.clone(),
            });
        }
        methods.push(method.to_ascii_uppercase());
    }

    let mut headers = Vec::with_capacity(entry.headers.len());
    for rule in &entry.headers {
        if !is_token(&rule.name) {
            return Err(RouteError::InvalidToken {
                index,
                host: host.to_owned(),
                field: "header name",
                value: rule.name.clone(),
            });
        }
        headers.push((rule.name.to_ascii_lowercase(), rule.value.clone()));
    }

    Ok(CompiledMatch {
        paths,
        methods,
        headers,
    })
}

/// Returns true for an HTTP token (RFC 9110 `tchar`s, at least one).
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializes_with_defaults() {
        let route: Route = serde_json::from_str(
            r#"{"host": "api.example.org", "auth": {"token_ref": "API"},
                "matches": [{"paths": [{"type": "prefix", "value": "/v1/"}],
                             "methods": ["GET"],
                             "headers": [{"name": "X-Org", "value": "a"}]}]}"#,
        )
        .expect("valid route");
        assert_eq!(route.port, 443);
        let auth = route.auth.expect("auth");
        assert_eq!(auth.scheme, "Bearer");
        assert_eq!(auth.header, "Authorization");
        assert_eq!(route.matches[0].paths[0].kind, PathKind::Prefix);
        assert!(!route.websocket);
    }

    #[test]
    fn rejects_unknown_keys() {
        let result: Result<Route, _> = serde_json::from_str(r#"{"host": "a.example", "prot": 1}"#);
        assert!(result.is_err());
    }

    #[test]
    fn rejects_invalid_connect() {
        let mut route: Route =
            serde_json::from_str(r#"{"host": "a.example"}"#).expect("valid route");
        for connect in ["127.0.0.1", "127.0.0.1:0", "gateway:http", "[::1]"] {
            route.connect = Some(connect.to_owned());
            assert!(
                matches!(compile(0, &route), Err(RouteError::InvalidConnect { .. })),
                "{connect}"
            );
        }
        for connect in ["127.0.0.1:8443", "[::1]:443", "gateway.internal:443"] {
            route.connect = Some(connect.to_owned());
            assert!(compile(0, &route).is_ok(), "{connect}");
        }
    }

    #[test]
    fn wildcard_matches_subdomains_only() {
        let pattern = parse_host_pattern("*.example.org").expect("valid pattern");
        let host = |text: &str| Host::parse(text).expect("valid host");
        assert!(pattern.matches(&host("a.example.org")));
        assert!(pattern.matches(&host("a.b.example.org")));
        assert!(!pattern.matches(&host("example.org")));
        assert!(!pattern.matches(&host("evilexample.org")));
        assert!(!pattern.matches(&host("example.org.evil.example")));
    }
}
