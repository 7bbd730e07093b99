//! Property tests: no input makes the scanner panic, a known secret is found in every
//! encoded form at any offset, and redaction removes what was found.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bottle_scanner::{Detector, Finding, Scanner, redact};
use proptest::prelude::*;

// Secrets are letters, digits and a few punctuation marks that the encodings treat
// specially; the surrounding text is words, spaces, punctuation and newlines.

/// The ways a secret is written into the text.
#[derive(Clone, Copy, Debug)]
enum Form {
    Raw,
    Base64InMessage,
    Base64Url,
    HexLower,
    HexUpper,
    Percent,
    JsonEscaped,
    Separated { separator: u8, every: usize },
}

fn form_strategy() -> impl Strategy<Value = Form> {
    let separators = prop::sample::select(b"-_.:/ ,|\t\n".to_vec());
    prop_oneof![
        Just(Form::Raw),
        Just(Form::Base64InMessage),
        Just(Form::Base64Url),
        Just(Form::HexLower),
        Just(Form::HexUpper),
        Just(Form::Percent),
        Just(Form::JsonEscaped),
        (separators, 1usize..4).prop_map(|(separator, every)| Form::Separated { separator, every }),
    ]
}

/// Writes `secret` in `form`; `prefix` is unrelated data encoded along with it.
fn encode(secret: &str, form: Form, prefix: &str) -> String {
    match form {
        Form::Raw => secret.to_string(),
        Form::Base64InMessage => STANDARD.encode(format!("{prefix}{secret}{prefix}")),
        Form::Base64Url => URL_SAFE_NO_PAD.encode(secret),
        Form::HexLower => secret.bytes().map(|byte| format!("{byte:02x}")).collect(),
        Form::HexUpper => secret.bytes().map(|byte| format!("{byte:02X}")).collect(),
        Form::Percent => secret
            .bytes()
            .map(|byte| {
                if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                    char::from(byte).to_string()
                } else {
                    format!("%{byte:02X}")
                }
            })
            .collect(),
        Form::JsonEscaped => secret
            .chars()
            .map(|c| format!("\\u{:04x}", u32::from(c)))
            .collect(),
        Form::Separated { separator, every } => secret
            .as_bytes()
            .chunks(every)
            .map(|chunk| std::str::from_utf8(chunk).expect("ASCII"))
            .collect::<Vec<_>>()
            .join(&char::from(separator).to_string()),
    }
}

fn known_findings(scanner: &Scanner, input: &[u8]) -> Vec<Finding> {
    scanner.scan_with(input, &[Detector::KnownSecrets])
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let scanner = Scanner::new(&["known-secret-value", "another 8+ value"]);
        let findings = scanner.scan(&bytes);
        for finding in &findings {
            prop_assert!(finding.start < finding.end && finding.end <= bytes.len());
            prop_assert!(finding.line >= 1);
        }
        redact(&bytes, &findings);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "[ -~\n]{0,2000}") {
        let scanner = Scanner::new(&["known-secret-value"]);
        let findings = scanner.scan(text.as_bytes());
        for finding in &findings {
            prop_assert!(finding.start < finding.end && finding.end <= text.len());
        }
    }

    #[test]
    fn embedded_secret_is_found_in_each_form(
        secret in "[A-Za-z0-9+/=~!@#$%^&*]{8,40}",
        before in "[a-z A-Z0-9.,;\n]{0,200}",
        after in "[a-z A-Z0-9.,;\n]{0,200}",
        prefix in "[ -~]{0,5}",
        form in form_strategy(),
    ) {
        // Split forms are matched without separators, and fewer than 8 bytes left would
        // match too much by chance, so such values are searched for unsplit only.
        let unseparated = secret.bytes().filter(|byte| !b"+/".contains(byte)).count();
        prop_assume!(unseparated >= 8 || !matches!(form, Form::Separated { .. }));

        let scanner = Scanner::new(&[secret.as_str()]);
        let encoded = encode(&secret, form, &prefix);
        let input = format!("{before}{encoded}{after}");
        let region = before.len()..before.len() + encoded.len();

        let findings = known_findings(&scanner, input.as_bytes());
        prop_assert!(
            findings.iter().any(|f| f.start < region.end && region.start < f.end),
            "{form:?}: no finding in {region:?}: {findings:?}"
        );
    }

    #[test]
    fn redaction_removes_every_known_secret(
        secret in "[A-Za-z0-9+/=~!@#$%^&*]{8,40}",
        before in "[a-z A-Z0-9.,;\n]{0,100}",
        middle in "[a-z A-Z0-9.,;\n]{0,100}",
        prefix in "[ -~]{0,5}",
        first in form_strategy(),
        second in form_strategy(),
    ) {
        let unseparated = secret.bytes().filter(|byte| !b"+/".contains(byte)).count();
        let split = |form| matches!(form, Form::Separated { .. });
        prop_assume!(unseparated >= 8 || !(split(first) || split(second)));

        let scanner = Scanner::new(&[secret.as_str()]);
        let input = format!(
            "{before}{}{middle}{}",
            encode(&secret, first, &prefix),
            encode(&secret, second, &prefix)
        );
        let findings = scanner.scan(input.as_bytes());
        prop_assert!(!findings.is_empty());

        let redacted = redact(input.as_bytes(), &findings);
        let left = known_findings(&scanner, &redacted);
        prop_assert!(
            left.is_empty(),
            "{first:?}/{second:?} left {left:?} in {}",
            String::from_utf8_lossy(&redacted)
        );
    }
}
