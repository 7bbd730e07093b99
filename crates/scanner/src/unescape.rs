//! Decoders for escape-based encodings (percent-encoding and backslash escapes) that
//! record where each escape was, so spans of the decoded text map back to the input.

/// One decoded escape: `input_len` bytes at input offset `input_start` became `output_len`
/// bytes at output offset `output_start`. Offsets are relative to the decoded run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Escape {
    pub output_start: usize,
    pub output_len: usize,
    pub input_start: usize,
    pub input_len: usize,
}

/// Maps a span `start..end` of decoded output back to the run it was decoded from, given
/// the run's escapes in ascending order. A span that cuts into an escape's output is
/// widened to the whole escape.
pub(crate) fn input_span(escapes: &[Escape], start: usize, end: usize) -> (usize, usize) {
    // Input offset of output byte `index`, and whether that byte came from an escape.
    let locate = |index: usize| -> (usize, Option<Escape>) {
        let before = escapes.partition_point(|escape| escape.output_start <= index);
        let Some(escape) = before.checked_sub(1).map(|last| escapes[last]) else {
            return (index, None);
        };
        if index < escape.output_start + escape.output_len {
            return (escape.input_start, Some(escape));
        }
        let literal = index - escape.output_start - escape.output_len;
        (escape.input_start + escape.input_len + literal, None)
    };

    let (input_start, _) = locate(start);
    let input_end = match locate(end - 1) {
        (_, Some(escape)) => escape.input_start + escape.input_len,
        (offset, None) => offset + 1,
    };
    (input_start, input_end)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Returns the byte that two hex digits at the start of `bytes` encode.
fn hex_byte(bytes: &[u8]) -> Option<u8> {
    match bytes {
        [high, low, ..] => Some((hex_value(*high)? << 4) | hex_value(*low)?),
        _ => None,
    }
}

/// Returns the 16-bit code unit of a `\uXXXX` escape at the start of `bytes`.
fn utf16_unit(bytes: &[u8]) -> Option<u16> {
    match bytes {
        [b'\\', b'u', a, b, c, d, ..] => {
            let high = u16::from(hex_byte(&[*a, *b])?);
            let low = u16::from(hex_byte(&[*c, *d])?);
            Some((high << 8) | low)
        }
        _ => None,
    }
}

/// Returns whether `run` contains at least one valid `%XX` escape; the reference for the
/// decoder's search for escapes.
#[cfg(test)]
pub(crate) fn has_percent_escape(run: &[u8]) -> bool {
    run.windows(3)
        .any(|window| window[0] == b'%' && hex_byte(&window[1..]).is_some())
}

/// Percent-decodes `run` into `out` (`%XX` to a byte, `+` to a space) and records every
/// `%XX` escape in `escapes`. A `%` that does not start a valid escape is kept as is.
pub(crate) fn percent_decode(run: &[u8], out: &mut Vec<u8>, escapes: &mut Vec<Escape>) {
    out.clear();
    escapes.clear();
    let mut i = 0;
    while i < run.len() {
        let byte = run[i];
        if byte == b'%'
            && let Some(decoded) = hex_byte(&run[i + 1..])
        {
            escapes.push(Escape {
                output_start: out.len(),
                output_len: 1,
                input_start: i,
                input_len: 3,
            });
            out.push(decoded);
            i += 3;
            continue;
        }
        out.push(if byte == b'+' { b' ' } else { byte });
        i += 1;
    }
}

/// Returns whether `bytes` contains a backslash escape that [`unescape`] decodes.
pub(crate) fn has_backslash_escape(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'\\', bytes).any(|at| {
        bytes.get(at + 1).is_some_and(|&next| {
            matches!(
                next,
                b'u' | b'x' | b'/' | b'"' | b'\'' | b'\\' | b'n' | b'r' | b't'
            )
        })
    })
}

/// Decodes the backslash escapes of JSON, JavaScript and C string literals into `out`:
/// `\uXXXX` (with surrogate pairs) to UTF-8, `\xXX` to a byte, and `\n \r \t \b \f \/ \"
/// \' \\`. Other backslashes, and `\u` escapes that are not valid Unicode, are kept as
/// is. Every decoded escape is recorded in `escapes`.
pub(crate) fn unescape(bytes: &[u8], out: &mut Vec<u8>, escapes: &mut Vec<Escape>) {
    out.clear();
    escapes.clear();
    out.reserve(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Bytes up to the next backslash are copied as they are, in one go.
        let literal = memchr::memchr(b'\\', &bytes[i..]).unwrap_or(bytes.len() - i);
        out.extend_from_slice(&bytes[i..i + literal]);
        i += literal;
        if i == bytes.len() {
            break;
        }
        let Some((decoded, input_len)) = decode_escape(&bytes[i..]) else {
            out.push(bytes[i]);
            i += 1;
            continue;
        };

        let output_start = out.len();
        match decoded {
            Decoded::Byte(byte) => out.push(byte),
            Decoded::Char(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
        escapes.push(Escape {
            output_start,
            output_len: out.len() - output_start,
            input_start: i,
            input_len,
        });
        i += input_len;
    }
}

enum Decoded {
    Byte(u8),
    Char(char),
}

/// Decodes the escape at the start of `bytes`; returns it and its length in bytes.
fn decode_escape(bytes: &[u8]) -> Option<(Decoded, usize)> {
    let [b'\\', kind, rest @ ..] = bytes else {
        return None;
    };
    let simple = match kind {
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'b' => Some(0x08),
        b'f' => Some(0x0c),
        b'/' | b'"' | b'\'' | b'\\' => Some(*kind),
        _ => None,
    };
    if let Some(byte) = simple {
        return Some((Decoded::Byte(byte), 2));
    }

    match kind {
        b'x' => hex_byte(rest).map(|byte| (Decoded::Byte(byte), 4)),
        b'u' => {
            let unit = utf16_unit(bytes)?;
            if let Some(c) = char::from_u32(u32::from(unit)) {
                return Some((Decoded::Char(c), 6));
            }
            // A high surrogate followed by a low surrogate escape forms one character.
            let low = utf16_unit(&bytes[6..])?;
            let c = char::decode_utf16([unit, low]).next()?.ok()?;
            Some((Decoded::Char(c), 12))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Unescapes one byte at a time: the definition that [`unescape`] implements faster.
    fn unescape_reference(bytes: &[u8]) -> (Vec<u8>, Vec<Escape>) {
        let (mut out, mut escapes) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < bytes.len() {
            let Some((decoded, input_len)) = decode_escape(&bytes[i..]) else {
                out.push(bytes[i]);
                i += 1;
                continue;
            };
            let output_start = out.len();
            match decoded {
                Decoded::Byte(byte) => out.push(byte),
                Decoded::Char(c) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
            escapes.push(Escape {
                output_start,
                output_len: out.len() - output_start,
                input_start: i,
                input_len,
            });
            i += input_len;
        }
        (out, escapes)
    }

    proptest! {
        #[test]
        fn unescape_matches_the_reference(
            bytes in proptest::collection::vec(
                prop_oneof![
                    Just(b'\\'), Just(b'u'), Just(b'x'), Just(b'n'), Just(b'd'), Just(b'8'),
                    any::<u8>(),
                ],
                0..200,
            ),
        ) {
            let (mut out, mut escapes) = (Vec::new(), Vec::new());
            unescape(&bytes, &mut out, &mut escapes);
            prop_assert_eq!((out, escapes), unescape_reference(&bytes));
        }
    }

    #[test]
    fn percent_decode_records_escapes() {
        let mut out = Vec::new();
        let mut escapes = Vec::new();
        percent_decode(b"a%41+%zz%4", &mut out, &mut escapes);
        assert_eq!(out, b"aA %zz%4");
        assert_eq!(
            escapes,
            vec![Escape {
                output_start: 1,
                output_len: 1,
                input_start: 1,
                input_len: 3
            }]
        );
    }

    #[test]
    fn unescape_decodes_json_and_c_escapes() {
        let mut out = Vec::new();
        let mut escapes = Vec::new();
        unescape(
            br#"\u0067h\x70\/\"\\\q\u00e9\ud83d\ude00"#,
            &mut out,
            &mut escapes,
        );
        assert_eq!(out, "ghp/\"\\\\q\u{e9}\u{1f600}".as_bytes());
        assert_eq!(escapes.len(), 7);
    }

    #[test]
    fn unescape_keeps_invalid_escapes() {
        let mut out = Vec::new();
        let mut escapes = Vec::new();
        unescape(br"\u12 \xZZ \ud800x", &mut out, &mut escapes);
        assert_eq!(out, br"\u12 \xZZ \ud800x");
        assert!(escapes.is_empty());
    }

    #[test]
    fn input_span_widens_to_whole_escapes() {
        // "a%41b%42c" decodes to "aAbBc".
        let escapes = [
            Escape {
                output_start: 1,
                output_len: 1,
                input_start: 1,
                input_len: 3,
            },
            Escape {
                output_start: 3,
                output_len: 1,
                input_start: 5,
                input_len: 3,
            },
        ];
        assert_eq!(input_span(&escapes, 0, 1), (0, 1));
        assert_eq!(input_span(&escapes, 1, 2), (1, 4));
        assert_eq!(input_span(&escapes, 2, 5), (4, 9));

        // "\u00e9x" decodes to two bytes of "é" and "x".
        let escapes = [Escape {
            output_start: 0,
            output_len: 2,
            input_start: 0,
            input_len: 6,
        }];
        assert_eq!(input_span(&escapes, 1, 3), (0, 7));
    }
}
