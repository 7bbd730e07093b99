//! The one host parser: every place a host appears (CONNECT authority, TLS SNI, `Host`
//! header, `:authority`, absolute-form URI, route patterns) goes through [`Host::parse`],
//! so two parts of the proxy can never disagree about which host a request names.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Maximum length of a DNS name in presentation form, without the trailing dot.
const MAX_NAME_LEN: usize = 253;

/// Maximum length of one DNS label.
const MAX_LABEL_LEN: usize = 63;

/// A normalized host: a lower-case ASCII DNS name (international names as A-labels,
/// no trailing dot) or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// A DNS name in canonical form.
    Domain(String),
    /// An IP literal. IPv4-mapped IPv6 literals (`::ffff:a.b.c.d`) are stored as IPv4.
    Ip(IpAddr),
}

/// Rejection reason of a host or authority.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The host is empty.
    #[error("host is empty")]
    Empty,
    /// The host contains a byte that no host may contain.
    #[error("host contains {0}, which is not allowed in a host")]
    ForbiddenCharacter(&'static str),
    /// The host has an empty label, such as `a..b` or a leading dot.
    #[error("host has an empty label")]
    EmptyLabel,
    /// A label or the whole name is longer than DNS allows.
    #[error("host is longer than DNS allows (63 bytes a label, 253 in all)")]
    TooLong,
    /// IDNA processing failed, so the name has no valid A-label form.
    #[error("host is not a valid internationalized domain name")]
    InvalidIdna,
    /// The last label is numeric, but the whole host is not a dotted-quad IPv4 address.
    /// Resolvers read forms such as `127.1` or `0x7f.1` as addresses, so they are refused.
    #[error("host looks numeric but is not a dotted-quad IPv4 address")]
    AmbiguousNumeric,
    /// A bracketed IPv6 literal did not parse.
    #[error("host is not a valid IPv6 literal")]
    InvalidIpv6,
    /// The authority has no port, or a port that is not a number from 1 to 65535.
    #[error("authority has a missing or invalid port")]
    InvalidPort,
}

impl Host {
    /// Parses and normalizes a host without a port.
    ///
    /// IPv6 literals may be bracketed or bare. DNS names are lower-cased, lose one
    /// trailing dot and are converted to A-labels.
    pub fn parse(input: &str) -> Result<Host, HostError> {
        check_characters(input)?;

        if let Some(inner) = input.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(HostError::InvalidIpv6)?;
            let ip: Ipv6Addr = inner.parse().map_err(|_| HostError::InvalidIpv6)?;
            return Ok(Host::from_ip(IpAddr::V6(ip)));
        }
        if let Ok(ip) = input.parse::<Ipv6Addr>() {
            return Ok(Host::from_ip(IpAddr::V6(ip)));
        }

        let without_dot = input.strip_suffix('.').unwrap_or(input);
        if without_dot.is_empty() {
            return Err(HostError::Empty);
        }
        if without_dot.split('.').any(str::is_empty) {
            return Err(HostError::EmptyLabel);
        }

        let ascii = idna::domain_to_ascii_cow(without_dot.as_bytes(), idna::AsciiDenyList::URL)
            .map_err(|_| HostError::InvalidIdna)?;
        let ascii = ascii.to_ascii_lowercase();
        check_labels(&ascii)?;

        let last_label = ascii.rsplit('.').next().unwrap_or_default();
        if looks_numeric(last_label) {
            return match ascii.parse::<Ipv4Addr>() {
                Ok(ip) if is_dotted_quad(&ascii) => Ok(Host::Ip(IpAddr::V4(ip))),
                _ => Err(HostError::AmbiguousNumeric),
            };
        }

        Ok(Host::Domain(ascii))
    }

    /// Builds a host from an IP address, folding IPv4-mapped IPv6 addresses to IPv4.
    pub fn from_ip(ip: IpAddr) -> Host {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Host::Ip(IpAddr::V4(v4)),
                None => Host::Ip(IpAddr::V6(v6)),
            },
            IpAddr::V4(_) => Host::Ip(ip),
        }
    }

    /// Returns true for IP literals.
    pub fn is_ip(&self) -> bool {
        matches!(self, Host::Ip(_))
    }

    /// Returns the DNS name, or `None` for an IP literal.
    pub fn domain(&self) -> Option<&str> {
        match self {
            Host::Domain(name) => Some(name),
            Host::Ip(_) => None,
        }
    }

    /// Formats the host as it appears in an authority: IPv6 literals in brackets.
    pub fn to_authority_host(&self) -> String {
        match self {
            Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(name) => f.write_str(name),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Splits `host[:port]` (IPv6 in brackets) and normalizes the host.
///
/// `default_port` is used when the authority has no port; with `None` a port is
/// required. Userinfo (`user@host`) is rejected by the host check.
pub fn parse_authority(input: &str, default_port: Option<u16>) -> Result<(Host, u16), HostError> {
    check_characters(input)?;

    let (host_part, port_part) = if input.starts_with('[') {
        let close = input.find(']').ok_or(HostError::InvalidIpv6)?;
        let rest = &input[close + 1..];
        match rest.strip_prefix(':') {
            Some(port) => (&input[..=close], Some(port)),
            None if rest.is_empty() => (&input[..=close], None),
            None => return Err(HostError::InvalidIpv6),
        }
    } else {
        match input.rsplit_once(':') {
            Some((host, port)) => {
                if host.contains(':') {
                    // A bare IPv6 literal without brackets cannot carry a port.
                    return Err(HostError::InvalidIpv6);
                }
                (host, Some(port))
            }
            None => (input, None),
        }
    };

    let port = match port_part {
        Some(text) => parse_port(text)?,
        None => default_port.ok_or(HostError::InvalidPort)?,
    };
    Ok((Host::parse(host_part)?, port))
}

/// Parses a decimal port from 1 to 65535, digits only (no sign, no spaces).
fn parse_port(text: &str) -> Result<u16, HostError> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::InvalidPort);
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(HostError::InvalidPort),
        Ok(port) => Ok(port),
    }
}

/// Rejects bytes that no host may contain in any of its sources.
fn check_characters(input: &str) -> Result<(), HostError> {
    if input.is_empty() {
        return Err(HostError::Empty);
    }
    for c in input.chars() {
        let description = match c {
            '\0' => "a NUL byte",
            c if c.is_control() => "a control character",
            c if c.is_whitespace() => "whitespace",
            '@' => "userinfo (`@`)",
            '\\' => "a backslash",
            '%' => "a percent sign",
            '/' | '?' | '#' => "a URL delimiter",
            _ => continue,
        };
        return Err(HostError::ForbiddenCharacter(description));
    }
    Ok(())
}

/// Checks the A-label form: label lengths and the characters DNS names use.
fn check_labels(ascii: &str) -> Result<(), HostError> {
    if ascii.len() > MAX_NAME_LEN {
        return Err(HostError::TooLong);
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(HostError::TooLong);
        }
        // Underscores appear in some real names (service labels), so they are allowed.
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(HostError::ForbiddenCharacter(
                "a character not allowed in DNS names",
            ));
        }
    }
    Ok(())
}

/// Returns true for a label that a URL parser or resolver would read as a number:
/// decimal digits, or `0x` followed by hex digits.
fn looks_numeric(label: &str) -> bool {
    let hex = label.strip_prefix("0x");
    match hex {
        Some(digits) => digits.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// Returns true for exactly four decimal parts without leading zeros.
fn is_dotted_quad(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|part| {
            !part.is_empty()
                && part.len() <= 3
                && part.bytes().all(|b| b.is_ascii_digit())
                && (part.len() == 1 || !part.starts_with('0'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(text: &str) -> Host {
        Host::Domain(text.to_owned())
    }

    #[test]
    fn normalizes_case_and_trailing_dot() {
        assert_eq!(
            Host::parse("Allowed.EXAMPLE."),
            Ok(domain("allowed.example"))
        );
    }

    #[test]
    fn rejects_double_trailing_dot() {
        assert_eq!(Host::parse("allowed.example.."), Err(HostError::EmptyLabel));
        assert_eq!(Host::parse(".allowed.example"), Err(HostError::EmptyLabel));
        assert_eq!(Host::parse("."), Err(HostError::Empty));
    }

    #[test]
    fn converts_idn_to_a_labels() {
        // Cyrillic "а" (U+0430) instead of the Latin "a".
        let host = Host::parse("\u{0430}llowed.example").expect("valid IDN");
        let name = host.domain().expect("a domain");
        assert!(name.starts_with("xn--"), "{name}");
        assert_ne!(name, "allowed.example");
        assert_eq!(Host::parse(name), Ok(host.clone()));
    }

    #[test]
    fn rejects_invalid_a_label() {
        assert_eq!(Host::parse("xn--a.example"), Err(HostError::InvalidIdna));
    }

    #[test]
    fn rejects_forbidden_characters() {
        for input in [
            "a\0.example",
            "a\r.example",
            "a .example",
            "user@allowed.example",
            "allowed.example\\@evil.example",
            "allowed%2eexample",
            "a/b",
            "a#b",
            "a\t.example",
        ] {
            assert!(
                matches!(Host::parse(input), Err(HostError::ForbiddenCharacter(_))),
                "{input:?}"
            );
        }
    }

    #[test]
    fn recognises_ip_literals() {
        assert_eq!(
            Host::parse("127.0.0.1"),
            Ok(Host::Ip("127.0.0.1".parse().expect("ip")))
        );
        assert_eq!(
            Host::parse("[::1]"),
            Ok(Host::Ip("::1".parse().expect("ip")))
        );
        assert_eq!(Host::parse("::1"), Ok(Host::Ip("::1".parse().expect("ip"))));
        assert_eq!(
            Host::parse("[::ffff:10.0.0.1]"),
            Ok(Host::Ip("10.0.0.1".parse().expect("ip")))
        );
    }

    #[test]
    fn rejects_ambiguous_numeric_hosts() {
        for input in [
            "127.1",
            "0x7f.0.0.1",
            "2130706433",
            "010.0.0.1",
            "a.123",
            "1.2.3.4.5",
        ] {
            assert_eq!(
                Host::parse(input),
                Err(HostError::AmbiguousNumeric),
                "{input}"
            );
        }
    }

    #[test]
    fn splits_authorities() {
        assert_eq!(
            parse_authority("a.example:8443", None),
            Ok((domain("a.example"), 8443))
        );
        assert_eq!(
            parse_authority("a.example", Some(443)),
            Ok((domain("a.example"), 443))
        );
        assert_eq!(
            parse_authority("[::1]:443", None),
            Ok((Host::Ip("::1".parse().expect("ip")), 443))
        );
        assert_eq!(
            parse_authority("a.example", None),
            Err(HostError::InvalidPort)
        );
        assert_eq!(
            parse_authority("a.example:0", None),
            Err(HostError::InvalidPort)
        );
        assert_eq!(
            parse_authority("a.example:+443", None),
            Err(HostError::InvalidPort)
        );
        assert_eq!(
            parse_authority("a.example:65536", None),
            Err(HostError::InvalidPort)
        );
        assert_eq!(
            parse_authority("::1:443", None),
            Err(HostError::InvalidIpv6)
        );
        assert!(parse_authority("user:pw@a.example:443", None).is_err());
    }
}
