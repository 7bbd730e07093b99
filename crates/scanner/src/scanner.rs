//! The [`Scanner`]: runs the detectors over an input in bounded windows and merges what
//! they report into findings.

use std::cmp::Reverse;
use std::fmt;

use crate::ScannerError;
use crate::decode::{Decoder, SpanMap};
use crate::finding::{Detector, Encoding, Finding, RuleId};
use crate::known::{KnownMatch, KnownSecrets};
use crate::patterns::{PATTERNS, RuleMatch};

/// Bytes of input scanned per window. Windows bound the scan's working memory (the
/// separator-free copy, its offset map and decoded runs) to a few times this size.
const WINDOW: usize = 4 * 1024 * 1024;

/// Bytes by which consecutive windows overlap. A match no longer than half of this is
/// reported whole, from the window where it has at least that much context on either
/// side. Half of it exceeds the longest private key block the rules accept (64 KiB of
/// body), the longest token, and a split known secret of a few kilobytes with several
/// separator bytes per character.
const OVERLAP: usize = 256 * 1024;

/// A compiled set of detectors: the built-in rules and this scanner's known secrets.
///
/// Build one per set of known secrets and share it; scanning takes `&self`, and the type
/// is `Send + Sync`. The built-in rules are compiled once per process and shared by all
/// scanners. `Debug` shows how many secrets were compiled in, never their values.
pub struct Scanner {
    known: KnownSecrets,
    window: usize,
    overlap: usize,
}

impl fmt::Debug for Scanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scanner")
            .field("known_secrets", &self.known.count())
            .finish()
    }
}

impl Default for Scanner {
    /// Returns a scanner with the built-in rules and no known secrets.
    fn default() -> Scanner {
        Scanner::new::<&str>(&[])
    }
}

/// One detector match before merging, with input offsets.
#[derive(Clone, Copy, Debug)]
struct Hit {
    rule: RuleId,
    detector: Detector,
    encoding: Encoding,
    start: usize,
    end: usize,
}

impl Hit {
    fn from_known(found: KnownMatch, base: usize) -> Hit {
        Hit {
            rule: RuleId::KNOWN_SECRET,
            detector: Detector::KnownSecrets,
            encoding: found.encoding,
            start: base + found.start,
            end: base + found.end,
        }
    }

    fn from_rule(found: RuleMatch, encoding: Encoding, start: usize, end: usize) -> Hit {
        Hit {
            rule: found.rule,
            detector: found.detector,
            encoding,
            start,
            end,
        }
    }
}

impl Scanner {
    /// Compiles a scanner for `known_secrets` plus the built-in rules.
    ///
    /// Values shorter than [`MIN_KNOWN_SECRET_LEN`](crate::MIN_KNOWN_SECRET_LEN) bytes,
    /// the empty one included, are ignored. Use [`Scanner::try_new`] to handle a failure
    /// instead of panicking.
    ///
    /// # Panics
    ///
    /// If the automaton over all encoded forms of the values exceeds the Aho-Corasick
    /// size limits, which takes hundreds of megabytes of secret material.
    pub fn new<S: AsRef<str>>(known_secrets: &[S]) -> Scanner {
        Scanner::try_new(known_secrets)
            .expect("known secrets of a bottle fit the automaton's size limits")
    }

    /// Compiles a scanner like [`Scanner::new`], returning an error instead of panicking
    /// when the known secrets do not fit the automaton.
    pub fn try_new<S: AsRef<str>>(known_secrets: &[S]) -> Result<Scanner, ScannerError> {
        // Pieces of each secret find it with characters cut off or split in two.
        let mut values: Vec<&str> = known_secrets.iter().map(AsRef::as_ref).collect();
        let pieces = crate::fragments::fragments(known_secrets);
        values.extend(pieces.iter().map(String::as_str));
        Ok(Scanner {
            known: KnownSecrets::compile(&values)?,
            window: WINDOW,
            overlap: OVERLAP,
        })
    }

    /// Returns how many known secrets were compiled in (values too short are not counted).
    pub fn known_secret_count(&self) -> usize {
        self.known.count()
    }

    /// Scans `bytes` with every detector.
    pub fn scan(&self, bytes: &[u8]) -> Vec<Finding> {
        self.scan_with(bytes, &Detector::ALL)
    }

    /// Scans `bytes` with the given detectors only; an empty list finds nothing.
    ///
    /// Findings are sorted by start offset. Overlapping matches of known secrets are
    /// merged into one finding. A pattern match contained in another match of the same
    /// detector is dropped.
    pub fn scan_with(&self, bytes: &[u8], detectors: &[Detector]) -> Vec<Finding> {
        let known = detectors.contains(&Detector::KnownSecrets) && self.known.count() > 0;
        let tokens = detectors.contains(&Detector::TokenPatterns);
        let keys = detectors.contains(&Detector::PrivateKeys);
        if !(known || tokens || keys) {
            return Vec::new();
        }

        let mut hits = Vec::new();
        let mut decoder = Decoder::default();
        // Each hit is kept from the one window where at least half the overlap lies on
        // either side of its start. There, the window's edges can neither cut it short
        // nor hide the context that rules look at (a word boundary, a nearby keyword).
        let margin = self.overlap / 2;
        let mut start = 0;
        let mut window_hits = Vec::new();
        loop {
            let end = bytes.len().min(start + self.window + self.overlap);
            let window = Window {
                known,
                tokens,
                keys,
                base: start,
            };
            self.scan_window(&bytes[start..end], &window, &mut decoder, &mut window_hits);

            let first = start == 0;
            let last = end == bytes.len();
            let keep_from = if first { 0 } else { start + margin };
            let keep_before = if last {
                usize::MAX
            } else {
                start + self.window + margin
            };
            hits.extend(
                window_hits
                    .drain(..)
                    .filter(|hit| keep_from <= hit.start && hit.start < keep_before),
            );
            if last {
                break;
            }
            start += self.window;
        }

        let mut findings = merge(hits);
        assign_lines(bytes, &mut findings);
        findings.extend(self.scan_utf16(bytes, detectors));
        findings
    }

    /// Scans the one-byte view of UTF-16 text: the low byte of every code unit. Secrets
    /// are ASCII, so in UTF-16 every other byte of one is zero and the raw scan cannot see
    /// it. Findings are mapped back to the code units they cover.
    fn scan_utf16(&self, bytes: &[u8], detectors: &[Detector]) -> Vec<Finding> {
        let Some((offset, low)) = utf16_layout(bytes) else {
            return Vec::new();
        };
        let view: Vec<u8> = bytes[offset..]
            .chunks_exact(2)
            .map(|unit| unit[low])
            .collect();
        let mut findings = self.scan_with_raw_view(&view, detectors);
        for finding in &mut findings {
            finding.encoding = Encoding::Utf16;
            finding.start = offset + finding.start * 2;
            finding.end = offset + finding.end * 2;
        }
        assign_lines_utf16(bytes, offset, low, &mut findings);
        findings
    }

    /// Scans a UTF-16 view like any input, without looking for UTF-16 inside it again.
    fn scan_with_raw_view(&self, view: &[u8], detectors: &[Detector]) -> Vec<Finding> {
        // A view of a view would be the high bytes of the text, which hold no ASCII.
        if utf16_layout(view).is_none() {
            return self.scan_with(view, detectors);
        }
        let mut copy = view.to_vec();
        // Zero bytes in the view come from characters above U+00FF; they cannot be part
        // of a secret, so they are replaced to keep the view from looking like UTF-16.
        for byte in &mut copy {
            if *byte == 0 {
                *byte = b' ';
            }
        }
        self.scan_with(&copy, detectors)
    }

    fn scan_window(
        &self,
        haystack: &[u8],
        window: &Window,
        decoder: &mut Decoder,
        hits: &mut Vec<Hit>,
    ) {
        let base = window.base;
        let mut known_matches = Vec::new();
        let mut rule_matches = Vec::new();

        if window.known {
            self.known.find_exact(haystack, &mut known_matches);
            self.known.find_separated(haystack, &mut known_matches);
        }
        PATTERNS.scan(haystack, window.tokens, window.keys, &mut rule_matches);
        hits.extend(
            known_matches
                .drain(..)
                .map(|found| Hit::from_known(found, base)),
        );
        hits.extend(rule_matches.drain(..).map(|found| {
            Hit::from_rule(found, Encoding::Raw, base + found.start, base + found.end)
        }));

        // TODO(perf): the scan runs at 30 to 77 MiB/s per core on 1 MiB bodies (`cargo
        // bench -p bottle-scanner`), below 500 MB/s. Most of it is Aho-Corasick: four exact
        // passes over the window and its separator-free copy, the keyword prefilter, and
        // the exact forms again over each decoded view (every base64 run at four
        // alignments). One pass for patterns without separators would save the most.
        decoder.for_each_view(haystack, |decoded, map: &SpanMap<'_>, encoding| {
            if window.known {
                self.known.find_exact(decoded, &mut known_matches);
            }
            PATTERNS.scan(decoded, window.tokens, window.keys, &mut rule_matches);

            for found in known_matches.drain(..) {
                let (start, end) = map.to_input(found.start, found.end);
                hits.push(Hit {
                    rule: RuleId::KNOWN_SECRET,
                    detector: Detector::KnownSecrets,
                    encoding,
                    start: base + start,
                    end: base + end,
                });
            }
            for found in rule_matches.drain(..) {
                let (start, end) = map.to_input(found.start, found.end);
                hits.push(Hit::from_rule(found, encoding, base + start, base + end));
            }
        });
    }

    #[cfg(test)]
    fn with_window(mut self, window: usize, overlap: usize) -> Scanner {
        self.window = window;
        self.overlap = overlap;
        self
    }
}

/// Returns where UTF-16 text starts (after a byte-order mark) and which byte of each code
/// unit is the low one. Input counts as UTF-16 when at least a third of its code units
/// have a zero high byte, as text with ASCII in it does; anything else gives `None`.
fn utf16_layout(bytes: &[u8]) -> Option<(usize, usize)> {
    let (offset, bom_low) = match bytes {
        [0xFF, 0xFE, ..] => (2, Some(0)),
        [0xFE, 0xFF, ..] => (2, Some(1)),
        _ => (0, None),
    };
    let units = &bytes[offset..];
    if units.len() < 16 {
        return None;
    }
    let pairs = units.len() / 2;
    let zero_odd = units
        .chunks_exact(2)
        .filter(|unit| unit[1] == 0 && unit[0] != 0)
        .count();
    let zero_even = units
        .chunks_exact(2)
        .filter(|unit| unit[0] == 0 && unit[1] != 0)
        .count();
    let low = match bom_low {
        Some(low) => low,
        None if zero_odd * 3 >= pairs && zero_odd > zero_even => 0,
        None if zero_even * 3 >= pairs && zero_even > zero_odd => 1,
        None => return None,
    };
    let zero_high = if low == 0 { zero_odd } else { zero_even };
    (zero_high * 3 >= pairs).then_some((offset, low))
}

/// Sets each finding's line from the newlines (U+000A code units) before it.
fn assign_lines_utf16(bytes: &[u8], offset: usize, low: usize, findings: &mut [Finding]) {
    for finding in findings {
        let before = &bytes[offset..finding.start.min(bytes.len())];
        let newlines = before
            .chunks_exact(2)
            .filter(|unit| unit[low] == b'\n' && unit[1 - low] == 0)
            .count();
        finding.line = newlines + 1;
    }
}

/// The detectors one window scan runs, and the window's start offset in the input.
struct Window {
    known: bool,
    tokens: bool,
    keys: bool,
    base: usize,
}

/// Merges raw hits into findings. Known-secret hits that overlap or touch become one
/// finding covering all of them. A pattern hit inside another hit of the same detector
/// (a duplicate from a decoded view, say) is dropped.
fn merge(mut hits: Vec<Hit>) -> Vec<Finding> {
    // At equal starts the longer hit comes first, and specific rules before the generic
    // one, so the containment check keeps the more specific finding.
    hits.sort_by_key(|hit| {
        (
            hit.start,
            Reverse(hit.end),
            hit.rule == "generic-secret",
            hit.encoding,
            hit.detector,
        )
    });

    let mut findings: Vec<Finding> = Vec::with_capacity(hits.len());
    let mut known_last: Option<usize> = None;
    let mut covered_until = [0usize; 3];
    for hit in hits {
        if hit.detector == Detector::KnownSecrets {
            if let Some(index) = known_last {
                let merged = &mut findings[index];
                if hit.start <= merged.end {
                    merged.end = merged.end.max(hit.end);
                    continue;
                }
            }
            known_last = Some(findings.len());
        } else {
            let covered = &mut covered_until[hit.detector as usize];
            if hit.end <= *covered {
                continue;
            }
            *covered = hit.end;
        }

        findings.push(Finding {
            rule: hit.rule,
            detector: hit.detector,
            encoding: hit.encoding,
            start: hit.start,
            end: hit.end,
            line: 0,
        });
    }
    findings
}

/// Sets each finding's 1-based line number; `findings` must be sorted by start.
fn assign_lines(bytes: &[u8], findings: &mut [Finding]) {
    let mut line = 1;
    let mut counted_to = 0;
    for finding in findings {
        let start = finding.start.min(bytes.len());
        line += bytes[counted_to..start]
            .iter()
            .filter(|&&byte| byte == b'\n')
            .count();
        counted_to = start;
        finding.line = line;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECRET: &str = "Zq8vN3kLp0Xa7Rt2";

    #[test]
    fn scanner_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Scanner>();
    }

    #[test]
    fn debug_hides_known_secrets() {
        let scanner = Scanner::new(&[SECRET]);
        let debug = format!("{scanner:?}");
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(debug.contains("known_secrets: 1"), "{debug}");
    }

    #[test]
    fn findings_across_window_edges_are_found_once() {
        let scanner = Scanner::new(&[SECRET]).with_window(64, 48);
        let mut input = vec![b'.'; 50];
        input.extend_from_slice(SECRET.as_bytes());
        input.extend_from_slice(&[b' '; 100]);
        input.extend_from_slice(SECRET.as_bytes());
        let findings = scanner.scan(&input);
        let spans: Vec<_> = findings.iter().map(Finding::range).collect();
        assert_eq!(spans, vec![50..66, 166..182]);
    }

    #[test]
    fn keyword_before_window_edge_counts() {
        // An AWS secret key is only reported near its keyword; here the keyword is in the
        // first window and the key starts in the second.
        let key = "Zq8vN3kLp0Xa7Rt2Wm5Yc1Hb6Jd9Fg4Ks3Tq/+Ab";
        let input = format!("{}aws_secret_access_key = {key}\n", ".".repeat(40));
        let whole = Scanner::default().scan(input.as_bytes());
        let windowed = Scanner::default()
            .with_window(64, 256)
            .scan(input.as_bytes());
        assert_eq!(whole.len(), 1, "{whole:?}");
        assert_eq!(whole[0].rule, "aws-secret-access-key");
        assert_eq!(windowed, whole);
    }

    #[test]
    fn lines_are_one_based() {
        let scanner = Scanner::new(&[SECRET]);
        let input = format!("a\nb\n{SECRET}\n{SECRET}");
        let lines: Vec<_> = scanner
            .scan(input.as_bytes())
            .iter()
            .map(|f| f.line)
            .collect();
        assert_eq!(lines, vec![3, 4]);
    }

    proptest! {
        #[test]
        fn small_windows_find_what_one_window_finds(
            text in "[.,; \n]{0,600}",
            secret_at in 0usize..600,
            token_at in 0usize..600,
        ) {
            let token = "ghp_Zq8vN3kLp0Xa7Rt2Wm5Yc1Hb6Jd9Fg4Ks3T";
            let mut input = text.into_bytes();
            let at = secret_at.min(input.len());
            input.splice(at..at, SECRET.bytes());
            let at = token_at.min(input.len());
            input.splice(at..at, token.bytes());

            let whole = Scanner::new(&[SECRET]);
            let windowed = Scanner::new(&[SECRET]).with_window(64, 128);
            prop_assert_eq!(windowed.scan(&input), whole.scan(&input));
        }
    }
}
