//! Private key blocks, raw and encoded, and their spans.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bottle_scanner::{Detector, Encoding, Scanner, redact};
use common::{BASE64, Rng};

/// Builds a PEM block of `kind` ("RSA PRIVATE KEY", ...) with `lines` random body lines.
fn pem(kind: &str, headers: &str, lines: usize, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let mut text = format!("-----BEGIN {kind}-----\n{headers}");
    for _ in 0..lines {
        text.push_str(&rng.string(BASE64, 64));
        text.push('\n');
    }
    text.push_str(&rng.string(BASE64, 20));
    text.push_str("==\n");
    text.push_str(&format!("-----END {kind}-----"));
    text
}

#[test]
fn every_pem_kind_is_found_whole() {
    let kinds = [
        ("RSA PRIVATE KEY", ""),
        ("EC PRIVATE KEY", ""),
        ("DSA PRIVATE KEY", ""),
        ("OPENSSH PRIVATE KEY", ""),
        ("PRIVATE KEY", ""),
        ("ENCRYPTED PRIVATE KEY", ""),
        (
            "RSA PRIVATE KEY",
            "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0123456789ABCDEF\n\n",
        ),
        ("PGP PRIVATE KEY BLOCK", "Version: Test 1.0\n\n"),
    ];
    let scanner = Scanner::default();
    for (seed, (kind, headers)) in kinds.into_iter().enumerate() {
        let key = pem(kind, headers, 5, seed as u64);
        let input = format!("config:\n{key}\ntrailing text\n");
        let findings = scanner.scan(input.as_bytes());
        assert_eq!(findings.len(), 1, "{kind}: {findings:?}");
        let finding = findings[0];
        assert_eq!(finding.rule, "private-key");
        assert_eq!(finding.detector, Detector::PrivateKeys);
        assert_eq!(&input[finding.range()], key, "{kind}");
        assert_eq!(finding.line, 2);
    }
}

#[test]
fn key_in_json_string_is_found() {
    let key = pem("OPENSSH PRIVATE KEY", "", 4, 40).replace('\n', "\\n");
    let input = format!("{{\"deploy_key\":\"{key}\"}}");
    let findings = Scanner::default().scan(input.as_bytes());
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(&input[findings[0].range()], key);
}

#[test]
fn key_without_end_line_is_found() {
    let key = pem("RSA PRIVATE KEY", "", 3, 41);
    let truncated = &key[..key.find("-----END").expect("has an END line")];
    let findings = Scanner::default().scan(truncated.as_bytes());
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].start, 0);
}

#[test]
fn markers_without_a_body_are_not_keys() {
    let scanner = Scanner::default();
    let code = "if line == \"-----BEGIN RSA PRIVATE KEY-----\" { parse() }";
    assert!(scanner.scan(code.as_bytes()).is_empty());
    let public = pem("PUBLIC KEY", "", 5, 42);
    assert!(scanner.scan(public.as_bytes()).is_empty());
    let certificate = pem("CERTIFICATE", "", 5, 43);
    assert!(scanner.scan(certificate.as_bytes()).is_empty());
}

#[test]
fn base64_encoded_key_is_found_at_encoded_span() {
    let key = pem("PRIVATE KEY", "", 5, 44);
    let encoded = STANDARD.encode(&key);
    let input = format!("{{\"file\":\"{encoded}\"}}");
    let findings = Scanner::default().scan_with(input.as_bytes(), &[Detector::PrivateKeys]);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].encoding, Encoding::Base64);
    let start = input.find(&encoded).expect("contains the encoding");
    assert_eq!(findings[0].start, start);
    assert!(findings[0].end <= start + encoded.len());
    assert!(findings[0].end + 4 >= start + encoded.len());
}

#[test]
fn percent_encoded_key_is_found() {
    let key = pem("EC PRIVATE KEY", "", 3, 45);
    let encoded: String = key
        .bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() {
                char::from(byte).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect();
    let input = format!("POST /upload?key={encoded}&x=1");
    let findings = Scanner::default().scan(input.as_bytes());
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].encoding, Encoding::Percent);
    assert_eq!(&input[findings[0].range()], encoded);
}

#[test]
fn redaction_removes_the_whole_block() {
    let key = pem("RSA PRIVATE KEY", "", 5, 46);
    let input = format!("before\n{key}\nafter");
    let findings = Scanner::default().scan(input.as_bytes());
    let redacted = redact(input.as_bytes(), &findings);
    assert_eq!(redacted, b"before\n[REDACTED:private-key]\nafter");
}
