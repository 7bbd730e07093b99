//! Known secret values in every form the scanner promises to find.

mod common;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use bottle_scanner::{Detector, Encoding, Finding, Scanner, redact};
use common::{BASE62, random};

/// A value with bytes that base64, percent-encoding and separators all treat specially.
const SECRET: &str = "Zq8v+N3k/Lp0 Xa7R~t2";

fn scanner() -> Scanner {
    Scanner::new(&[SECRET])
}

/// Returns the known-secret findings in `input`.
fn known(input: &[u8]) -> Vec<Finding> {
    scanner().scan_with(input, &[Detector::KnownSecrets])
}

/// Asserts one known-secret finding whose span lies within `expected` and covers most of
/// it (base64 fragments leave out the characters mixed with neighbouring bytes).
fn assert_found_in(input: &str, expected: &str, encoding: Encoding) {
    let findings = known(input.as_bytes());
    assert_eq!(findings.len(), 1, "input: {input}\nfindings: {findings:?}");
    let finding = findings[0];
    assert_eq!(finding.rule, "known-secret");
    assert_eq!(finding.encoding, encoding, "input: {input}");

    let expected_start = input
        .find(expected)
        .expect("input contains the expected text");
    let expected_end = expected_start + expected.len();
    assert!(
        finding.start >= expected_start && finding.end <= expected_end,
        "{finding}"
    );
    assert!(
        finding.end - finding.start + 4 >= expected.len(),
        "{finding} of {}",
        expected.len()
    );
}

#[test]
fn raw_value_is_found() {
    assert_found_in(&format!("x={SECRET}&y=1"), SECRET, Encoding::Raw);
}

#[test]
fn base64_forms_are_found_at_every_offset() {
    for prefix_len in 0..6 {
        let prefix = &"pre-fix"[..prefix_len];
        let message = format!("{prefix}{SECRET}suffix");
        for encoded in [
            STANDARD.encode(&message),
            STANDARD_NO_PAD.encode(&message),
            URL_SAFE.encode(&message),
            URL_SAFE_NO_PAD.encode(&message),
        ] {
            let findings = known(format!("data: {encoded}\n").as_bytes());
            assert_eq!(
                findings.len(),
                1,
                "prefix {prefix_len}, {encoded}: {findings:?}"
            );
        }
    }
}

#[test]
fn base64_of_value_alone_covers_its_encoding() {
    let encoded = STANDARD.encode(SECRET);
    assert_found_in(
        &format!("Authorization: Basic {encoded}\n"),
        &encoded,
        Encoding::Base64,
    );
}

#[test]
fn hex_is_found_in_any_case() {
    let lower: String = SECRET.bytes().map(|byte| format!("{byte:02x}")).collect();
    let upper = lower.to_ascii_uppercase();
    let mixed: String = lower
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    for hex in [lower, upper, mixed] {
        assert_found_in(&format!("id={hex};"), &hex, Encoding::Hex);
    }
}

#[test]
fn percent_encoded_forms_are_found() {
    let forms = [
        "Zq8v%2BN3k%2FLp0+Xa7R~t2",
        "Zq8v%2BN3k%2FLp0%20Xa7R~t2",
        "Zq8v%2bN3k%2fLp0+Xa7R~t2",
        "Zq8v%2bN3k%2fLp0%20Xa7R~t2",
    ];
    for form in forms {
        assert_found_in(&format!("GET /?q={form} HTTP/1.1"), form, Encoding::Percent);
    }
}

#[test]
fn partially_percent_encoded_value_is_found_by_decoding() {
    // Every byte escaped, including unreserved ones, as some encoders do.
    let form: String = SECRET.bytes().map(|byte| format!("%{byte:02X}")).collect();
    assert_found_in(&format!("/search?q={form}"), &form, Encoding::Percent);
}

#[test]
fn separator_split_forms_are_found() {
    let separators = [
        "-", "_", ".", ":", "/", " ", ",", "|", "\t", "\n", "\\n", "\r\n",
    ];
    for separator in separators {
        for group in [1, 2, 3] {
            let chars: Vec<String> = SECRET
                .as_bytes()
                .chunks(group)
                .map(|chunk| String::from_utf8(chunk.to_vec()).expect("ASCII"))
                .collect();
            let split = chars.join(separator);
            assert_found_in(&format!("msg=[{split}]"), &split, Encoding::Separated);
        }
    }
}

#[test]
fn concatenated_string_literals_are_found() {
    let (head, tail) = SECRET.split_at(9);
    let source = format!("let t = \"{head}\" + \"{tail}\";");
    let literal = format!("{head}\" + \"{tail}");
    assert_found_in(&source, &literal, Encoding::Separated);
}

#[test]
fn wrapped_base64_is_found() {
    let message = format!("{}{SECRET}{}", "a".repeat(40), "b".repeat(40));
    let encoded = STANDARD.encode(&message);
    let wrapped = encoded
        .as_bytes()
        .chunks(16)
        .map(|line| std::str::from_utf8(line).expect("ASCII"))
        .collect::<Vec<_>>()
        .join("\n");
    let findings = known(wrapped.as_bytes());
    assert_eq!(findings.len(), 1, "{findings:?}");
}

#[test]
fn base64_of_hex_is_found_by_decoding() {
    let hex: String = SECRET.bytes().map(|byte| format!("{byte:02x}")).collect();
    let encoded = STANDARD.encode(&hex);
    let findings = known(encoded.as_bytes());
    assert_eq!(findings.len(), 1, "{findings:?}");
}

#[test]
fn other_values_are_not_found() {
    // One character changed in each half: no run of the secret long enough to hold one
    // of its pieces is left.
    let near = SECRET.replace('8', "9").replace('a', "b");
    assert!(known(near.as_bytes()).is_empty());
    assert!(known(STANDARD.encode(&near).as_bytes()).is_empty());
}

#[test]
fn secret_with_characters_cut_off_is_found() {
    for shortened in [&SECRET[1..], &SECRET[..SECRET.len() - 1]] {
        assert!(!known(shortened.as_bytes()).is_empty(), "{shortened}");
    }
    // Its halves on two lines, as two assignments in a source file.
    let (first, second) = SECRET.split_at(SECRET.len() / 2);
    let split = format!("a = \"{first}\"\nb = \"{second}\"\n");
    assert!(!known(split.as_bytes()).is_empty(), "{split}");
    // Positive control: the same lines with other values are clean.
    assert!(known(b"a = \"Zq8v+N3k\"\nb = \"0 Xa7R\"\n").is_empty());
}

#[test]
fn case_changed_value_is_found() {
    // A lower-cased secret, as in a host name, still gives most of it away.
    let lower = SECRET.to_ascii_lowercase();
    assert_found_in(&format!("https://{lower}.example/"), &lower, Encoding::Raw);
    let upper = SECRET.to_ascii_uppercase();
    assert_found_in(&format!("X-Id: {upper}\r\n"), &upper, Encoding::Raw);

    // Base64 is matched exactly, because case changes what it decodes to.
    let encoded = STANDARD.encode(SECRET).to_ascii_lowercase();
    assert!(known(encoded.as_bytes()).is_empty());
}

#[test]
fn short_and_empty_values_are_ignored() {
    let scanner = Scanner::new(&["", "1234567", "abcdefgh"]);
    assert_eq!(scanner.known_secret_count(), 1);
    assert!(scanner.scan(b"xx 1234567 xx").is_empty());
    assert_eq!(scanner.scan(b"xx abcdefgh xx").len(), 1);
}

#[test]
fn disabled_detector_finds_nothing() {
    let input = format!("x={SECRET}");
    let scanner = scanner();
    assert_eq!(
        scanner
            .scan_with(input.as_bytes(), &[Detector::KnownSecrets])
            .len(),
        1
    );
    assert!(
        scanner
            .scan_with(input.as_bytes(), &[Detector::TokenPatterns])
            .is_empty()
    );
    assert!(scanner.scan_with(input.as_bytes(), &[]).is_empty());
}

#[test]
fn finding_output_never_contains_the_value() {
    let value = random(50, BASE62, 32);
    let scanner = Scanner::new(&[value.as_str()]);
    let findings = scanner.scan(format!("token {value}").as_bytes());
    assert_eq!(findings.len(), 1);
    let shown = format!("{:?} {} {:#?}", findings[0], findings[0], findings);
    assert!(!shown.contains(&value), "{shown}");
    assert!(!shown.contains(&value[..8]), "{shown}");
}

#[test]
fn redaction_replaces_each_form() {
    let hex: String = SECRET.bytes().map(|byte| format!("{byte:02x}")).collect();
    let input = format!("a={SECRET}&b={}&c={hex}", STANDARD.encode(SECRET));
    let scanner = scanner();
    let findings = scanner.scan(input.as_bytes());
    assert_eq!(findings.len(), 3, "{findings:?}");
    let redacted = redact(input.as_bytes(), &findings);
    assert!(
        scanner.scan(&redacted).is_empty(),
        "{}",
        String::from_utf8_lossy(&redacted)
    );
    assert_eq!(
        String::from_utf8(redacted).expect("ASCII"),
        // The padding `=` carries no bit of the value and stays.
        "a=[REDACTED:known-secret]&b=[REDACTED:known-secret]=&c=[REDACTED:known-secret]"
    );
}

#[test]
fn token_that_is_also_known_is_reported_by_both() {
    let token = format!("ghp_{}", random(51, BASE62, 36));
    let scanner = Scanner::new(&[token.as_str()]);
    let findings = scanner.scan(format!("t={token}").as_bytes());
    let detectors: Vec<_> = findings.iter().map(|finding| finding.detector).collect();
    assert_eq!(
        detectors,
        vec![Detector::KnownSecrets, Detector::TokenPatterns]
    );
}

#[test]
fn large_input_is_scanned() {
    let mut input = Vec::with_capacity(10 * 1024 * 1024 + 64);
    let filler = b"lorem ipsum dolor sit amet, consectetur adipiscing elit 0123456789\n";
    while input.len() < 10 * 1024 * 1024 {
        input.extend_from_slice(filler);
    }
    let middle = input.len() / 2;
    input.splice(middle..middle, SECRET.bytes());
    input.extend_from_slice(STANDARD.encode(SECRET).as_bytes());

    let findings = scanner().scan(&input);
    let starts: Vec<_> = findings.iter().map(|finding| finding.start).collect();
    assert_eq!(starts.len(), 2, "{findings:?}");
    assert_eq!(starts[0], middle);
}

#[test]
fn json_escaped_value_is_found() {
    // Every character as a `\u` escape, as a JSON encoder may write it.
    let escaped: String = SECRET
        .chars()
        .map(|c| format!("\\u{:04x}", u32::from(c)))
        .collect();
    assert_found_in(
        &format!("{{\"text\":\"{escaped}\"}}"),
        &escaped,
        Encoding::Escaped,
    );

    // `/` written as `\/`, as some JSON encoders do.
    let slashes = SECRET.replace('/', "\\/");
    assert_found_in(
        &format!("{{\"text\":\"{slashes}\"}}"),
        &slashes,
        Encoding::Escaped,
    );

    // C-style `\x` escapes.
    let hex_escaped: String = SECRET
        .bytes()
        .map(|byte| format!("\\x{byte:02x}"))
        .collect();
    assert_found_in(
        &format!("s = \"{hex_escaped}\";"),
        &hex_escaped,
        Encoding::Escaped,
    );
}
