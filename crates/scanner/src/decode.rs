//! Decoding of base64 runs, percent-encoded runs and backslash escapes in the input, so
//! that the detectors also scan what an encoded value hides.
//!
//! Each run is decoded once. Decoded base64 is searched for base64 runs again, up to
//! [`MAX_BASE64_DEPTH`] levels, so base64 of base64 is seen. Other decoded bytes are
//! scanned but never decoded again. Each level is at most three quarters the size of the
//! one above, so the work stays within a small multiple of the input size.

use crate::encode::decode_base64_lenient;
use crate::finding::Encoding;
use crate::unescape::{Escape, has_backslash_escape, input_span, percent_decode, unescape};

/// The shortest base64 run that is decoded. 24 characters decode to 18 bytes; shorter
/// runs cannot hold any token the rules describe.
pub(crate) const MIN_BASE64_RUN: usize = 24;

/// Shortest run of hex digits that is decoded and rescanned: 16 bytes, less than any token
/// format the rules know.
pub(crate) const MIN_HEX_RUN: usize = 32;

/// Levels of base64 decoded inside one another: a token in base64 of base64 of base64 is
/// found, one more level is not.
pub(crate) const MAX_BASE64_DEPTH: usize = 3;

/// The shortest line after which a base64 run may continue on the next line, as in
/// MIME (76 characters) and PEM (64) line wrapping.
const MIN_WRAPPED_LINE: usize = 16;

/// Maps spans of a decoded buffer back to the encoded bytes of the input.
pub(crate) enum SpanMap<'a> {
    /// Base64: `offsets[i]` is the input offset of the run's `i`-th base64 character,
    /// and decoding started at character `alignment`.
    Base64 {
        offsets: &'a [usize],
        alignment: usize,
    },
    /// Percent-encoding or backslash escapes: the decoded run starts at input offset
    /// `origin`, and `escapes` lists its escapes.
    Escaped {
        origin: usize,
        escapes: &'a [Escape],
    },
    /// Hex: decoded byte `j` comes from the two digits at input offset `origin + 2j`.
    Hex { origin: usize },
    /// A view decoded from another decoded view: `inner` maps to the outer view's bytes,
    /// and `outer` maps those to the input.
    Nested {
        inner: &'a SpanMap<'a>,
        outer: &'a SpanMap<'a>,
    },
}

impl SpanMap<'_> {
    /// Returns the input span whose encoded bytes produced decoded bytes `start..end`.
    pub(crate) fn to_input(&self, start: usize, end: usize) -> (usize, usize) {
        debug_assert!(start < end, "spans are never empty");
        match *self {
            SpanMap::Base64 { offsets, alignment } => {
                // Decoded byte j is bits 8j..8j+8 of the run, carried by characters 8j/6
                // up to (8j+8)/6 rounded up.
                let first = (alignment + 8 * start / 6).min(offsets.len() - 1);
                let last = (alignment + (8 * end).div_ceil(6)).min(offsets.len());
                (offsets[first], offsets[last - 1] + 1)
            }
            SpanMap::Escaped { origin, escapes } => {
                let (start, end) = input_span(escapes, start, end);
                (origin + start, origin + end)
            }
            SpanMap::Hex { origin } => (origin + 2 * start, origin + 2 * end),
            SpanMap::Nested { inner, outer } => {
                let (start, end) = inner.to_input(start, end);
                outer.to_input(start, end)
            }
        }
    }
}

// TODO(dlp): HTML entities and quoted-printable are not decoded, so a token written that
// way is found only if it is also a known secret in a form that survives them.

/// Reusable buffers for decoding, so a scan allocates them once.
#[derive(Default)]
pub(crate) struct Decoder {
    chars: Vec<u8>,
    offsets: Vec<usize>,
    decoded: Vec<u8>,
    escapes: Vec<Escape>,
    /// Buffers for base64 found inside decoded base64, created on first use.
    nested: Option<Box<Decoder>>,
}

impl Decoder {
    /// Calls `visit` with each decoded view of `haystack`. The views are every base64 run
    /// of at least [`MIN_BASE64_RUN`] characters at each of its four alignments, every
    /// percent-encoded run that contains a valid escape, and every run of at least
    /// [`MIN_HEX_RUN`] hex digits at both pair alignments. If `haystack` has backslash
    /// escapes, the last view is all of it with those decoded.
    pub(crate) fn for_each_view(
        &mut self,
        haystack: &[u8],
        mut visit: impl FnMut(&[u8], &SpanMap<'_>, Encoding),
    ) {
        self.for_each_base64_view(haystack, MAX_BASE64_DEPTH, &mut |decoded, map| {
            visit(decoded, map, Encoding::Base64);
        });

        for (origin, run) in percent_runs(haystack) {
            percent_decode(run, &mut self.decoded, &mut self.escapes);
            let map = SpanMap::Escaped {
                origin,
                escapes: &self.escapes,
            };
            visit(&self.decoded, &map, Encoding::Percent);
        }

        // Git object ids are hex runs too; their decoded bytes are random and match
        // nothing, so decoding every run costs time, not false findings.
        let mut i = 0;
        while let Some(skip) = find_run(&haystack[i..], HEX, MIN_HEX_RUN) {
            let start = i + skip;
            i = start + run_len(&haystack[start..], HEX);
            for origin in [start, start + 1] {
                let digits = &haystack[origin..i];
                if digits.len() < MIN_HEX_RUN {
                    break;
                }
                self.decoded.clear();
                self.decoded.extend(
                    digits
                        .chunks_exact(2)
                        .map(|pair| (hex_value(pair[0]) << 4) | hex_value(pair[1])),
                );
                visit(&self.decoded, &SpanMap::Hex { origin }, Encoding::Hex);
            }
        }

        if has_backslash_escape(haystack) {
            unescape(haystack, &mut self.decoded, &mut self.escapes);
            let map = SpanMap::Escaped {
                origin: 0,
                escapes: &self.escapes,
            };
            visit(&self.decoded, &map, Encoding::Escaped);
        }
    }

    /// Calls `visit` with every base64 view of `haystack` (each run of at least
    /// [`MIN_BASE64_RUN`] characters at each of its four alignments) and, down to `depth`
    /// levels, with the base64 views of those views.
    fn for_each_base64_view(
        &mut self,
        haystack: &[u8],
        depth: usize,
        visit: &mut dyn FnMut(&[u8], &SpanMap<'_>),
    ) {
        let mut i = 0;
        // A run worth decoding has a first line of at least MIN_BASE64_RUN characters, or
        // of MIN_WRAPPED_LINE that continues on the next line. Shorter runs (most words of
        // text) are passed over by a counter, not looked at one by one.
        while let Some(skip) = find_run(&haystack[i..], BASE64, MIN_WRAPPED_LINE) {
            let start = i + skip;
            let line = run_len(&haystack[start..], BASE64);
            if line < MIN_BASE64_RUN && !may_wrap(haystack, start + line, line) {
                i = start + line;
                continue;
            }
            i = self.collect_base64_run(haystack, start);
            for alignment in 0..4 {
                if self.chars.len() < alignment + MIN_BASE64_RUN {
                    break;
                }
                decode_base64_lenient(&self.chars[alignment..], &mut self.decoded);
                let map = SpanMap::Base64 {
                    offsets: &self.offsets,
                    alignment,
                };
                visit(&self.decoded, &map);
                if depth > 1 && has_base64_run(&self.decoded) {
                    let nested = self.nested.get_or_insert_with(Box::default);
                    nested.for_each_base64_view(&self.decoded, depth - 1, &mut |inner, map2| {
                        visit(
                            inner,
                            &SpanMap::Nested {
                                inner: map2,
                                outer: &map,
                            },
                        );
                    });
                }
            }
        }
    }

    /// Collects the base64 run starting at `start` into `chars` and `offsets`, following
    /// it across line breaks after lines whose length is a multiple of 4; returns the
    /// offset just past the run.
    fn collect_base64_run(&mut self, haystack: &[u8], start: usize) -> usize {
        self.chars.clear();
        self.offsets.clear();
        let mut i = start;
        let mut line_len = 0;
        while i < haystack.len() {
            let line = run_len(&haystack[i..], BASE64);
            if line > 0 {
                self.chars.extend_from_slice(&haystack[i..i + line]);
                self.offsets.extend(i..i + line);
                line_len += line;
                i += line;
                continue;
            }

            let Some(newline_len) = wrap_len(haystack, i, line_len) else {
                break;
            };
            i += newline_len;
            line_len = 0;
        }
        i
    }
}

/// Class bit of base64 characters of either alphabet in [`CLASSES`].
const BASE64: u8 = 1;
/// Class bit of hex digits in [`CLASSES`].
const HEX: u8 = 2;
/// Class bit of `\n` and `\r` in [`CLASSES`].
const LINE_BREAK: u8 = 4;

/// The classes of each byte value, so runs are found with one table lookup per byte.
static CLASSES: [u8; 256] = {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 256 {
        #[allow(clippy::cast_possible_truncation)]
        let b = byte as u8;
        if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_') {
            table[byte] |= BASE64;
        }
        if b.is_ascii_hexdigit() {
            table[byte] |= HEX;
        }
        if b == b'\n' || b == b'\r' {
            table[byte] |= LINE_BREAK;
        }
        byte += 1;
    }
    table
};

fn is_base64_byte(byte: u8) -> bool {
    CLASSES[usize::from(byte)] & BASE64 != 0
}

fn is_hex_digit(byte: u8) -> bool {
    CLASSES[usize::from(byte)] & HEX != 0
}

/// Returns the start of the first run of at least `len` bytes of `class` in `bytes`,
/// counting a run that starts before `bytes` from its first byte in `bytes`.
fn find_run(bytes: &[u8], class: u8, len: usize) -> Option<usize> {
    debug_assert!(len > 0, "an empty run is everywhere");
    let mut run = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        // Branch-free on the class, so words of text cost no mispredicted branches.
        run = (run + 1) * usize::from(CLASSES[usize::from(byte)] & class != 0);
        if run == len {
            return Some(index + 1 - len);
        }
    }
    None
}

/// Returns how many bytes at the start of `bytes` are in `class`.
fn run_len(bytes: &[u8], class: u8) -> usize {
    bytes
        .iter()
        .position(|&byte| CLASSES[usize::from(byte)] & class == 0)
        .unwrap_or(bytes.len())
}

/// Returns the length of the line break at `at` (1 for `\n`, 2 for `\r\n`) when a base64
/// run whose current line has `line_len` characters continues after it.
fn wrap_len(haystack: &[u8], at: usize, line_len: usize) -> Option<usize> {
    let newline_len = match haystack.get(at..)? {
        [b'\n', ..] => 1,
        [b'\r', b'\n', ..] => 2,
        _ => return None,
    };
    let wrapped = line_len >= MIN_WRAPPED_LINE
        && line_len.is_multiple_of(4)
        && haystack
            .get(at + newline_len)
            .is_some_and(|&next| is_base64_byte(next));
    wrapped.then_some(newline_len)
}

/// Returns whether a base64 line of `line_len` characters ending at `at` continues on
/// the next line.
fn may_wrap(haystack: &[u8], at: usize, line_len: usize) -> bool {
    wrap_len(haystack, at, line_len).is_some()
}

/// Returns whether `bytes` has a run of [`MIN_BASE64_RUN`] base64 characters, so that
/// decoding it again can find something.
fn has_base64_run(bytes: &[u8]) -> bool {
    let mut run = 0;
    for &byte in bytes {
        // Branch-free on the byte: base64 counts, a line break keeps the count, anything
        // else resets it.
        let class = CLASSES[usize::from(byte)];
        let base64 = usize::from(class & BASE64 != 0);
        let kept = usize::from(class & (BASE64 | LINE_BREAK) != 0);
        run = (run + base64) * kept;
        if run >= MIN_BASE64_RUN {
            return true;
        }
    }
    false
}

/// Returns whether `byte` ends a URL-like run: whitespace, controls, quotes, angle
/// brackets and non-ASCII bytes.
fn ends_percent_run(byte: u8) -> bool {
    !byte.is_ascii_graphic() || matches!(byte, b'"' | b'\'' | b'<' | b'>' | b'`' | b'\\')
}

/// Returns each maximal run of URL-like bytes that holds a valid `%XX` escape, with its
/// offset. Runs are found from the `%` signs, so input without any costs one `memchr`.
fn percent_runs(haystack: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    // `search` is where the next `%` is looked for; `after` is where the last run ended.
    let mut search = 0;
    let mut after = 0;
    std::iter::from_fn(move || {
        while search < haystack.len() {
            let percent = search + memchr::memchr(b'%', &haystack[search..])?;
            let escape = haystack.get(percent + 1..percent + 3);
            if !escape.is_some_and(|digits| digits.iter().all(|&digit| is_hex_digit(digit))) {
                search = percent + 1;
                continue;
            }
            // A valid escape's digits are URL-like, so the run holds the whole escape.
            let start = haystack[after..percent]
                .iter()
                .rposition(|&byte| ends_percent_run(byte))
                .map_or(after, |end| after + end + 1);
            let end = haystack[percent..]
                .iter()
                .position(|&byte| ends_percent_run(byte))
                .map_or(haystack.len(), |end| percent + end);
            search = end;
            after = end;
            return Some((start, &haystack[start..end]));
        }
        None
    })
}

/// Returns the value of one hex digit; callers pass only hex digits.
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit
            .to_ascii_lowercase()
            .wrapping_sub(b'a')
            .wrapping_add(10),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::unescape::has_percent_escape;

    /// The URL-like runs with a valid escape, found by splitting the input at every byte
    /// that ends a run: the definition that [`percent_runs`] implements faster.
    fn percent_runs_reference(haystack: &[u8]) -> Vec<(usize, &[u8])> {
        let mut offset = 0;
        let mut runs = Vec::new();
        for run in haystack.split(|&byte| ends_percent_run(byte)) {
            if has_percent_escape(run) {
                runs.push((offset, run));
            }
            offset += run.len() + 1;
        }
        runs
    }

    proptest! {
        #[test]
        fn percent_runs_match_the_reference(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'%'), Just(b'4'), Just(b'a'), Just(b' '), Just(b'"'), any::<u8>()],
                0..200,
            ),
        ) {
            let runs: Vec<_> = percent_runs(&bytes).collect();
            prop_assert_eq!(runs, percent_runs_reference(&bytes));
        }

        #[test]
        fn class_table_matches_the_byte_tests(byte in any::<u8>()) {
            prop_assert_eq!(is_base64_byte(byte), crate::encode::is_base64_byte(byte));
            prop_assert_eq!(is_hex_digit(byte), byte.is_ascii_hexdigit());
        }
    }

    #[test]
    fn base64_span_maps_to_characters() {
        let offsets: Vec<usize> = (10..42).collect();
        let map = SpanMap::Base64 {
            offsets: &offsets,
            alignment: 0,
        };
        assert_eq!(map.to_input(0, 3), (10, 14));
        assert_eq!(map.to_input(3, 6), (14, 18));
        assert_eq!(map.to_input(1, 2), (11, 13));
    }

    #[test]
    fn percent_runs_split_on_whitespace_and_quotes() {
        let runs: Vec<_> = percent_runs(b"a=b%20c \"x%41\" y%zz %%4a").collect();
        assert_eq!(
            runs,
            vec![(0, &b"a=b%20c"[..]), (9, &b"x%41"[..]), (20, &b"%%4a"[..])]
        );
    }

    #[test]
    fn wrapped_base64_is_one_run() {
        let text = b"QUJDREVGR0hJSktMTU5PUFFS\nU1RVVldYWVo=";
        let mut decoder = Decoder::default();
        let mut views = Vec::new();
        decoder.for_each_view(text, |decoded, _, _| views.push(decoded.to_vec()));
        assert_eq!(views[0], b"ABCDEFGHIJKLMNOPQRSTUVWXYZ");
    }
}
