//! Secrets in UTF-16 text, where every other byte of an ASCII secret is zero.

mod common;

use bottle_scanner::{Encoding, Scanner};
use common::{BASE62, random};

fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn utf16be_with_bom(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFE, 0xFF];
    bytes.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
    bytes
}

fn github_token() -> String {
    format!("ghp_{}", random(16, BASE62, 36))
}

#[test]
fn token_in_utf16le_found() {
    let text = format!("line one\nkey = {}\n", github_token());
    let scanner = Scanner::default();

    // Positive control: the same text in UTF-8 is found directly.
    assert_eq!(scanner.scan(text.as_bytes()).len(), 1);

    let bytes = utf16le(&text);
    let findings = scanner.scan(&bytes);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].rule.as_str(), "github-pat");
    assert_eq!(findings[0].encoding, Encoding::Utf16);
    assert_eq!(findings[0].line, 2);
    let start = utf16le("line one\nkey = ").len();
    assert_eq!(findings[0].start, start);
    assert_eq!(findings[0].end, start + 2 * 40);
}

#[test]
fn token_in_utf16be_with_bom_found() {
    let text = format!("token: {} (rotate)", github_token());
    let findings = Scanner::default().scan(&utf16be_with_bom(&text));
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].encoding, Encoding::Utf16);
    assert_eq!(findings[0].start, 2 + 2 * "token: ".len());
}

#[test]
fn known_secret_in_utf16_found() {
    let secret = random(17, BASE62, 24);
    let scanner = Scanner::new(&[secret.as_str()]);
    let findings = scanner.scan(&utf16le(&format!("export VALUE={secret}\n")));
    assert!(
        findings.iter().any(|f| f.rule.as_str() == "known-secret"),
        "{findings:?}"
    );
}

#[test]
fn utf16_finding_redacts_whole_span() {
    let text = format!("key = {}", github_token());
    let bytes = utf16le(&text);
    let scanner = Scanner::default();
    let redacted = bottle_scanner::redact(&bytes, &scanner.scan(&bytes));
    assert!(scanner.scan(&redacted).is_empty());
}

#[test]
fn binary_without_text_not_viewed() {
    // Random bytes with scattered zeros are not UTF-16 and produce no finding.
    let bytes: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect();
    assert!(Scanner::default().scan(&bytes).is_empty());
}
