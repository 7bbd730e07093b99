//! Refusal of DNS over HTTPS and DNS over TLS on every route: a resolver reached through
//! an allowed host would let the agent resolve (and so leak data into) any name.
//!
//! Limits: a DoH server on an unlisted host name and path that answers ordinary
//! `application/json` is not recognised; it is still refused unless a route allows its
//! host.

use http::HeaderMap;
use http::header::{ACCEPT, CONTENT_TYPE};

/// Rule id of DoH and DoT refusals.
pub(crate) const DNS_RULE: &str = "dns-over-https";

/// Port of DNS over TLS (and DNS over QUIC).
const DOT_PORT: u16 = 853;

/// Media types of DoH requests and responses.
const DNS_MEDIA_TYPES: &[&str] = &["application/dns-message", "application/dns-json"];

/// Public resolvers that serve DoH or DoT, refused at CONNECT even when a route allows them.
const RESOLVER_HOSTS: &[&str] = &[
    "dns.google",
    "dns.google.com",
    "8888.google",
    "cloudflare-dns.com",
    "mozilla.cloudflare-dns.com",
    "security.cloudflare-dns.com",
    "family.cloudflare-dns.com",
    "one.one.one.one",
    "1dot1dot1dot1.cloudflare-dns.com",
    "dns.quad9.net",
    "dns9.quad9.net",
    "dns10.quad9.net",
    "dns11.quad9.net",
    "doh.opendns.com",
    "dns.opendns.com",
    "doh.familyshield.opendns.com",
    "dns.adguard.com",
    "dns.adguard-dns.com",
    "unfiltered.adguard-dns.com",
    "family.adguard-dns.com",
    "dns.nextdns.io",
    "doh.cleanbrowsing.org",
    "doh.mullvad.net",
    "dns.mullvad.net",
    "doh.dns.sb",
    "dns.twnic.tw",
    "doh.li",
    "dns.alidns.com",
    "doh.pub",
    "dns.controld.com",
    "freedns.controld.com",
    "doh.xfinity.com",
    "dns.switch.ch",
    "use-application-dns.net",
];

/// Public resolver addresses, refused at CONNECT when given as IP literals.
const RESOLVER_IPS: &[&str] = &[
    "8.8.8.8",
    "8.8.4.4",
    "1.1.1.1",
    "1.0.0.1",
    "9.9.9.9",
    "149.112.112.112",
    "208.67.222.222",
    "208.67.220.220",
    "94.140.14.14",
    "94.140.15.15",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
    "2606:4700:4700::1111",
    "2606:4700:4700::1001",
    "2620:fe::fe",
    "2620:fe::9",
];

/// Returns why a CONNECT (or plain request) to `host:port` is DNS traffic, if it is.
/// `host` is already normalized (lower case, no trailing dot, IPv6 without brackets).
pub(crate) fn connect_reason(host: &str, port: u16) -> Option<String> {
    if port == DOT_PORT {
        return Some("port 853 is DNS over TLS, which is never allowed".to_owned());
    }
    let known = RESOLVER_HOSTS
        .iter()
        .any(|name| host == *name || host.strip_suffix(name).is_some_and(|h| h.ends_with('.')));
    if known || RESOLVER_IPS.contains(&host) {
        return Some(format!(
            "{host} is a public DNS resolver; DNS over HTTPS and TLS are never allowed"
        ));
    }
    None
}

/// Returns why a request is DoH, if its path, `Content-Type` or `Accept` says so. `path`
/// is the canonical path.
pub(crate) fn request_reason(path: &str, headers: &HeaderMap) -> Option<String> {
    let lower = path.to_ascii_lowercase();
    let trimmed = lower.trim_end_matches('/');
    // `/dns-query` is specific to DoH wherever it sits; `/resolve` only as the whole
    // path, because APIs use it as a last segment for other things.
    if trimmed == "/resolve" || trimmed.ends_with("/dns-query") {
        let endpoint = if trimmed == "/resolve" {
            "/resolve"
        } else {
            "/dns-query"
        };
        return Some(format!(
            "path {endpoint} is a DNS-over-HTTPS endpoint, which is never allowed"
        ));
    }
    for name in [CONTENT_TYPE, ACCEPT] {
        for value in headers.get_all(&name) {
            let text = String::from_utf8_lossy(value.as_bytes()).to_ascii_lowercase();
            if let Some(media) = DNS_MEDIA_TYPES.iter().find(|m| text.contains(*m)) {
                return Some(format!(
                    "{name} {media} is DNS over HTTPS, which is never allowed"
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn refuses_resolvers_and_dot() {
        assert!(connect_reason("dns.google", 443).is_some());
        assert!(connect_reason("chrome.cloudflare-dns.com", 443).is_some());
        assert!(connect_reason("1.1.1.1", 443).is_some());
        assert!(connect_reason("2606:4700:4700::1111", 443).is_some());
        assert!(connect_reason("api.example.org", 853).is_some());
        // Positive controls: look-alikes and ordinary hosts pass.
        assert!(connect_reason("notdns.google.example", 443).is_none());
        assert!(connect_reason("xdns.google", 443).is_none());
        assert!(connect_reason("api.example.org", 443).is_none());
    }

    #[test]
    fn refuses_doh_paths_and_media_types() {
        let empty = HeaderMap::new();
        assert!(request_reason("/dns-query", &empty).is_some());
        assert!(request_reason("/RESOLVE/", &empty).is_some());
        assert!(request_reason("/proxy/dns-query", &empty).is_some());
        let mut accept = HeaderMap::new();
        accept.insert(
            ACCEPT,
            HeaderValue::from_static("text/html, Application/DNS-JSON"),
        );
        assert!(request_reason("/x", &accept).is_some());
        let mut content = HeaderMap::new();
        content.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/dns-message"),
        );
        assert!(request_reason("/x", &content).is_some());
        // Positive control: an ordinary request passes.
        assert!(request_reason("/v1/resolver-status", &empty).is_none());
        assert!(request_reason("/v1/me", &empty).is_none());
        assert!(request_reason("/v1/issues/1/resolve", &empty).is_none());
    }
}
