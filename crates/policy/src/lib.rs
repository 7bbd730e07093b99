//! Pure egress decisions for the bottle's sidecar proxy: host normalization, path
//! canonicalization, route matching and upstream address checks. Nothing here does I/O,
//! so every rule can be tested without sockets.
//!
//! Every host the proxy receives goes through [`Host::parse`] and every path through
//! [`canonicalize_path`]; [`Policy`] then decides, first for the connection
//! ([`Policy::decide_connect`]), then for each request on it ([`Policy::decide_request`]).

mod address;
mod decide;
mod dlp;
mod host;
mod path;
mod route;

pub use address::forbidden_upstream_reason;
pub use decide::{
    DEFAULT_DENY_RULE, Decision, Policy, RequestInfo, decide_connect, decide_request,
};
pub use dlp::{Dlp, InboundDetector, OnMatch, OutboundDetector};
pub use host::{Host, HostError, parse_authority};
pub use path::{PathError, canonicalize_path, query_keys_only};
pub use route::{
    Auth, CompiledRoute, HeaderRule, HostPattern, Match, PathKind, PathRule, Route, RouteError,
    parse_host_pattern,
};
