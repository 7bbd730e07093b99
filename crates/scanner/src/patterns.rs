//! The token-pattern and private-key engine: a keyword prefilter, then each triggered
//! rule's regex, then the rule's check.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use regex::bytes::{Regex, RegexBuilder};

use crate::entropy::{has_random_mix, shannon_entropy};
use crate::finding::{Detector, RuleId};
use crate::rules::{Check, RULES, RuleSpec};

/// How far before an AWS secret key candidate the `aws` or `secret` keyword may be.
const AWS_KEYWORD_DISTANCE: usize = 80;

/// Maximum bytes a private key block may span after its BEGIN line. An RSA key of
/// 16384 bits is about 12 KiB of PEM.
const MAX_KEY_BODY: usize = 64 * 1024;

/// Minimum base64 characters after a BEGIN line for it to count as a key. A marker on
/// its own (in a parser's source code, say) is not a key. The shortest real key, an
/// OpenSSH ed25519 key, has about 350.
const MIN_KEY_BODY_CHARS: usize = 64;

/// A rule match within one scanned buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RuleMatch {
    pub rule: RuleId,
    pub detector: Detector,
    pub start: usize,
    pub end: usize,
}

/// The compiled rule table, shared by every scanner.
pub(crate) struct PatternSet {
    prefilter: AhoCorasick,
    /// Rule index of each prefilter keyword, by keyword index.
    keyword_rules: Vec<usize>,
    regexes: Vec<Regex>,
    key_end_marker: Regex,
}

pub(crate) static PATTERNS: LazyLock<PatternSet> = LazyLock::new(PatternSet::compile);

fn compile_regex(pattern: &str) -> Regex {
    RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .expect("the rule table's patterns are valid and tested")
}

impl PatternSet {
    fn compile() -> PatternSet {
        let mut keywords = Vec::new();
        let mut keyword_rules = Vec::new();
        for (index, spec) in RULES.iter().enumerate() {
            for keyword in spec.keywords {
                keywords.push(*keyword);
                keyword_rules.push(index);
            }
        }

        let prefilter = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&keywords)
            .expect("a few dozen short keywords fit the automaton");
        let regexes = RULES
            .iter()
            .map(|spec| compile_regex(spec.pattern))
            .collect();
        let key_end_marker =
            compile_regex(r"\A-{4,5} ?END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)? ?-{4,5}");

        PatternSet {
            prefilter,
            keyword_rules,
            regexes,
            key_end_marker,
        }
    }

    /// Appends to `out` every match in `haystack` of the rules of the enabled detectors.
    pub(crate) fn scan(
        &self,
        haystack: &[u8],
        token_patterns: bool,
        private_keys: bool,
        out: &mut Vec<RuleMatch>,
    ) {
        let enabled = |spec: &RuleSpec| match spec.detector {
            Detector::TokenPatterns => token_patterns,
            Detector::PrivateKeys => private_keys,
            Detector::KnownSecrets => false,
        };

        let mut triggered = vec![false; RULES.len()];
        let mut remaining = RULES.iter().filter(|spec| enabled(spec)).count();
        for hit in self.prefilter.find_overlapping_iter(haystack) {
            if remaining == 0 {
                break;
            }
            let index = self.keyword_rules[hit.pattern().as_usize()];
            if enabled(&RULES[index]) && !triggered[index] {
                triggered[index] = true;
                remaining -= 1;
            }
        }

        for (index, spec) in RULES.iter().enumerate() {
            if !triggered[index] {
                continue;
            }
            for captures in self.regexes[index].captures_iter(haystack) {
                let span = captures
                    .get(1)
                    .or_else(|| captures.get(0))
                    .expect("group 0 is always present");
                if let Some((start, end)) =
                    self.check(spec.check, haystack, span.start(), span.end())
                {
                    out.push(RuleMatch {
                        rule: spec.id,
                        detector: spec.detector,
                        start,
                        end,
                    });
                }
            }
        }
    }

    /// Applies a rule's check to the span `start..end`; returns the span to report.
    fn check(
        &self,
        check: Check,
        haystack: &[u8],
        start: usize,
        end: usize,
    ) -> Option<(usize, usize)> {
        let span = &haystack[start..end];
        let accepted = match check {
            Check::MinEntropy(min) => shannon_entropy(span) >= min,
            Check::AwsSecretKey => is_aws_secret_key(haystack, start, end),
            Check::GenericValue => is_random_value(span),
            Check::PrivateKeyBlock => return self.private_key_block(haystack, start, end),
        };
        accepted.then_some((start, end))
    }

    /// Extends a BEGIN marker at `start..end` over the key body and the END marker;
    /// returns `None` when no key body follows the marker.
    fn private_key_block(
        &self,
        haystack: &[u8],
        start: usize,
        end: usize,
    ) -> Option<(usize, usize)> {
        // The body ends at the first run of four dashes (the END line, or the next BEGIN
        // line of a truncated key), so each byte is walked for one marker at most.
        let limit = haystack.len().min(end + MAX_KEY_BODY);
        let mut body_end = end;
        while body_end < limit
            && is_key_body_byte(haystack[body_end])
            && !haystack[body_end..].starts_with(b"----")
        {
            body_end += 1;
        }
        let body = haystack[end..body_end].trim_ascii_end();

        let block_end = match self.key_end_marker.find(&haystack[body_end..]) {
            Some(marker) => body_end + marker.end(),
            None => end + body.len(),
        };

        let key_chars = body
            .iter()
            .filter(|byte| byte.is_ascii_alphanumeric())
            .count();
        (key_chars >= MIN_KEY_BODY_CHARS).then_some((start, block_end))
    }
}

/// Bytes that may appear in a PEM body: base64, whitespace, the `Proc-Type` and
/// `DEK-Info` header characters, and the `\n` escapes of a key pasted into JSON.
fn is_key_body_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || byte.is_ascii_whitespace()
        || matches!(
            byte,
            b'+' | b'/' | b'=' | b'-' | b':' | b',' | b'.' | b'\\' | b'"'
        )
}

fn is_aws_secret_key(haystack: &[u8], start: usize, end: usize) -> bool {
    let candidate = &haystack[start..end];
    if candidate.len() != 40 || candidate.contains(&b'=') {
        return false;
    }
    if shannon_entropy(candidate) < 4.2 {
        return false;
    }

    let context = &haystack[start.saturating_sub(AWS_KEYWORD_DISTANCE)..start];
    let contains = |word: &[u8]| {
        context
            .windows(word.len())
            .any(|window| window.eq_ignore_ascii_case(word))
    };
    contains(b"aws") || contains(b"secret")
}

/// Returns whether the value of a `password = ...` style assignment looks random: long
/// hexadecimal, or upper case, lower case and digits mixed with high entropy.
fn is_random_value(value: &[u8]) -> bool {
    let hex_digits: Vec<u8> = value.iter().copied().filter(|&byte| byte != b'-').collect();
    if hex_digits.len() >= 32 && hex_digits.iter().all(u8::is_ascii_hexdigit) {
        return shannon_entropy(&hex_digits) >= 3.0;
    }
    has_random_mix(value)
}
