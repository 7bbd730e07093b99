//! Matching of known secret values in raw, encoded and separator-split forms.
//!
//! Every value is expanded once, at construction, into all the byte strings it can
//! appear as: itself, base64 and base64url fragments for each alignment, percent-encoded
//! forms, and hex. Aho-Corasick automata then find all of them in one linear pass.
//! Split forms are found by removing separator characters from both the patterns and a
//! copy of the input, and mapping match offsets back through the copy's index map.

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::ScannerError;
use crate::encode::{Alphabet, base64_fragments, hex_lower, percent_encode};
use crate::finding::Encoding;

/// The shortest known secret, in bytes, that is searched for.
///
/// Shorter values occur by chance in ordinary text and in encoded data (any 6-byte value
/// has base64 fragments of only 6 characters), so matching them would flag most traffic.
/// Values this short are not strong secrets anyway.
pub const MIN_KNOWN_SECRET_LEN: usize = 8;

/// A match of a known secret in a scanned buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KnownMatch {
    pub start: usize,
    pub end: usize,
    pub encoding: Encoding,
}

/// An automaton and the encoding each of its patterns stands for.
struct Automaton {
    searcher: AhoCorasick,
    encodings: Vec<Encoding>,
}

impl Automaton {
    fn build(
        patterns: Vec<(Vec<u8>, Encoding)>,
        ignore_case: bool,
    ) -> Result<Option<Automaton>, ScannerError> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let (bytes, encodings): (Vec<Vec<u8>>, Vec<Encoding>) = patterns.into_iter().unzip();
        let searcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(ignore_case)
            .build(&bytes)
            .map_err(|source| ScannerError::Automaton { source })?;
        Ok(Some(Automaton {
            searcher,
            encodings,
        }))
    }

    fn find(&self, haystack: &[u8], mut report: impl FnMut(usize, usize, Encoding)) {
        for hit in self.searcher.find_iter(haystack) {
            report(
                hit.start(),
                hit.end(),
                self.encodings[hit.pattern().as_usize()],
            );
        }
    }
}

/// Patterns collected without duplicates; the first encoding given for a pattern wins.
#[derive(Default)]
struct PatternList {
    seen: HashSet<Vec<u8>>,
    patterns: Vec<(Vec<u8>, Encoding)>,
}

impl PatternList {
    fn add(&mut self, pattern: Vec<u8>, encoding: Encoding) {
        if pattern.len() >= MIN_KNOWN_SECRET_LEN && self.seen.insert(pattern.clone()) {
            self.patterns.push((pattern, encoding));
        }
    }
}

/// The compiled known secrets of one scanner.
///
/// Raw, percent-encoded and hex forms are matched without regard to ASCII case: a
/// lower-cased secret (in a host name, say) still gives most of it away, and hex has no
/// canonical case. Base64 forms are matched exactly, because case changes their meaning.
pub(crate) struct KnownSecrets {
    /// Raw, percent-encoded and hex forms, ignoring ASCII case.
    folded: Option<Automaton>,
    /// Base64 and base64url fragments, matched exactly.
    base64: Option<Automaton>,
    /// The folded forms with separators removed, for a separator-free copy of the input.
    folded_stripped: Option<Automaton>,
    /// The base64 fragments with separators removed, for the same copy.
    base64_stripped: Option<Automaton>,
    /// Number of values compiled in.
    count: usize,
}

impl KnownSecrets {
    pub(crate) fn compile<S: AsRef<str>>(values: &[S]) -> Result<KnownSecrets, ScannerError> {
        let mut folded = PatternList::default();
        let mut base64 = PatternList::default();
        let mut count = 0;

        for value in values {
            let value = value.as_ref().as_bytes();
            if value.len() < MIN_KNOWN_SECRET_LEN {
                continue;
            }
            count += 1;
            folded.add(value.to_vec(), Encoding::Raw);
            for upper_hex in [true, false] {
                for space_as_plus in [true, false] {
                    let encoded = percent_encode(value, upper_hex, space_as_plus);
                    if encoded != value {
                        folded.add(encoded, Encoding::Percent);
                    }
                }
            }
            folded.add(hex_lower(value), Encoding::Hex);
            for alphabet in [Alphabet::Standard, Alphabet::UrlSafe] {
                for fragment in base64_fragments(value, alphabet) {
                    base64.add(fragment, Encoding::Base64);
                }
            }
        }

        let strip_all = |list: &PatternList| {
            let mut stripped = PatternList::default();
            for (pattern, _) in &list.patterns {
                stripped.add(strip_separators(pattern), Encoding::Separated);
            }
            stripped
        };
        let folded_stripped = strip_all(&folded);
        let base64_stripped = strip_all(&base64);

        Ok(KnownSecrets {
            folded: Automaton::build(folded.patterns, true)?,
            base64: Automaton::build(base64.patterns, false)?,
            folded_stripped: Automaton::build(folded_stripped.patterns, true)?,
            base64_stripped: Automaton::build(base64_stripped.patterns, false)?,
            count,
        })
    }

    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Appends every raw, base64, percent-encoded and hex match in `haystack` to `out`.
    pub(crate) fn find_exact(&self, haystack: &[u8], out: &mut Vec<KnownMatch>) {
        for automaton in [&self.folded, &self.base64].into_iter().flatten() {
            automaton.find(haystack, |start, end, encoding| {
                out.push(KnownMatch {
                    start,
                    end,
                    encoding,
                });
            });
        }
    }

    /// Appends every match found after removing separators from `haystack` to `out`, with
    /// offsets of `haystack`. Forms found by [`KnownSecrets::find_exact`] are found here
    /// too, so callers merge overlapping matches.
    pub(crate) fn find_separated(&self, haystack: &[u8], out: &mut Vec<KnownMatch>) {
        if self.folded_stripped.is_none() && self.base64_stripped.is_none() {
            return;
        }
        let (copy, offsets) = strip_with_offsets(haystack);
        for automaton in [&self.folded_stripped, &self.base64_stripped]
            .into_iter()
            .flatten()
        {
            automaton.find(&copy, |start, end, _| {
                out.push(KnownMatch {
                    start: offsets[start] as usize,
                    end: offsets[end - 1] as usize + 1,
                    encoding: Encoding::Separated,
                });
            });
        }
    }
}

/// Returns whether `byte` is a separator that a split secret may carry between its
/// characters: ASCII whitespace, quotes, and `-_.:/,|+`.
///
/// Quotes and `+` are separators so that `"abcd" + "efgh"` string concatenation is seen
/// as `abcdefgh`.
fn is_separator(byte: u8) -> bool {
    SEPARATORS[usize::from(byte)]
}

/// [`is_separator`] as a table, built at compile time.
static SEPARATORS: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        #[allow(clippy::cast_possible_truncation)]
        let b = byte as u8;
        table[byte] = b.is_ascii_whitespace()
            || matches!(
                b,
                b'-' | b'_' | b'.' | b':' | b'/' | b',' | b'|' | b'"' | b'\'' | b'+' | b'\x0b'
            );
        byte += 1;
    }
    table
};

/// Returns the length of the separator at the start of `bytes`: 1 for a separator byte,
/// 2 for a `\n`, `\r` or `\t` escape as written in JSON or C strings, 0 otherwise. It
/// defines what [`strip_with_offsets`] removes.
#[cfg(test)]
fn separator_len(bytes: &[u8]) -> usize {
    match bytes {
        [b'\\', b'n' | b'r' | b't', ..] => 2,
        [byte, ..] if is_separator(*byte) => 1,
        _ => 0,
    }
}

fn strip_separators(bytes: &[u8]) -> Vec<u8> {
    strip_with_offsets(bytes).0
}

/// Returns `bytes` without separators, and the offset in `bytes` of each kept byte.
///
/// Offsets are `u32` to halve the map's size; the scanner calls this on windows far
/// smaller than 4 GiB.
fn strip_with_offsets(bytes: &[u8]) -> (Vec<u8>, Vec<u32>) {
    assert!(
        u32::try_from(bytes.len()).is_ok(),
        "scan windows are smaller than 4 GiB"
    );
    // Every byte is written at the next free place and the place is taken only when the
    // byte is kept, so the loop has no branch on separators.
    let mut copy = vec![0; bytes.len()];
    let mut offsets = vec![0; bytes.len()];
    let mut kept = 0;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'\\' && matches!(bytes.get(i + 1), Some(b'n' | b'r' | b't')) {
            i += 2;
            continue;
        }
        copy[kept] = byte;
        #[allow(clippy::cast_possible_truncation)]
        let offset = i as u32; // checked above
        offsets[kept] = offset;
        kept += usize::from(!is_separator(byte));
        i += 1;
    }
    copy.truncate(kept);
    offsets.truncate(kept);
    (copy, offsets)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Strips separators one byte at a time, the definition that [`strip_with_offsets`]
    /// implements faster.
    fn strip_reference(bytes: &[u8]) -> (Vec<u8>, Vec<u32>) {
        let mut copy = Vec::new();
        let mut offsets = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let skip = separator_len(&bytes[i..]);
            if skip > 0 {
                i += skip;
                continue;
            }
            copy.push(bytes[i]);
            offsets.push(u32::try_from(i).expect("small"));
            i += 1;
        }
        (copy, offsets)
    }

    proptest! {
        #[test]
        fn strip_matches_the_reference(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'\\'), Just(b'n'), Just(b' '), Just(b'-'), any::<u8>()],
                0..200,
            ),
        ) {
            prop_assert_eq!(strip_with_offsets(&bytes), strip_reference(&bytes));
        }
    }

    #[test]
    fn strip_removes_separators_and_escapes() {
        let (copy, offsets) = strip_with_offsets(b"a-b\\nc d");
        assert_eq!(copy, b"abcd");
        assert_eq!(offsets, vec![0, 2, 5, 7]);
    }

    #[test]
    fn short_values_are_ignored() {
        let known = KnownSecrets::compile(&["", "short", "12345678"]).expect("compiles");
        assert_eq!(known.count(), 1);
    }
}
