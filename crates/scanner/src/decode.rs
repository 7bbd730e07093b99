//! Decoding of base64 runs, percent-encoded runs and backslash escapes in the input, so
//! that the detectors also scan what an encoded value hides.
//!
//! Each run is decoded once. Decoded base64 is searched for base64 runs again, up to
//! [`MAX_BASE64_DEPTH`] levels, so base64 of base64 is seen. Other decoded bytes are
//! scanned but never decoded again. Each level is at most three quarters the size of the
//! one above, so the work stays within a small multiple of the input size.

use crate::encode::{decode_base64_lenient, is_base64_byte};
use crate::finding::Encoding;
use crate::unescape::{
    Escape, has_backslash_escape, has_percent_escape, input_span, percent_decode, unescape,
};

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
            if !has_percent_escape(run) {
                continue;
            }
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
        while i < haystack.len() {
            if !haystack[i].is_ascii_hexdigit() {
                i += 1;
                continue;
            }
            let start = i;
            while i < haystack.len() && haystack[i].is_ascii_hexdigit() {
                i += 1;
            }
            if i - start < MIN_HEX_RUN {
                continue;
            }
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
        while i < haystack.len() {
            if !is_base64_byte(haystack[i]) {
                i += 1;
                continue;
            }
            i = self.collect_base64_run(haystack, i);
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
            let byte = haystack[i];
            if is_base64_byte(byte) {
                self.chars.push(byte);
                self.offsets.push(i);
                line_len += 1;
                i += 1;
                continue;
            }

            let newline_len = match &haystack[i..] {
                [b'\n', ..] => 1,
                [b'\r', b'\n', ..] => 2,
                _ => 0,
            };
            let wrapped = newline_len > 0
                && line_len >= MIN_WRAPPED_LINE
                && line_len % 4 == 0
                && haystack
                    .get(i + newline_len)
                    .is_some_and(|&next| is_base64_byte(next));
            if !wrapped {
                break;
            }
            i += newline_len;
            line_len = 0;
        }
        i
    }
}

/// Returns whether `bytes` has a run of [`MIN_BASE64_RUN`] base64 characters, so that
/// decoding it again can find something.
fn has_base64_run(bytes: &[u8]) -> bool {
    let mut run = 0;
    for &byte in bytes {
        if is_base64_byte(byte) {
            run += 1;
            if run >= MIN_BASE64_RUN {
                return true;
            }
        } else if byte != b'\n' && byte != b'\r' {
            run = 0;
        }
    }
    false
}

/// Returns whether `byte` ends a URL-like run: whitespace, controls, quotes, angle
/// brackets and non-ASCII bytes.
fn ends_percent_run(byte: u8) -> bool {
    !byte.is_ascii_graphic() || matches!(byte, b'"' | b'\'' | b'<' | b'>' | b'`' | b'\\')
}

/// Returns each maximal run of URL-like bytes with its offset.
fn percent_runs(haystack: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut offset = 0;
    haystack
        .split(|&byte| ends_percent_run(byte))
        .filter_map(move |run| {
            let start = offset;
            offset += run.len() + 1;
            (!run.is_empty()).then_some((start, run))
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
    use super::*;

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
        let runs: Vec<_> = percent_runs(b"a=b%20c \"x%41\" y").collect();
        assert_eq!(
            runs,
            vec![(0, &b"a=b%20c"[..]), (9, &b"x%41"[..]), (15, &b"y"[..])]
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
