//! Every key of `egress.routes[]`: its type, default and errors.

use std::path::PathBuf;

use super::{bottle, bottle_errors};
use crate::host::HostPattern;
use crate::route::{
    ConnectTarget, Dlp, HeaderMatch, InboundDetector, OnMatch, OutboundDetector, PathMatch,
    PathMatchKind, Route, RouteAuth,
};

fn route(yaml: &str) -> Route {
    let parsed = bottle(&format!("egress:\n  routes:\n    - {yaml}\n"));
    parsed.routes.into_iter().next().expect("one route").value
}

fn route_errors(yaml: &str) -> Vec<String> {
    bottle_errors(&format!("egress:\n  routes:\n    - {yaml}\n"))
}

#[test]
fn route_defaults() {
    let parsed = route("host: Example.ORG.");
    assert_eq!(
        parsed,
        Route {
            host: HostPattern::Exact("example.org".into()),
            port: 443,
            auth: None,
            matches: Vec::new(),
            dlp: Dlp {
                outbound_detectors: OutboundDetector::ALL.to_vec(),
                inbound_detectors: InboundDetector::ALL.to_vec(),
                outbound_on_match: OnMatch::Supervise,
            },
            websocket: false,
            passthrough: false,
            connect: None,
            upstream_ca: None,
        }
    );
}

#[test]
fn route_all_keys() {
    let parsed = route(
        "{host: \"*.example.org\", port: 8443, auth: {token_ref: API, scheme: \"\", header: \
         x-api-key}, matches: [{paths: [{type: exact, value: /a}, {type: regex, value: \
         \"/v[0-9]+/.*\"}], methods: [GET], headers: [{name: X-Tenant, value: one}]}], dlp: \
         {outbound_detectors: [private_keys], inbound_detectors: false, outbound_on_match: \
         block}, websocket: true, connect: \"127.0.0.1:8080\", upstream_ca: /ca.pem}",
    );
    assert_eq!(parsed.host, HostPattern::Subdomains("example.org".into()));
    assert_eq!(parsed.port, 8443);
    assert_eq!(
        parsed.auth,
        Some(RouteAuth {
            token_ref: "API".into(),
            scheme: String::new(),
            header: "x-api-key".into()
        })
    );
    let entry = &parsed.matches[0];
    assert_eq!(
        entry.paths[0],
        PathMatch {
            kind: PathMatchKind::Exact,
            value: "/a".into()
        }
    );
    assert_eq!(entry.paths[1].kind, PathMatchKind::Regex);
    assert_eq!(entry.methods, ["GET"]);
    assert_eq!(
        entry.headers,
        [HeaderMatch {
            name: "x-tenant".into(),
            value: "one".into()
        }]
    );
    assert_eq!(
        parsed.dlp.outbound_detectors,
        [OutboundDetector::PrivateKeys]
    );
    assert!(parsed.dlp.inbound_detectors.is_empty());
    assert_eq!(parsed.dlp.outbound_on_match, OnMatch::Block);
    assert!(parsed.websocket);
    assert_eq!(
        parsed.connect,
        Some(ConnectTarget {
            host: "127.0.0.1".into(),
            port: 8080
        })
    );
    assert_eq!(parsed.upstream_ca, Some(PathBuf::from("/ca.pem")));
}

#[test]
fn auth_defaults() {
    let parsed = route("{host: a.example, auth: {token_ref: T}}");
    assert_eq!(
        parsed.auth,
        Some(RouteAuth {
            token_ref: "T".into(),
            scheme: "Bearer".into(),
            header: "Authorization".into()
        })
    );
}

#[test]
fn regex_paths_match_the_whole_path() {
    let parsed =
        route("{host: a.example, matches: [{paths: [{type: regex, value: \"/v[0-9]+\"}]}]}");
    let path = &parsed.matches[0].paths[0];
    assert!(path.matches("/v1"));
    assert!(!path.matches("/v1/extra"));
    assert!(!path.matches("/prefix/v1"));
    let parsed =
        route("{host: a.example, matches: [{paths: [{type: regex, value: \"(?m)/a$\"}]}]}");
    assert!(!parsed.matches[0].paths[0].matches("/a\n/b"));
}

#[test]
fn prefix_and_exact_paths() {
    let parsed = route(
        "{host: a.example, matches: [{paths: [{type: prefix, value: /api/}, {type: exact, value: /x}]}]}",
    );
    let paths = &parsed.matches[0].paths;
    assert!(paths[0].matches("/api/v1"));
    assert!(!paths[0].matches("/apix"));
    assert!(paths[1].matches("/x"));
    assert!(!paths[1].matches("/x/"));
}

#[test]
fn passthrough_route() {
    let parsed = route("{host: a.example, passthrough: true}");
    assert!(parsed.passthrough);
}

#[test]
fn host_errors() {
    assert_eq!(
        route_errors("host: user@example.org"),
        [
            "b.md:4: egress.routes[0].host: the host contains `@`; user names do not belong in a host"
        ]
    );
    assert_eq!(
        route_errors("host: \"example.org:8443\""),
        [
            "b.md:4: egress.routes[0].host: the host contains `:`; a port is set with `port`, and an \
          IPv6 address is written in brackets"
        ]
    );
    assert_eq!(
        route_errors("host: example.org/api"),
        [
            "b.md:4: egress.routes[0].host: the host contains a path or URL character (`/`, `\\`, \
          `?`, `#` or `%`); write only the host name"
        ]
    );
    assert_eq!(
        route_errors("host: \"ex\\u0000ample.org\""),
        [
            "b.md:4: egress.routes[0].host: the host contains the character U+0000; write only the \
          host name"
        ]
    );
    assert_eq!(
        route_errors("{port: 443}"),
        ["b.md:4: egress.routes[0]: missing required key `host`"]
    );
    assert_eq!(
        route_errors("{host: a.example, hots: b}"),
        ["b.md:4: egress.routes[0].hots: unknown key `hots`; did you mean `host`?"]
    );
}

#[test]
fn international_host_becomes_a_label() {
    assert_eq!(
        route("host: Bücher.example").host,
        HostPattern::Exact("xn--bcher-kva.example".into())
    );
}

#[test]
fn port_errors() {
    assert_eq!(
        route_errors("{host: a.example, port: 0}"),
        ["b.md:4: egress.routes[0].port: 0 is out of range; expected 1 to 65535"]
    );
    assert_eq!(
        route_errors("{host: a.example, port: 65536}"),
        ["b.md:4: egress.routes[0].port: 65536 is out of range; expected 1 to 65535"]
    );
    assert_eq!(
        route_errors("{host: a.example, port: \"443\"}"),
        ["b.md:4: egress.routes[0].port: expected an integer, found a string"]
    );
}

#[test]
fn auth_errors() {
    assert_eq!(
        route_errors("{host: a.example, auth: {scheme: Bearer}}"),
        ["b.md:4: egress.routes[0].auth: missing required key `token_ref`"]
    );
    assert_eq!(
        route_errors("{host: a.example, auth: {token_ref: T, header: \"bad header\"}}"),
        ["b.md:4: egress.routes[0].auth.header: invalid header name \"bad header\""]
    );
    assert_eq!(
        route_errors("{host: a.example, auth: {token_ref: T, scheme: \"Bearer x\"}}"),
        [
            "b.md:4: egress.routes[0].auth.scheme: invalid scheme \"Bearer x\"; use a single word \
          such as `Bearer`, or \"\""
        ]
    );
    assert_eq!(
        route_errors("{host: a.example, port: 80, auth: {token_ref: T}}"),
        [
            "b.md:4: egress.routes[0]: a route for port 80 carries plain HTTP and never injects a \
          token; remove `auth` or use port 443"
        ]
    );
}

#[test]
fn matches_errors() {
    assert_eq!(
        route_errors("{host: a.example, matches: []}"),
        [
            "b.md:4: egress.routes[0].matches: `matches` is empty; remove it to allow every path and \
          method, or add an entry"
        ]
    );
    assert_eq!(
        route_errors("{host: a.example, matches: [{}]}"),
        [
            "b.md:4: egress.routes[0].matches[0]: an entry of `matches` needs `paths`, `methods` or \
          `headers`"
        ]
    );
    assert_eq!(
        route_errors("{host: a.example, matches: [{paths: [{type: glob, value: /a}]}]}"),
        [
            "b.md:4: egress.routes[0].matches[0].paths[0].type: invalid path type \"glob\"; expected \
          `exact`, `prefix` or `regex`"
        ]
    );
    assert_eq!(
        route_errors("{host: a.example, matches: [{paths: [{type: prefix, value: api}]}]}"),
        [
            "b.md:4: egress.routes[0].matches[0].paths[0].value: the path \"api\" must start with `/`"
        ]
    );
    assert_eq!(
        route_errors("{host: a.example, matches: [{paths: [{type: regex, value: \"(\"}]}]}"),
        [
            "b.md:4: egress.routes[0].matches[0].paths[0].value: invalid regular expression: unclosed \
          group"
        ]
    );
    assert_eq!(
        route_errors("{host: a.example, matches: [{methods: [get, \"GE T\"]}]}"),
        [
            "b.md:4: egress.routes[0].matches[0].methods[0]: invalid method \"get\"; methods are \
             upper case: `GET`",
            "b.md:4: egress.routes[0].matches[0].methods[1]: invalid method \"GE T\"",
        ]
    );
    assert_eq!(
        route_errors("{host: a.example, matches: [{headers: [{name: X}]}]}"),
        ["b.md:4: egress.routes[0].matches[0].headers[0]: missing required key `value`"]
    );
    assert_eq!(
        route_errors("{host: a.example, matches: [{path: []}]}"),
        ["b.md:4: egress.routes[0].matches[0].path: unknown key `path`; did you mean `paths`?"]
    );
}

#[test]
fn dlp_errors() {
    assert_eq!(
        route_errors("{host: a.example, dlp: {outbound_detectors: [secrets]}}"),
        [
            "b.md:4: egress.routes[0].dlp.outbound_detectors[0]: unknown detector \"secrets\"; \
          expected `known_secrets`, `token_patterns`, `private_keys`"
        ]
    );
    assert_eq!(
        route_errors("{host: a.example, dlp: {inbound_detectors: true}}"),
        [
            "b.md:4: egress.routes[0].dlp.inbound_detectors: expected a list of detectors or \
          `false`; omit the key to run them all"
        ]
    );
    assert_eq!(
        route_errors("{host: a.example, dlp: {outbound_on_match: allow}}"),
        [
            "b.md:4: egress.routes[0].dlp.outbound_on_match: invalid value \"allow\"; expected \
          `supervise`, `redact` or `block`"
        ]
    );
}

#[test]
fn passthrough_conflicts() {
    assert_eq!(
        route_errors("{host: a.example, passthrough: true, auth: {token_ref: T}}"),
        [
            "b.md:4: egress.routes[0]: `passthrough: true` tunnels TLS without reading it, so `auth` \
          cannot apply; remove one of them"
        ]
    );
    assert_eq!(
        route_errors("{host: a.example, passthrough: on}"),
        ["b.md:4: egress.routes[0].passthrough: expected true or false, found the string \"on\""]
    );
}

#[test]
fn connect_errors() {
    assert_eq!(
        route_errors("{host: a.example, connect: \"10.0.0.1\"}"),
        [
            "b.md:4: egress.routes[0].connect: invalid target \"10.0.0.1\": no port; expected \
          `address:port`"
        ]
    );
    assert_eq!(
        route_errors("{host: a.example, connect: \"10.0.0.1:0\"}"),
        [
            "b.md:4: egress.routes[0].connect: invalid target \"10.0.0.1:0\": the port must be 1 to \
          65535; expected `address:port`"
        ]
    );
    assert_eq!(
        route("{host: a.example, connect: \"[::1]:8443\"}")
            .connect
            .unwrap()
            .host,
        "[::1]"
    );
    assert_eq!(
        route("{host: a.example, connect: \"Gateway.internal:80\"}")
            .connect
            .unwrap()
            .host,
        "gateway.internal"
    );
}

#[test]
fn duplicate_routes_in_one_file() {
    assert_eq!(
        bottle_errors(
            "egress:\n  routes:\n    - host: a.example\n    - host: A.example.\n      port: 443\n"
        ),
        [
            "b.md:5: egress.routes[1]: a second route for a.example port 443; merge it with routes[0]"
        ]
    );
    let parsed =
        bottle("egress:\n  routes:\n    - host: a.example\n    - {host: a.example, port: 80}\n");
    assert_eq!(parsed.routes.len(), 2);
}

#[test]
fn boolean_and_path_keys() {
    assert_eq!(
        route_errors("{host: a.example, websocket: \"true\"}"),
        ["b.md:4: egress.routes[0].websocket: expected true or false, found the string \"true\""]
    );
    let parsed = crate::file::parse_bottle(
        std::path::Path::new("/config/bottles/b.md"),
        "---\negress:\n  routes:\n    - {host: a.example, upstream_ca: certs/ca.pem}\n---\n",
    )
    .unwrap();
    assert_eq!(
        parsed.routes[0].value.upstream_ca,
        Some(PathBuf::from("/config/bottles/certs/ca.pem"))
    );
}

#[test]
fn header_match_errors() {
    assert_eq!(
        route_errors("{host: a.example, matches: [{headers: [{name: \"x y\", value: v}]}]}"),
        ["b.md:4: egress.routes[0].matches[0].headers[0].name: invalid header name \"x y\""]
    );
}

#[test]
fn routes_must_be_a_list_of_maps() {
    assert_eq!(
        bottle_errors("egress:\n  routes: {host: a.example}\n"),
        ["b.md:3: egress.routes: expected a list, found a map"]
    );
    assert_eq!(
        bottle_errors("egress:\n  routes: [a.example]\n"),
        ["b.md:3: egress.routes[0]: expected a map, found a string"]
    );
}
