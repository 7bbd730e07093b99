//! The token-pattern and private-key engine: a keyword prefilter, then each triggered
//! rule's regex, then the rule's check.
//!
//! A rule's regex runs only near its keywords. Every match of a rule with a bounded match
//! length contains one of the rule's keywords, so it starts at most that length before a
//! keyword hit. The regex searches only those stretches, with enough bytes after them to
//! see the whole match and the byte after it. The result is the same as one search over
//! the whole input (a property test compares them). The AWS secret key rule, whose
//! keyword precedes the key, looks at the runs of key characters after each keyword hit.
//! Rules with unbounded matches search the whole input.

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

/// The characters of an AWS secret access key candidate: the class of that rule's
/// pattern, which must be exactly `[A-Za-z0-9/+=]{40,}`.
fn is_aws_key_byte(byte: u8) -> bool {
    AWS_KEY_BYTES[usize::from(byte)]
}

/// [`is_aws_key_byte`] as a table, built at compile time.
static AWS_KEY_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        #[allow(clippy::cast_possible_truncation)]
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || matches!(b, b'/' | b'+' | b'=');
        byte += 1;
    }
    table
};

/// The pattern the AWS secret key search implements without a regex.
const AWS_SECRET_PATTERN: &str = r"[A-Za-z0-9/+=]{40,}";

/// Length of the runs of key characters that the AWS secret key pattern matches.
const AWS_MIN_RUN: usize = 40;

/// The part of an input that a triggered rule's regex searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Search {
    /// Near each keyword hit: every match contains a keyword and is at most this long.
    NearKeywords { max_len: usize },
    /// The AWS secret key rule: maximal runs of key characters after a keyword.
    AwsRuns,
    /// Over the whole input.
    Whole,
}

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
    /// How each rule's regex is run, by rule index.
    searches: Vec<Search>,
    key_end_marker: Regex,
}

pub(crate) static PATTERNS: LazyLock<PatternSet> = LazyLock::new(PatternSet::compile);

/// Returns how the regex of `spec` can be run: near keywords when its matches are
/// bounded and never empty, over the whole input otherwise.
fn search_for(spec: &RuleSpec) -> Search {
    if matches!(spec.check, Check::AwsSecretKey) {
        assert_eq!(
            spec.pattern, AWS_SECRET_PATTERN,
            "the AWS secret key search implements exactly this pattern"
        );
        return Search::AwsRuns;
    }
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(spec.pattern)
        .expect("the rule table's patterns are valid and tested");
    let properties = hir.properties();
    match properties.maximum_len() {
        Some(max_len) if properties.minimum_len().is_some_and(|min| min > 0) => {
            Search::NearKeywords { max_len }
        }
        _ => Search::Whole,
    }
}

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
        assert!(
            RULES.len() <= RULE_SLOTS,
            "RULE_SLOTS holds a flag per rule"
        );
        let searches = RULES.iter().map(search_for).collect();
        let key_end_marker =
            compile_regex(r"\A-{4,5} ?END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)? ?-{4,5}");

        PatternSet {
            prefilter,
            keyword_rules,
            regexes,
            searches,
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
        let enabled = |spec: &RuleSpec| enabled(spec, token_patterns, private_keys);

        // Every keyword hit of an enabled rule, as (rule index, start, end).
        let mut keyword_hits = Vec::new();
        let mut triggered = [false; RULE_SLOTS];
        for hit in self.prefilter.find_overlapping_iter(haystack) {
            let index = self.keyword_rules[hit.pattern().as_usize()];
            if enabled(&RULES[index]) {
                triggered[index] = true;
                keyword_hits.push((index, hit.start(), hit.end()));
            }
        }

        let mut stretches = Vec::new();
        for (index, spec) in RULES.iter().enumerate() {
            if !triggered[index] {
                continue;
            }
            let search = self.searches[index];
            if search == Search::Whole {
                self.scan_whole(index, haystack, out);
                continue;
            }
            // The stretches where a match of this rule can start, merged and in order.
            stretches.clear();
            let generic = matches!(spec.check, Check::GenericValue);
            stretches.extend(
                keyword_hits
                    .iter()
                    .filter(|hit| hit.0 == index)
                    .filter(|&&(_, start, end)| !generic || has_assignment(haystack, start, end))
                    .map(|&(_, start, end)| match search {
                        Search::NearKeywords { max_len } => (end.saturating_sub(max_len), start),
                        Search::AwsRuns => (end, start + AWS_KEYWORD_DISTANCE),
                        Search::Whole => unreachable!("handled above"),
                    }),
            );
            stretches.sort_unstable();
            merge_stretches(&mut stretches);
            match search {
                Search::NearKeywords { max_len } => {
                    self.scan_near(index, spec, max_len, &stretches, haystack, out);
                }
                Search::AwsRuns => self.scan_aws_runs(spec, &stretches, haystack, out),
                Search::Whole => unreachable!("handled above"),
            }
        }
    }

    /// Runs rule `index` over the whole of `haystack`.
    fn scan_whole(&self, index: usize, haystack: &[u8], out: &mut Vec<RuleMatch>) {
        let spec = &RULES[index];
        for captures in self.regexes[index].captures_iter(haystack) {
            self.report(spec, haystack, &captures, out);
        }
    }

    /// Runs rule `index`, whose matches are at most `max_len` bytes, over `haystack` for
    /// matches that start in one of `stretches` (inclusive ranges, merged and in order).
    /// This finds exactly the matches that one search over the whole input finds, given
    /// that no match starts outside the stretches: a match starting at or before a
    /// stretch's end ends within the searched bytes, and its end sees the byte after it.
    fn scan_near(
        &self,
        index: usize,
        spec: &RuleSpec,
        max_len: usize,
        stretches: &[(usize, usize)],
        haystack: &[u8],
        out: &mut Vec<RuleMatch>,
    ) {
        let regex = &self.regexes[index];
        // Where the whole-input search would resume: the end of the last match.
        let mut resume = 0;
        for &(first, last) in stretches {
            let mut from = first.max(resume);
            let searched = &haystack[..haystack.len().min(last + max_len + 1)];
            while from <= last {
                let Some(captures) = regex.captures_at(searched, from) else {
                    break;
                };
                let whole = captures.get(0).expect("group 0 is always present");
                if whole.start() > last {
                    break;
                }
                self.report(spec, haystack, &captures, out);
                resume = whole.end();
                from = resume;
            }
        }
    }

    /// Finds the AWS secret key rule's matches that start in one of `stretches`: the
    /// maximal runs of at least [`AWS_MIN_RUN`] key characters, as its regex matches them.
    /// Runs starting elsewhere have no keyword close enough before them to be reported.
    fn scan_aws_runs(
        &self,
        spec: &RuleSpec,
        stretches: &[(usize, usize)],
        haystack: &[u8],
        out: &mut Vec<RuleMatch>,
    ) {
        let run_end = |from: usize| {
            haystack[from..]
                .iter()
                .position(|&byte| !is_aws_key_byte(byte))
                .map_or(haystack.len(), |len| from + len)
        };
        // Every run before `done` has been looked at.
        let mut done = 0;
        for &(first, last) in stretches {
            let mut at = first.max(done).min(haystack.len());
            if at > 0 && is_aws_key_byte(haystack[at - 1]) {
                // Inside a run that starts before the stretch.
                at = run_end(at);
            }
            while at <= last {
                // A run long enough to match that starts in the stretch is that long by
                // the stretch's end plus its length.
                let searched = &haystack[at..haystack.len().min(last + AWS_MIN_RUN)];
                let Some(skip) = find_long_run(searched, AWS_MIN_RUN) else {
                    at = at.max(haystack.len().min(last + 1));
                    break;
                };
                let start = at + skip;
                if start > last {
                    break;
                }
                let end = run_end(start);
                if let Some((start, end)) = self.check(spec.check, haystack, start, end) {
                    out.push(RuleMatch {
                        rule: spec.id,
                        detector: spec.detector,
                        start,
                        end,
                    });
                }
                at = end;
            }
            done = done.max(at);
        }
    }

    /// Applies the check of `spec` to a regex match and appends what it accepts to `out`.
    fn report(
        &self,
        spec: &RuleSpec,
        haystack: &[u8],
        captures: &regex::bytes::Captures<'_>,
        out: &mut Vec<RuleMatch>,
    ) {
        let span = captures
            .get(1)
            .or_else(|| captures.get(0))
            .expect("group 0 is always present");
        if let Some((start, end)) = self.check(spec.check, haystack, span.start(), span.end()) {
            out.push(RuleMatch {
                rule: spec.id,
                detector: spec.detector,
                start,
                end,
            });
        }
    }

    /// Appends every match of the enabled rules found by searching the whole of
    /// `haystack` with each triggered rule's regex: the definition that
    /// [`PatternSet::scan`] implements faster.
    #[cfg(test)]
    pub(crate) fn scan_whole_input(
        &self,
        haystack: &[u8],
        token_patterns: bool,
        private_keys: bool,
        out: &mut Vec<RuleMatch>,
    ) {
        let mut triggered = [false; RULE_SLOTS];
        for hit in self.prefilter.find_overlapping_iter(haystack) {
            triggered[self.keyword_rules[hit.pattern().as_usize()]] = true;
        }
        for (index, spec) in RULES.iter().enumerate() {
            if triggered[index] && enabled(spec, token_patterns, private_keys) {
                self.scan_whole(index, haystack, out);
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

/// Returns the start of the first run of at least `len` AWS key characters in `bytes`.
fn find_long_run(bytes: &[u8], len: usize) -> Option<usize> {
    let mut run = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        // Branch-free on the byte, so the words of text cost no mispredicted branches.
        run = (run + 1) * usize::from(is_aws_key_byte(byte));
        if run == len {
            return Some(index + 1 - len);
        }
    }
    None
}

/// How far after the start of a `generic-secret` match its `=` or `:` may be: the
/// longest name (11 bytes), 24 name characters, a quote and 4 blanks.
const GENERIC_OPERATOR_DISTANCE: usize = 11 + 24 + 1 + 4;

/// Returns whether the `generic-secret` keyword hit at `start..end` can be the one in a
/// match's name. Every match has a name that holds one of the rule's keywords, then an
/// `=` or `:` after the name and within [`GENERIC_OPERATOR_DISTANCE`] of the match start,
/// which is at or before the keyword. Hits without such a byte after them are in no
/// match's name, and the hits that are still give every match its stretch.
fn has_assignment(haystack: &[u8], start: usize, end: usize) -> bool {
    let limit = haystack.len().min(start + GENERIC_OPERATOR_DISTANCE + 1);
    haystack
        .get(end..limit)
        .is_some_and(|after| after.iter().any(|&byte| byte == b'=' || byte == b':'))
}

/// Room for one flag per rule of the table.
const RULE_SLOTS: usize = 64;

/// Returns whether the rule's detector is enabled.
fn enabled(spec: &RuleSpec, token_patterns: bool, private_keys: bool) -> bool {
    match spec.detector {
        Detector::TokenPatterns => token_patterns,
        Detector::PrivateKeys => private_keys,
        Detector::KnownSecrets => false,
    }
}

/// Merges overlapping and adjacent inclusive ranges of a sorted list in place.
fn merge_stretches(stretches: &mut Vec<(usize, usize)>) {
    let mut merged = 0;
    for index in 0..stretches.len() {
        let (first, last) = stretches[index];
        if merged > 0 && first <= stretches[merged - 1].1 + 1 {
            stretches[merged - 1].1 = stretches[merged - 1].1.max(last);
        } else {
            stretches[merged] = (first, last);
            merged += 1;
        }
    }
    stretches.truncate(merged);
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn spans(matches: &[RuleMatch]) -> Vec<(RuleId, usize, usize)> {
        matches
            .iter()
            .map(|found| (found.rule, found.start, found.end))
            .collect()
    }

    /// Pieces that make rules fire: keywords, prefixes, assignments and markers.
    const PIECES: &[&str] = &[
        "password",
        "PassWord",
        "secret",
        "aws",
        "AWS_",
        "token",
        "api_key",
        "private-key",
        "credentials",
        "key",
        " = ",
        ": \"",
        "=>",
        "\"",
        "\n",
        "\n",
        " ",
        "ghp_",
        "github_pat_",
        "glpat-",
        "AKIA",
        "sk-",
        "sk-proj-",
        "sk-ant-api03-",
        "xoxb-123-",
        "AIza",
        "npm_",
        "eyJ",
        ".",
        "-----BEGIN RSA PRIVATE KEY-----\n",
        "\n-----END RSA PRIVATE KEY-----",
    ];

    fn input() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            3 => proptest::sample::select(PIECES).prop_map(|piece| piece.as_bytes().to_vec()),
            3 => "[A-Za-z0-9]{1,70}".prop_map(String::into_bytes),
            1 => "[A-Za-z0-9/+=_.-]{1,50}".prop_map(String::into_bytes),
            1 => proptest::collection::vec(any::<u8>(), 1..8),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    #[test]
    fn rules_searched_near_keywords_are_bounded() {
        for (spec, search) in RULES.iter().zip(&PATTERNS.searches) {
            if spec.id == "generic-secret" || spec.id == "github-pat" {
                assert!(
                    matches!(search, Search::NearKeywords { .. }),
                    "{}: {search:?}",
                    spec.id
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn keyword_windows_find_what_whole_input_search_finds(
            haystack in input(),
            tokens in any::<bool>(),
            keys in any::<bool>(),
        ) {
            let mut near = Vec::new();
            PATTERNS.scan(&haystack, tokens, keys, &mut near);
            let mut whole = Vec::new();
            PATTERNS.scan_whole_input(&haystack, tokens, keys, &mut whole);
            prop_assert_eq!(spans(&near), spans(&whole));
        }
    }

    /// The property test above would pass if neither search found anything; this
    /// shows that its inputs make the windowed rules report matches.
    #[test]
    fn planted_values_are_found_near_keywords() {
        let haystack = b"x password = \"Zq8vN3kLp0Xa7Rt2Wm\" aws_secret: \
            Zq8vN3kLp0Xa7Rt2Wm5Yc1Hb6Jd9Fg4Ks3Tq/+Ab ghp_Zq8vN3kLp0Xa7Rt2Wm5Yc1Hb6Jd9Fg4Ks3Tq";
        let mut near = Vec::new();
        PATTERNS.scan(haystack, true, true, &mut near);
        let mut whole = Vec::new();
        PATTERNS.scan_whole_input(haystack, true, true, &mut whole);
        let rules: Vec<_> = near.iter().map(|found| found.rule).collect();
        assert_eq!(
            rules,
            [
                "github-pat",
                "aws-secret-access-key",
                "generic-secret",
                "generic-secret"
            ]
        );
        assert_eq!(spans(&near), spans(&whole));
    }
}
