//! Helpers shared by the scanner's integration tests.
//!
//! Sample tokens are generated at run time from a fixed seed, so the sources contain no
//! token-shaped literals for other scanners to trip on, and every run uses the same
//! values.

#![allow(dead_code)]

use bottle_scanner::{Detector, Finding, Scanner};

pub const BASE62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
pub const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
pub const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
pub const BASE32_UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
pub const HEX: &[u8] = b"0123456789abcdef";

/// A small deterministic generator (xorshift64*), enough to make random-looking text.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Returns `len` characters drawn from `alphabet`.
    pub fn string(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| {
                let index = self.next() % alphabet.len() as u64;
                char::from(alphabet[usize::try_from(index).expect("below the alphabet length")])
            })
            .collect()
    }
}

/// Returns `len` random characters of `alphabet` from a seed.
pub fn random(seed: u64, alphabet: &[u8], len: usize) -> String {
    Rng::new(seed).string(alphabet, len)
}

/// Returns the rule names reported for `input` by the default scanner.
pub fn rules_in(input: &str) -> Vec<&'static str> {
    Scanner::default()
        .scan(input.as_bytes())
        .iter()
        .map(|finding| finding.rule.as_str())
        .collect()
}

/// Scans `input` with the default scanner and returns the matched texts by rule.
pub fn matches_in(input: &str) -> Vec<(&'static str, String)> {
    Scanner::default()
        .scan(input.as_bytes())
        .iter()
        .map(|finding| (finding.rule.as_str(), input[finding.range()].to_string()))
        .collect()
}

/// Returns the findings of `detector` only.
pub fn findings_of(scanner: &Scanner, input: &[u8], detector: Detector) -> Vec<Finding> {
    scanner.scan_with(input, &[detector])
}
