//! Property tests of the host normalizer, the path canonicalizer and the matcher.

use bottle_policy::{Host, Policy, Route, canonicalize_path, parse_host_pattern};
use proptest::prelude::*;

fn route(host: &str, port: u16) -> Route {
    Route {
        host: host.to_owned(),
        port,
        auth: None,
        matches: Vec::new(),
        websocket: false,
        passthrough: false,
        connect: None,
        upstream_ca: None,
        dlp: Default::default(),
    }
}

/// Generates a DNS label of letters, digits and inner hyphens.
fn label() -> impl Strategy<Value = String> {
    // A label with hyphens in its third and fourth places is reserved (`xn--` starts a
    // punycode label, which must then decode), so the parser may rightly refuse it.
    "[a-zA-Z][a-zA-Z0-9-]{0,10}[a-zA-Z0-9]"
        .prop_filter("no reserved hyphens", |label| label.get(2..4) != Some("--"))
}

proptest! {
    #[test]
    fn normalizer_is_idempotent(input in "\\PC{0,40}") {
        if let Ok(host) = Host::parse(&input) {
            prop_assert_eq!(Host::parse(&host.to_authority_host()), Ok(host.clone()));
        }
    }

    #[test]
    fn normalized_domains_are_lowercase_ascii(input in "[a-zA-Z0-9.\\-_\u{e0}-\u{ff}]{1,40}") {
        if let Ok(Host::Domain(name)) = Host::parse(&input) {
            prop_assert!(name.is_ascii());
            prop_assert_eq!(name.to_ascii_lowercase(), name.clone());
            prop_assert!(!name.ends_with('.'));
            prop_assert!(!name.contains(".."));
        }
    }

    #[test]
    fn forbidden_characters_are_rejected(
        head in label(),
        tail in label(),
        bad in prop::sample::select(vec!['@', '\\', '%', '\0', '\r', '\n', '\t', ' ', '\u{7f}']),
    ) {
        let input = format!("{head}{bad}{tail}.example");
        prop_assert!(Host::parse(&input).is_err(), "{:?}", input);
    }

    #[test]
    fn wildcard_never_matches_apex_or_lookalike(prefix in label(), sub in label()) {
        let pattern = parse_host_pattern("*.example.org").expect("valid pattern");
        let apex = Host::parse("example.org").expect("valid host");
        let lookalike = Host::parse(&format!("{prefix}example.org")).expect("valid host");
        let suffixed = Host::parse(&format!("{sub}.example.org.{prefix}.test")).expect("valid host");
        let sub_host = Host::parse(&format!("{sub}.example.org")).expect("valid host");
        prop_assert!(!pattern.matches(&apex));
        prop_assert!(!pattern.matches(&lookalike));
        prop_assert!(!pattern.matches(&suffixed));
        prop_assert!(pattern.matches(&sub_host));
    }

    #[test]
    fn connect_allows_only_the_named_host_and_port(host in label(), port in 1u16..) {
        let policy = Policy::new(&[route("allowed.example", 443), route("*.wild.example", 443)])
            .expect("valid routes");
        let candidate = Host::parse(&format!("{host}.example")).expect("valid host");
        let allowed = policy.decide_connect(&candidate, port).is_allow();
        let expected = port == 443 && candidate.domain() == Some("allowed.example");
        prop_assert_eq!(allowed, expected);

        let wild = Host::parse(&format!("{host}.wild.example")).expect("valid host");
        prop_assert_eq!(policy.decide_connect(&wild, port).is_allow(), port == 443);
    }

    #[test]
    fn canonical_paths_are_stable(input in "/[a-zA-Z0-9./%~_-]{0,40}") {
        if let Ok(canonical) = canonicalize_path(&input) {
            prop_assert_eq!(canonicalize_path(&canonical), Ok(canonical.clone()));
            prop_assert!(canonical.starts_with('/'));
            prop_assert!(!canonical.contains("//"));
            prop_assert!(!canonical.contains("/./"));
            prop_assert!(!canonical.contains("/../"));
            prop_assert!(!canonical.ends_with("/.."));
            prop_assert!(!canonical.to_ascii_uppercase().contains("%2F"));
        }
    }

    #[test]
    fn prefix_rule_cannot_be_escaped_with_dot_segments(tail in "[a-z./]{0,20}") {
        let input = format!("/v1/{tail}");
        if let Ok(canonical) = canonicalize_path(&input) {
            // No dot segment survives, so a canonical path under /v1/ stays under it.
            prop_assert!(!canonical.split('/').any(|segment| segment == ".." || segment == "."));
        }
    }
}
