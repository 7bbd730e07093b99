//! Header rewriting between the agent and the upstream.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Hop-by-hop headers (RFC 9110, section 7.6.1) and proxy credentials, never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers that ask a server to treat the request as another method, removed so a method
/// rule cannot be sidestepped.
const METHOD_OVERRIDES: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Removes hop-by-hop headers, the headers that `Connection` names, and method override
/// headers. `TE: trailers` is kept because HTTP/2 upstreams (gRPC) need it.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }

    let keep_te = headers
        .get_all(header::TE)
        .iter()
        .all(|value| value.as_bytes().eq_ignore_ascii_case(b"trailers"))
        && headers.contains_key(header::TE);
    for name in HOP_BY_HOP.iter().chain(METHOD_OVERRIDES) {
        if *name == "te" && keep_te {
            continue;
        }
        headers.remove(*name);
    }
}

/// Removes every credential the agent sent on a route whose token replaces them: the
/// route's header, `Authorization`, `Proxy-Authorization` and `Cookie`.
pub fn remove_agent_credentials(headers: &mut HeaderMap, header_name: &HeaderName) {
    headers.remove(header_name);
    headers.remove(header::AUTHORIZATION);
    headers.remove(header::PROXY_AUTHORIZATION);
    headers.remove(header::COOKIE);
}

/// Replaces every credential the agent sent with the route's token: removes them as
/// [`remove_agent_credentials`] does, then sets the route's header to `value`.
pub fn inject_token(headers: &mut HeaderMap, header_name: &HeaderName, value: HeaderValue) {
    remove_agent_credentials(headers, header_name);
    headers.insert(header_name.clone(), value);
}

/// Builds the header value `<scheme> <token>`, or the bare token when `scheme` is empty,
/// marked sensitive so HTTP/2 never indexes it.
pub fn token_value(
    scheme: &str,
    token: &str,
) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    let text = if scheme.is_empty() {
        token.to_owned()
    } else {
        format!("{scheme} {token}")
    };
    let mut value = HeaderValue::from_str(&text)?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_listed_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            HeaderValue::from_static("close, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("proxy-authorization", HeaderValue::from_static("Basic abc"));
        headers.insert("x-http-method-override", HeaderValue::from_static("DELETE"));
        headers.insert("upgrade", HeaderValue::from_static("h2c"));
        headers.insert("te", HeaderValue::from_static("trailers"));
        headers.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut headers);
        assert!(!headers.contains_key("connection"));
        assert!(!headers.contains_key("x-secret-hop"));
        assert!(!headers.contains_key("proxy-authorization"));
        assert!(!headers.contains_key("x-http-method-override"));
        assert!(!headers.contains_key("upgrade"));
        assert_eq!(
            headers.get("te").map(|v| v.as_bytes()),
            Some(&b"trailers"[..])
        );
        assert!(headers.contains_key("accept"));
    }

    #[test]
    fn injection_replaces_agent_credentials() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer agent"));
        headers.insert("cookie", HeaderValue::from_static("sid=agent"));
        headers.append("x-api-key", HeaderValue::from_static("agent-1"));
        headers.append("x-api-key", HeaderValue::from_static("agent-2"));
        let name = HeaderName::from_static("x-api-key");
        inject_token(&mut headers, &name, token_value("", "real").expect("valid"));
        assert!(!headers.contains_key("authorization"));
        assert!(!headers.contains_key("cookie"));
        let values: Vec<_> = headers.get_all("x-api-key").iter().collect();
        assert_eq!(values, vec![&HeaderValue::from_static("real")]);
    }

    #[test]
    fn token_value_uses_scheme() {
        assert_eq!(token_value("Bearer", "t").expect("valid"), "Bearer t");
        assert_eq!(token_value("", "t").expect("valid"), "t");
        assert!(token_value("Bearer", "a\r\nb").is_err());
    }
}
