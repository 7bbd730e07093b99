//! The magic host `bottle.internal`, answered by the proxy itself: it lists the egress
//! routes so the agent can see what it may reach. It shows whether a token is injected
//! and in which header, never a token value.

use bottle_policy::{CompiledRoute, Dlp, Match};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::response::{ProxyBody, full, own_response};

/// The host name the proxy serves itself, over plain HTTP or through CONNECT.
pub const MAGIC_HOST: &str = "bottle.internal";

/// Rule id of the magic host's responses in the audit log.
pub(crate) const MAGIC_RULE: &str = "bottle.internal";

#[derive(Serialize)]
struct RouteView<'a> {
    rule: &'a str,
    host: &'a str,
    port: u16,
    /// `https` through CONNECT, or `http` on port 80.
    scheme: &'static str,
    /// Request rules; empty allows every path and method.
    matches: &'a [Match],
    /// Header the proxy fills with a token, if any.
    token_header: Option<&'a str>,
    websocket: bool,
    dlp: &'a Dlp,
}

#[derive(Serialize)]
struct Table<'a> {
    bottle: &'a str,
    routes: Vec<RouteView<'a>>,
    note: &'static str,
}

/// Answers a request to the magic host: `/` and `/routes` give the route table as JSON.
pub(crate) fn answer(slug: &str, routes: &[CompiledRoute], path: &str) -> Response<ProxyBody> {
    if path != "/" && path != "/routes" {
        return own_response(
            StatusCode::NOT_FOUND,
            "deny",
            MAGIC_RULE,
            "bottle.internal serves only / and /routes",
        );
    }
    let table = Table {
        bottle: slug,
        routes: routes.iter().map(view).collect(),
        note: "every other host is refused; tokens are added by the proxy and never shown",
    };
    let body = serde_json::to_vec_pretty(&table).expect("the route table always serializes");
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, "no-store")
        .header(crate::DECISION_HEADER, "allow; rule=bottle.internal")
        .body(full(body))
        .expect("static response parts are valid")
}

fn view(route: &CompiledRoute) -> RouteView<'_> {
    RouteView {
        rule: &route.rule_id,
        host: &route.route.host,
        port: route.route.port,
        scheme: if route.route.port == 80 {
            "http"
        } else {
            "https"
        },
        matches: &route.route.matches,
        token_header: route.route.auth.as_ref().map(|auth| auth.header.as_str()),
        websocket: route.route.websocket,
        dlp: &route.route.dlp,
    }
}
