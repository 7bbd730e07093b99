//! Encoders that produce the forms a known secret is searched in, and the lenient base64
//! decoder used to rescan base64 runs of the input.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// Encodes `bytes` as lower-case hexadecimal.
pub(crate) fn hex_lower(bytes: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)]);
        out.push(DIGITS[usize::from(byte & 0x0f)]);
    }
    out
}

/// A base64 alphabet.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Alphabet {
    /// RFC 4648 section 4: `+` and `/`.
    Standard,
    /// RFC 4648 section 5: `-` and `_`.
    UrlSafe,
}

/// Returns the base64 characters that depend only on `bytes`, for each of the three
/// positions `bytes` can take relative to a 3-byte group of a longer encoded message.
///
/// A base64 character covers 6 bits, so the characters at either edge of an embedded
/// value mix its bits with those of its neighbours. Dropping those edge characters
/// leaves a fragment that appears in the encoding of any message containing `bytes` at
/// that alignment, whatever surrounds it.
pub(crate) fn base64_fragments(bytes: &[u8], alphabet: Alphabet) -> [Vec<u8>; 3] {
    std::array::from_fn(|offset| {
        let mut message = vec![0u8; offset];
        message.extend_from_slice(bytes);
        let encoded = match alphabet {
            Alphabet::Standard => STANDARD_NO_PAD.encode(&message),
            Alphabet::UrlSafe => URL_SAFE_NO_PAD.encode(&message),
        };

        // Character i covers bits 6i..6i+6 of the message; the value occupies bits
        // 8 * offset .. 8 * (offset + len).
        let first = (8 * offset).div_ceil(6);
        let last = 8 * (offset + bytes.len()) / 6;
        encoded.as_bytes()[first.min(last)..last].to_vec()
    })
}

/// Percent-encodes every byte outside the RFC 3986 unreserved set (`A-Z a-z 0-9 - . _ ~`).
///
/// `upper_hex` picks the case of the hex digits; `space_as_plus` writes a space as `+`, as
/// HTML form encoding does, instead of `%20`.
pub(crate) fn percent_encode(bytes: &[u8], upper_hex: bool, space_as_plus: bool) -> Vec<u8> {
    let digits: &[u8; 16] = if upper_hex {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = Vec::with_capacity(bytes.len() * 3);
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte);
        } else if byte == b' ' && space_as_plus {
            out.push(b'+');
        } else {
            out.push(b'%');
            out.push(digits[usize::from(byte >> 4)]);
            out.push(digits[usize::from(byte & 0x0f)]);
        }
    }
    out
}

/// Returns whether `byte` belongs to the standard or the URL-safe base64 alphabet.
#[cfg(test)]
pub(crate) fn is_base64_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'-' | b'_')
}

const fn base64_value(byte: u8) -> u8 {
    match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' | b'-' => 62,
        _ => 63,
    }
}

/// [`base64_value`] as a table, built at compile time.
static BASE64_VALUES: [u8; 256] = {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 256 {
        #[allow(clippy::cast_possible_truncation)]
        let b = byte as u8;
        table[byte] = base64_value(b);
        byte += 1;
    }
    table
};

/// Decodes base64 characters of either alphabet, without padding, into `out`.
///
/// Every byte of `chars` must belong to either alphabet. Trailing bits that do not fill
/// a byte are dropped, so any run decodes; the result has `len * 6 / 8` bytes.
pub(crate) fn decode_base64_lenient(chars: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(chars.len() * 3 / 4);
    let value = |byte: u8| u32::from(BASE64_VALUES[usize::from(byte)]);
    // Four characters are three whole bytes, so the groups need no carried bits.
    let groups = chars.chunks_exact(4);
    let rest = groups.remainder();
    for group in groups {
        let bits = (value(group[0]) << 18)
            | (value(group[1]) << 12)
            | (value(group[2]) << 6)
            | value(group[3]);
        out.extend_from_slice(&bits.to_be_bytes()[1..]);
    }
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &byte in rest {
        buffer = (buffer << 6) | value(byte);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).expect("masked to 8 bits"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_lower_encodes_each_byte() {
        assert_eq!(hex_lower(b"\x00\xff\x1a"), b"00ff1a");
    }

    #[test]
    fn base64_fragments_appear_in_longer_messages() {
        let value = b"secret-value-42";
        for alphabet in [Alphabet::Standard, Alphabet::UrlSafe] {
            let fragments = base64_fragments(value, alphabet);
            for prefix_len in 0..6 {
                let mut message = b"xyzuvw"[..prefix_len].to_vec();
                message.extend_from_slice(value);
                message.extend_from_slice(b"tail");
                let encoded = match alphabet {
                    Alphabet::Standard => STANDARD_NO_PAD.encode(&message),
                    Alphabet::UrlSafe => URL_SAFE_NO_PAD.encode(&message),
                };
                let fragment = &fragments[prefix_len % 3];
                assert!(
                    fragment.len() >= 18,
                    "fragment too short: {}",
                    fragment.len()
                );
                assert!(
                    encoded
                        .as_bytes()
                        .windows(fragment.len())
                        .any(|w| w == fragment),
                    "prefix {prefix_len} {alphabet:?}"
                );
            }
        }
    }

    #[test]
    fn percent_encode_keeps_unreserved() {
        assert_eq!(percent_encode(b"a-b c/~", true, true), b"a-b+c%2F~");
        assert_eq!(percent_encode(b"a b/", false, false), b"a%20b%2f");
    }

    #[test]
    fn lenient_base64_decodes_both_alphabets() {
        let mut out = Vec::new();
        decode_base64_lenient(b"aGk-Pj8_fn5-", &mut out);
        assert_eq!(out, b"hi>>??~~~");
        decode_base64_lenient(b"aGk+Pj8/fn5+", &mut out);
        assert_eq!(out, b"hi>>??~~~");
        decode_base64_lenient(b"aGVsbG8", &mut out);
        assert_eq!(out, b"hello");
    }

    proptest::proptest! {
        #[test]
        fn lenient_base64_matches_bit_by_bit_decoding(
            chars in "[A-Za-z0-9+/_-]{0,80}",
        ) {
            let mut out = Vec::new();
            decode_base64_lenient(chars.as_bytes(), &mut out);
            // The definition: six bits per character, every whole byte emitted.
            let mut expected = Vec::new();
            let (mut buffer, mut bits) = (0u32, 0u32);
            for byte in chars.bytes() {
                buffer = (buffer << 6) | u32::from(base64_value(byte));
                bits += 6;
                if bits >= 8 {
                    bits -= 8;
                    expected.push(u8::try_from((buffer >> bits) & 0xff).expect("masked"));
                }
            }
            proptest::prop_assert_eq!(out, expected);
        }
    }
}
