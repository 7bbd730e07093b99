//! Inputs built to make a naive scanner slow or make it allocate without bound. There is
//! no timing assertion; a quadratic path shows up as a test that does not finish.

use bottle_scanner::Scanner;

const SIZE: usize = 2 * 1024 * 1024;

fn repeat(unit: &str) -> Vec<u8> {
    unit.as_bytes().iter().copied().cycle().take(SIZE).collect()
}

#[test]
fn repetitive_inputs_finish() {
    let scanner = Scanner::new(&["aaaaaaaa", "known-secret-value"]);
    let units = [
        "-----BEGIN RSA PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "password=Zq8vN3kLp0Xa7Rt2&",
        "key",
        "ghp_",
        "eyJ",
        "eyJhbGciOiJIUzI1NiJ9.",
        "%41",
        "%4",
        "A",
        "a",
        "a-",
        "aws ",
        "sk-ant-api03-",
        " ",
        "\\n",
        "\\u0041",
        "\\",
        "\\ud83d",
    ];
    for unit in units {
        let input = repeat(unit);
        let findings = scanner.scan(&input);
        assert!(findings.len() <= input.len(), "{unit}");
    }
}

#[test]
fn repeated_known_secret_merges_into_one_finding() {
    let scanner = Scanner::new(&["aaaaaaaa", "abababab"]);
    for unit in ["a", "ab"] {
        let findings = scanner.scan(&repeat(unit));
        assert_eq!(
            findings.len(),
            1,
            "{unit}: {:?}",
            &findings[..findings.len().min(3)]
        );
        assert_eq!(findings[0].start, 0, "{unit}");
        assert!(findings[0].end >= SIZE - unit.len(), "{unit}");
    }
}

#[test]
fn private_key_markers_alone_are_not_keys() {
    let input = repeat("-----BEGIN RSA PRIVATE KEY-----\n");
    assert!(Scanner::default().scan(&input).is_empty());
}
