//! Host names in routes, `connect` targets and git URLs.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Serialize, Serializer};

/// The host a route applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    /// Exactly this host: lower case, no trailing dot, international names as A-labels.
    /// IPv4 literals are dotted quads and IPv6 literals are bracketed (`[::1]`).
    Exact(String),
    /// Any subdomain of this name (written `*.example.org`), but not the name itself.
    Subdomains(String),
}

impl HostPattern {
    /// Parses and normalizes a route host: an exact host or `*.suffix`.
    pub fn parse(input: &str) -> Result<HostPattern, String> {
        if let Some(suffix) = input.strip_prefix("*.") {
            let suffix = normalize_host(suffix)?;
            if suffix.starts_with('[') || suffix.parse::<Ipv4Addr>().is_ok() {
                return Err(
                    "a wildcard host needs a domain name after `*.`, not an IP address".into(),
                );
            }
            return Ok(HostPattern::Subdomains(suffix));
        }
        if input.contains('*') {
            return Err("`*` is allowed only as a whole first label, as in `*.example.org`".into());
        }
        normalize_host(input).map(HostPattern::Exact)
    }

    /// Returns whether `host` (already normalized) matches this pattern.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(exact) => host == exact,
            HostPattern::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(host) => formatter.write_str(host),
            HostPattern::Subdomains(suffix) => write!(formatter, "*.{suffix}"),
        }
    }
}

impl Serialize for HostPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Normalizes a host name or IP literal: lower case, no trailing dot, A-labels.
/// Rejects userinfo, ports, paths, backslashes, whitespace and control characters.
pub fn normalize_host(input: &str) -> Result<String, String> {
    if input.is_empty() {
        return Err("the host is empty".into());
    }
    if let Some(bad) = input.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "the host contains the character U+{:04X}; write only the host name",
            u32::from(bad)
        ));
    }
    if input.contains('@') {
        return Err("the host contains `@`; user names do not belong in a host".into());
    }
    if input.contains(['/', '\\', '?', '#', '%']) {
        return Err(
            "the host contains a path or URL character (`/`, `\\`, `?`, `#` or `%`); \
                    write only the host name"
                .into(),
        );
    }

    if input.contains(':') && !input.starts_with('[') {
        return Err(
            "the host contains `:`; a port is set with `port`, and an IPv6 address \
                    is written in brackets"
                .into(),
        );
    }

    // The proxy normalizes request hosts with the same parser, so a route host and a
    // request host can never normalize differently.
    let host = bottle_policy::Host::parse(input)
        .map_err(|err| format!("`{input}` is not a valid host: {err}"))?;

    // Requests may name hosts with underscores, but a route must be a plain DNS name
    // (letters, digits and inner hyphens), so that it cannot be mistaken for another.
    if let Some(domain) = host.domain() {
        let plain = domain.split('.').all(|label| {
            !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        });
        if !plain {
            return Err(format!("`{input}` is not a valid host name"));
        }
    }
    Ok(host.to_authority_host())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_host_accepts_and_normalizes() {
        assert_eq!(normalize_host("Example.ORG").unwrap(), "example.org");
        assert_eq!(normalize_host("example.org.").unwrap(), "example.org");
        assert_eq!(
            normalize_host("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            normalize_host("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(normalize_host("127.0.0.1").unwrap(), "127.0.0.1");
        assert_eq!(normalize_host("[::1]").unwrap(), "[::1]");
        assert_eq!(normalize_host("[0:0::1]").unwrap(), "[::1]");
        assert_eq!(normalize_host("localhost").unwrap(), "localhost");
    }

    #[test]
    fn normalize_host_rejects_hostile_input() {
        let cases = [
            ("", "the host is empty"),
            (
                "user@example.org",
                "the host contains `@`; user names do not belong in a host",
            ),
            (
                "example.org:443",
                "the host contains `:`; a port is set with `port`, and an IPv6 address is \
                 written in brackets",
            ),
            (
                "example.org/path",
                "the host contains a path or URL character (`/`, `\\`, `?`, `#` or `%`); \
                 write only the host name",
            ),
            (
                "example.org\\evil",
                "the host contains a path or URL character (`/`, `\\`, `?`, `#` or `%`); \
                 write only the host name",
            ),
            (
                "exa\0mple.org",
                "the host contains the character U+0000; write only the host name",
            ),
            (
                "a b",
                "the host contains the character U+0020; write only the host name",
            ),
            (
                "1.2.3.256",
                "`1.2.3.256` is not a valid host: host looks numeric but is not a dotted-quad IPv4 \
                 address",
            ),
            (
                "1.2.3",
                "`1.2.3` is not a valid host: host looks numeric but is not a dotted-quad IPv4 \
                 address",
            ),
            (
                "under_score.org",
                "`under_score.org` is not a valid host name",
            ),
            ("-lead.org", "`-lead.org` is not a valid host name"),
            (
                "a..b",
                "`a..b` is not a valid host: host has an empty label",
            ),
            (
                "xn--zz.org",
                "`xn--zz.org` is not a valid host: host is not a valid internationalized domain \
                 name",
            ),
            (
                "[not-ip]",
                "`[not-ip]` is not a valid host: host is not a valid IPv6 literal",
            ),
        ];
        for (input, message) in cases {
            assert_eq!(
                normalize_host(input),
                Err(message.to_string()),
                "input {input:?}"
            );
        }
        let long = format!("{}.org", "a".repeat(64));
        assert!(normalize_host(&long).is_err());
    }

    #[test]
    fn host_pattern_wildcards() {
        let pattern = HostPattern::parse("*.Example.org").unwrap();
        assert_eq!(pattern, HostPattern::Subdomains("example.org".into()));
        assert_eq!(pattern.to_string(), "*.example.org");
        assert!(pattern.matches("api.example.org"));
        assert!(pattern.matches("a.b.example.org"));
        assert!(!pattern.matches("example.org"));
        assert!(!pattern.matches("badexample.org"));
        assert_eq!(
            HostPattern::parse("a.*.org"),
            Err("`*` is allowed only as a whole first label, as in `*.example.org`".into())
        );
        assert_eq!(
            HostPattern::parse("*.10.0.0.1"),
            Err("a wildcard host needs a domain name after `*.`, not an IP address".into())
        );
        assert!(HostPattern::parse("*").is_err());
        assert!(HostPattern::parse("*.").is_err());
    }
}
