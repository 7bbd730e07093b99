//! Responses the proxy writes itself: refusals and upstream errors. They carry
//! `X-Bottle-Decision` and a body starting with `bottle: `, so the agent can tell them
//! from an upstream's response, and they never echo request headers.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

/// Name of the header that marks the proxy's own responses.
pub const DECISION_HEADER: &str = "x-bottle-decision";

/// The body type of every response the proxy returns.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Builds the proxy's own response: `status`, `X-Bottle-Decision: <kind>; rule=<rule>`,
/// and a text body `bottle: <message>`.
pub fn own_response(
    status: StatusCode,
    kind: &str,
    rule: &str,
    message: &str,
) -> Response<ProxyBody> {
    let body = format!("bottle: {message}\n");
    let decision = HeaderValue::from_str(&format!("{kind}; rule={rule}"))
        .unwrap_or_else(|_| HeaderValue::from_static("deny; rule=invalid"));
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(http::header::CACHE_CONTROL, "no-store")
        .header(DECISION_HEADER, decision)
        .body(full(body))
        .expect("status and headers are valid")
}

/// Builds a 403 refusal.
pub fn deny(rule: &str, reason: &str) -> Response<ProxyBody> {
    own_response(StatusCode::FORBIDDEN, "deny", rule, reason)
}

/// Wraps bytes into the proxy's body type.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}
