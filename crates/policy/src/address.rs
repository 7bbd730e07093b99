//! Upstream address checks: the proxy applies them to every resolved address when it
//! connects, so a name on the allowlist that resolves to an internal address is refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Returns why `ip` must not be dialled for a name resolved by DNS, or `None` when it is
/// a public address.
///
/// Refused: unspecified, loopback, private (RFC 1918), shared address space (CGNAT,
/// 100.64.0.0/10), link-local (which contains the 169.254.169.254 metadata service),
/// IETF protocol assignments, benchmarking, documentation, multicast, reserved and
/// broadcast IPv4; and unspecified, loopback, IPv4-mapped, IPv4-compatible, NAT64,
/// unique-local (which contains the `fd00:ec2::254` metadata service), link-local,
/// site-local, documentation and multicast IPv6.
pub fn forbidden_upstream_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let reason = match (a, b, c) {
        (0, _, _) => "an unspecified (0.0.0.0/8) address",
        (127, _, _) => "a loopback address",
        (10, _, _) | (192, 168, _) => "a private address",
        (172, 16..=31, _) => "a private address",
        (100, 64..=127, _) => "a shared (CGNAT) address",
        (169, 254, _) => "a link-local or metadata address",
        (192, 0, 0) => "an IETF protocol assignment address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18..=19, _) => "a benchmarking address",
        (224..=239, _, _) => "a multicast address",
        (240..=255, _, _) => "a reserved or broadcast address",
        _ => return None,
    };
    Some(reason)
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    if ip.is_unspecified() {
        return Some("an unspecified address");
    }
    if ip.is_loopback() {
        return Some("a loopback address");
    }
    if ip.to_ipv4_mapped().is_some() {
        return Some("an IPv4-mapped address");
    }
    let reason = match segments {
        [0, 0, 0, 0, 0, 0, _, _] => "an IPv4-compatible address",
        [0x64, 0xff9b, ..] => "a NAT64 address",
        [s, ..] if s & 0xfe00 == 0xfc00 => "a unique-local or metadata address",
        [s, ..] if s & 0xffc0 == 0xfe80 => "a link-local address",
        [s, ..] if s & 0xffc0 == 0xfec0 => "a site-local address",
        [s, ..] if s & 0xff00 == 0xff00 => "a multicast address",
        [0x2001, 0x0db8, ..] => "a documentation address",
        _ => return None,
    };
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(text: &str) -> Option<&'static str> {
        forbidden_upstream_reason(text.parse().expect("test address"))
    }

    #[test]
    fn refuses_internal_addresses() {
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:8.8.8.8",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(reason(text).is_some(), "{text} should be refused");
        }
    }

    #[test]
    fn allows_public_addresses() {
        for text in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "1.1.1.1",
            "2606:4700::1111",
        ] {
            assert_eq!(reason(text), None, "{text} should be allowed");
        }
    }
}
