//! Egress decisions: which route, if any, allows a connection and a request.

use crate::host::Host;
use crate::route::{self, CompiledMatch, CompiledRoute, HostPattern, Route, RouteError};

/// Rule id of the default-deny decision.
pub const DEFAULT_DENY_RULE: &str = "default";

/// Headers that carry a credential of the agent's own. On a route that injects a token,
/// a request carrying one is refused: the agent could otherwise reach someone else's
/// account on an allowed host.
const CREDENTIAL_HEADERS: &[&str] = &[
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "private-token",
    "x-auth-token",
    "x-access-token",
    "job-token",
    "x-amz-security-token",
];

/// Query keys that carry a credential, compared case-insensitively after decoding.
const CREDENTIAL_QUERY_KEYS: &[&str] = &[
    "key",
    "api_key",
    "apikey",
    "api-key",
    "access_token",
    "token",
    "auth_token",
    "private_token",
    "client_secret",
    "password",
    "x-amz-security-token",
    "x-amz-credential",
    "x-amz-signature",
];

/// The outcome of a policy check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A route allows it.
    Allow {
        /// Index of the route in the policy.
        route: usize,
        /// Rule id of that route.
        rule: String,
    },
    /// Refused.
    Deny {
        /// Rule id that decided: a route's id, or [`DEFAULT_DENY_RULE`].
        rule: String,
        /// Reason, for the refusal body and the audit log. It never contains a header value.
        reason: String,
    },
}

impl Decision {
    /// Returns the rule id that decided.
    pub fn rule(&self) -> &str {
        match self {
            Decision::Allow { rule, .. } | Decision::Deny { rule, .. } => rule,
        }
    }

    /// Returns true for [`Decision::Allow`].
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// The parts of a request that route rules look at.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// The method, exactly as sent.
    pub method: &'a str,
    /// The canonical path (see [`crate::canonicalize_path`]).
    pub path: &'a str,
    /// The raw query, without the `?`.
    pub query: Option<&'a str>,
    /// Header names in lower case, with their raw values.
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// A validated route list.
#[derive(Debug, Clone)]
pub struct Policy {
    routes: Vec<CompiledRoute>,
}

impl Policy {
    /// Validates and compiles routes. Two routes for the same host pattern and port are
    /// an error, as are invalid hosts, regexes, path rules, methods and auth settings.
    pub fn new(routes: &[Route]) -> Result<Policy, RouteError> {
        let mut compiled: Vec<CompiledRoute> = Vec::with_capacity(routes.len());
        for (index, route) in routes.iter().enumerate() {
            let next = route::compile(index, route)?;
            if let Some(first) = compiled.iter().position(|earlier| {
                earlier.pattern == next.pattern && earlier.route.port == route.port
            }) {
                return Err(RouteError::Duplicate {
                    first,
                    second: index,
                    host: route.host.clone(),
                    port: route.port,
                });
            }
            compiled.push(next);
        }
        Ok(Policy { routes: compiled })
    }

    /// Returns the compiled routes, in configuration order.
    pub fn routes(&self) -> &[CompiledRoute] {
        &self.routes
    }

    /// Decides a connection to `host:port`. See [`decide_connect`].
    pub fn decide_connect(&self, host: &Host, port: u16) -> Decision {
        decide_connect(host, port, &self.routes)
    }

    /// Decides a request on the route a connection was allowed by. See [`decide_request`].
    pub fn decide_request(&self, route: usize, request: &RequestInfo<'_>) -> Decision {
        decide_request(route, request, &self.routes)
    }
}

/// Decides whether any route allows a connection to `host:port`, before any DNS lookup.
///
/// An exact host route wins over a wildcard; among wildcards the longest suffix wins. The
/// port must equal the route's port, so non-default ports and IP literals are refused
/// unless a route names them.
pub fn decide_connect(host: &Host, port: u16, routes: &[CompiledRoute]) -> Decision {
    let exact = routes.iter().position(|candidate| {
        candidate.route.port == port
            && matches!(candidate.pattern, HostPattern::Exact(_))
            && candidate.pattern.matches(host)
    });
    let chosen = exact.or_else(|| {
        routes
            .iter()
            .enumerate()
            .filter(|(_, candidate)| {
                candidate.route.port == port && candidate.pattern.matches(host)
            })
            .max_by_key(|(_, candidate)| match &candidate.pattern {
                HostPattern::Subdomains(suffix) => suffix.len(),
                HostPattern::Exact(_) => usize::MAX,
            })
            .map(|(index, _)| index)
    });

    match chosen {
        Some(index) => Decision::Allow {
            route: index,
            rule: routes[index].rule_id.clone(),
        },
        None => Decision::Deny {
            rule: DEFAULT_DENY_RULE.to_owned(),
            reason: format!(
                "denied by default: no route allows {}:{port}",
                host.to_authority_host()
            ),
        },
    }
}

/// Decides a request on route `route_index`: its match rules, and on a route that injects
/// a token, the absence of any credential of the agent's own.
///
/// # Panics
///
/// Panics if `route_index` is not an index into `routes`.
pub fn decide_request(
    route_index: usize,
    request: &RequestInfo<'_>,
    routes: &[CompiledRoute],
) -> Decision {
    let route = &routes[route_index];
    let deny = |reason: String| Decision::Deny {
        rule: route.rule_id.clone(),
        reason,
    };

    if route.route.auth.is_some()
        && let Some(reason) = own_credential(route, request)
    {
        return deny(reason);
    }

    let allowed =
        route.matches.is_empty() || route.matches.iter().any(|entry| entry.allows(request));
    if !allowed {
        return deny(format!(
            "no match entry of {} allows {} {}",
            route.rule_id, request.method, request.path
        ));
    }
    Decision::Allow {
        route: route_index,
        rule: route.rule_id.clone(),
    }
}

/// Returns a reason when the request carries a credential of its own.
fn own_credential(route: &CompiledRoute, request: &RequestInfo<'_>) -> Option<String> {
    let injected = route
        .route
        .auth
        .as_ref()
        .map(|auth| auth.header.to_ascii_lowercase());
    for (name, _) in request.headers {
        if injected.as_deref() == Some(*name) {
            continue;
        }
        if CREDENTIAL_HEADERS.contains(name) {
            return Some(format!(
                "request carries its own credential in header {name} on a route that injects a token"
            ));
        }
    }

    let query = request.query.unwrap_or_default();
    for pair in query.split('&') {
        let key = pair.split_once('=').map_or(pair, |(key, _)| key);
        let key = percent_decode_lossy(key).to_ascii_lowercase();
        if CREDENTIAL_QUERY_KEYS.contains(&key.as_str()) {
            return Some(format!(
                "request carries its own credential in query key {key} on a route that injects a token"
            ));
        }
    }
    None
}

impl CompiledMatch {
    fn allows(&self, request: &RequestInfo<'_>) -> bool {
        let path_ok =
            self.paths.is_empty() || self.paths.iter().any(|rule| rule.matches(request.path));
        let method_ok = self.methods.is_empty() || self.methods.iter().any(|m| m == request.method);
        let headers_ok = self.headers.iter().all(|(name, value)| {
            let mut values = request
                .headers
                .iter()
                .filter(|(header, _)| header.eq_ignore_ascii_case(name))
                .map(|(_, actual)| *actual)
                .peekable();
            // Every copy must match, so a second copy cannot smuggle another value past
            // the rule to an upstream that reads that one.
            values.peek().is_some() && values.all(|actual| actual == value.as_bytes())
        });
        path_ok && method_ok && headers_ok
    }
}

/// Decodes every percent-encoding, keeping invalid ones as written.
fn percent_decode_lossy(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{Auth, HeaderRule, Match, PathKind, PathRule};

    fn route(host: &str) -> Route {
        Route {
            host: host.to_owned(),
            port: 443,
            auth: None,
            matches: Vec::new(),
            websocket: false,
            passthrough: false,
            connect: None,
            upstream_ca: None,
            dlp: Default::default(),
        }
    }

    fn host(text: &str) -> Host {
        Host::parse(text).expect("valid host")
    }

    fn request<'a>(
        method: &'a str,
        path: &'a str,
        headers: &'a [(&'a str, &'a [u8])],
    ) -> RequestInfo<'a> {
        RequestInfo {
            method,
            path,
            query: None,
            headers,
        }
    }

    #[test]
    fn default_deny_names_host_and_port() {
        let policy = Policy::new(&[route("allowed.example")]).expect("valid");
        let decision = policy.decide_connect(&host("evil.example"), 443);
        assert_eq!(
            decision,
            Decision::Deny {
                rule: "default".to_owned(),
                reason: "denied by default: no route allows evil.example:443".to_owned()
            }
        );
    }

    #[test]
    fn allows_exact_host_and_port_only() {
        let policy = Policy::new(&[route("Allowed.Example.")]).expect("valid");
        assert_eq!(
            policy.decide_connect(&host("allowed.example"), 443),
            Decision::Allow {
                route: 0,
                rule: "route[0]:allowed.example:443".to_owned()
            }
        );
        assert!(
            !policy
                .decide_connect(&host("allowed.example"), 8443)
                .is_allow()
        );
        assert!(
            !policy
                .decide_connect(&host("sub.allowed.example"), 443)
                .is_allow()
        );
    }

    #[test]
    fn ip_literal_needs_exact_route() {
        let policy = Policy::new(&[route("allowed.example"), route("*.example")]).expect("valid");
        assert!(!policy.decide_connect(&host("127.0.0.1"), 443).is_allow());
        let policy = Policy::new(&[route("127.0.0.1")]).expect("valid");
        assert!(policy.decide_connect(&host("127.0.0.1"), 443).is_allow());
        assert!(
            policy
                .decide_connect(&host("[::ffff:127.0.0.1]"), 443)
                .is_allow()
        );
    }

    #[test]
    fn exact_route_wins_over_wildcard() {
        let policy =
            Policy::new(&[route("*.example.org"), route("api.example.org")]).expect("valid");
        assert_eq!(
            policy.decide_connect(&host("api.example.org"), 443).rule(),
            "route[1]:api.example.org:443"
        );
        assert_eq!(
            policy.decide_connect(&host("www.example.org"), 443).rule(),
            "route[0]:*.example.org:443"
        );
    }

    #[test]
    fn rejects_duplicate_routes() {
        let result = Policy::new(&[route("a.example"), route("A.example.")]);
        assert!(matches!(
            result,
            Err(RouteError::Duplicate {
                first: 0,
                second: 1,
                ..
            })
        ));
    }

    #[test]
    fn rejects_auth_on_port_80() {
        let mut plain = route("a.example");
        plain.port = 80;
        plain.auth = Some(Auth {
            token_ref: "T".into(),
            scheme: "Bearer".into(),
            header: "Authorization".into(),
        });
        assert!(matches!(
            Policy::new(&[plain]),
            Err(RouteError::AuthOnPlainHttp { .. })
        ));
    }

    #[test]
    fn matches_path_method_and_headers() {
        let mut api = route("api.example");
        api.matches = vec![Match {
            paths: vec![
                PathRule {
                    kind: PathKind::Prefix,
                    value: "/v1/".into(),
                },
                PathRule {
                    kind: PathKind::Regex,
                    value: "/items/[0-9]+".into(),
                },
            ],
            methods: vec!["get".into()],
            headers: vec![HeaderRule {
                name: "X-Org".into(),
                value: "team".into(),
            }],
        }];
        let policy = Policy::new(&[api]).expect("valid");
        let org: &[(&str, &[u8])] = &[("x-org", b"team")];
        let two_orgs: &[(&str, &[u8])] = &[("x-org", b"team"), ("x-org", b"other")];

        assert!(
            policy
                .decide_request(0, &request("GET", "/v1/a", org))
                .is_allow()
        );
        assert!(
            policy
                .decide_request(0, &request("GET", "/items/42", org))
                .is_allow()
        );
        assert!(
            !policy
                .decide_request(0, &request("GET", "/items/42/x", org))
                .is_allow()
        );
        assert!(
            !policy
                .decide_request(0, &request("GET", "/x/items/42", org))
                .is_allow()
        );
        assert!(
            !policy
                .decide_request(0, &request("POST", "/v1/a", org))
                .is_allow()
        );
        assert!(
            !policy
                .decide_request(0, &request("get", "/v1/a", org))
                .is_allow()
        );
        assert!(
            !policy
                .decide_request(0, &request("GET", "/v1/a", &[]))
                .is_allow()
        );
        assert!(
            !policy
                .decide_request(0, &request("GET", "/v1/a", two_orgs))
                .is_allow()
        );
        assert!(
            !policy
                .decide_request(0, &request("GET", "/v2/a", org))
                .is_allow()
        );
    }

    #[test]
    fn refuses_own_credentials_on_auth_route() {
        let mut api = route("api.example");
        api.auth = Some(Auth {
            token_ref: "T".into(),
            scheme: "".into(),
            header: "x-api-key".into(),
        });
        let policy = Policy::new(&[api]).expect("valid");

        let own_key: &[(&str, &[u8])] = &[("x-goog-api-key", b"mine")];
        assert!(
            !policy
                .decide_request(0, &request("GET", "/", own_key))
                .is_allow()
        );

        // The route's own header is replaced by the proxy, so it is not refused here.
        let placeholder: &[(&str, &[u8])] = &[("x-api-key", b"placeholder")];
        assert!(
            policy
                .decide_request(0, &request("GET", "/", placeholder))
                .is_allow()
        );

        let mut with_query = request("GET", "/", &[]);
        with_query.query = Some("q=1&%61pi_key=mine");
        assert!(!policy.decide_request(0, &with_query).is_allow());
        with_query.query = Some("q=1&page=2");
        assert!(policy.decide_request(0, &with_query).is_allow());
    }
}
