//! Token formats written in an encoding: hex runs are decoded and rescanned, so a token
//! in hex is found even when it is not one of the bottle's known secrets.

mod common;

use bottle_scanner::{Encoding, Scanner};
use common::{BASE62, random};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn hex_token_found() {
    let token = format!("ghp_{}", random(21, BASE62, 36));
    let text = format!("blob: {}\n", hex(token.as_bytes()));
    let findings = Scanner::default().scan(text.as_bytes());

    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].rule.as_str(), "github-pat");
    assert_eq!(findings[0].encoding, Encoding::Hex);
    assert_eq!(findings[0].start, "blob: ".len());
    assert_eq!(findings[0].end, "blob: ".len() + 80);
}

#[test]
fn hex_token_at_odd_offset_found() {
    let token = format!("ghp_{}", random(22, BASE62, 36));
    // A stray hex digit before the run shifts the pairs by one.
    let text = format!("a{}", hex(token.as_bytes()));
    let findings = Scanner::default().scan(text.as_bytes());
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].start, 1);
}

#[test]
fn object_ids_are_not_findings() {
    let ids: String = (0..50)
        .map(|seed| format!("{}\n", random(seed, b"0123456789abcdef", 40)))
        .collect();
    assert!(Scanner::default().scan(ids.as_bytes()).is_empty());
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn nested_base64_token_found() {
    let token = format!("ghp_{}", random(23, BASE62, 36));
    let mut encoded = format!("token={token}");
    for level in 1..=3 {
        encoded = base64(encoded.as_bytes());
        let text = format!("data: {encoded}\n");
        let findings = Scanner::default().scan(text.as_bytes());
        assert_eq!(findings.len(), 1, "{level} levels: {findings:?}");
        assert_eq!(findings[0].rule.as_str(), "github-pat", "{level} levels");
        assert_eq!(findings[0].encoding, Encoding::Base64, "{level} levels");
        assert!(findings[0].start >= "data: ".len(), "{level} levels");
        assert!(findings[0].end < text.len(), "{level} levels");
    }

    // The depth is bounded: a fourth level is not decoded.
    encoded = base64(encoded.as_bytes());
    let text = format!("data: {encoded}\n");
    assert!(Scanner::default().scan(text.as_bytes()).is_empty());
}
