//! Decoding of request bodies by `Content-Encoding` before the DLP scans them, with a
//! size cap and a decompression-ratio cap so a small compressed body cannot expand into
//! gigabytes inside the proxy.

use std::io::Read;

use http::HeaderMap;

/// Largest request body, as received, that the proxy buffers and scans. Larger bodies are
/// refused, never forwarded unscanned.
pub(crate) const MAX_BODY: usize = 16 * 1024 * 1024;

/// Largest body once decoded.
pub(crate) const MAX_DECODED: usize = 32 * 1024 * 1024;

/// Largest ratio of decoded to encoded size, checked once a decoded body passes
/// [`RATIO_FREE`] bytes. Ordinary text compresses 5 to 20 times; zip bombs go far beyond.
pub(crate) const MAX_RATIO: usize = 100;

/// Decoded size below which the ratio is not checked, so small, very repetitive bodies
/// (a JSON list of zeros) are accepted.
const RATIO_FREE: usize = 1024 * 1024;

/// Why a body could not be decoded for scanning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// An encoding the proxy cannot decode, so it cannot scan the body. The message does
    /// not repeat the header value, because refusals never echo request headers.
    #[error(
        "the content encoding is not one of gzip, x-gzip, deflate, br, zstd or identity, so \
         the body cannot be scanned"
    )]
    Unsupported,
    /// The body does not decode.
    #[error("the body is not valid {0} data")]
    Corrupt(&'static str),
    /// The decoded body exceeds a cap.
    #[error(
        "the decoded body exceeds the proxy's limit ({MAX_DECODED} bytes, or {MAX_RATIO} \
         times its encoded size)"
    )]
    TooLarge,
}

/// One content coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

/// Returns the codings of `Content-Encoding`, in the order they were applied, or an error
/// for one the proxy does not know. `identity` is skipped.
fn codings(headers: &HeaderMap) -> Result<Vec<Coding>, DecodeError> {
    let mut out = Vec::new();
    for value in headers.get_all(http::header::CONTENT_ENCODING) {
        let text = value.to_str().map_err(|_| DecodeError::Unsupported)?;
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let coding = match name.to_ascii_lowercase().as_str() {
                "gzip" | "x-gzip" => Coding::Gzip,
                "deflate" => Coding::Deflate,
                "br" => Coding::Brotli,
                "zstd" => Coding::Zstd,
                "identity" => continue,
                _ => return Err(DecodeError::Unsupported),
            };
            out.push(coding);
        }
    }
    Ok(out)
}

/// Decodes `body` by every coding of its `Content-Encoding` headers, last applied first.
// TODO(dlp): inside a body only gzip and zstd streams are found and decoded; bzip2, xz and
// raw deflate there are scanned as raw bytes.
pub(crate) fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut data = body.to_vec();
    for coding in codings(headers)?.into_iter().rev() {
        data = decode_one(coding, &data)?;
        if data.len() > RATIO_FREE && data.len() / body.len().max(1) > MAX_RATIO {
            return Err(DecodeError::TooLarge);
        }
    }
    Ok(data)
}

/// Gzip's magic bytes with the deflate method, and zstd's frame magic.
const EMBEDDED_MAGIC: [(&[u8], Coding); 2] = [
    (&[0x1f, 0x8b, 0x08], Coding::Gzip),
    (&[0x28, 0xb5, 0x2f, 0xfd], Coding::Zstd),
];

/// How many candidate streams of each format are tried in one body.
const MAX_EMBEDDED: usize = 16;

/// Decodes the gzip and zstd streams that start anywhere inside `data`: an upload of a
/// compressed file without `Content-Encoding`, or a compressed member of a multipart
/// form, which the scanner would otherwise see only as compressed bytes. Bytes that
/// merely look like a stream's start and do not decode are skipped. Streams that
/// decode to more than [`MAX_DECODED`] bytes in all are an error, as for the body.
pub(crate) fn embedded_streams(data: &[u8]) -> Result<Vec<Vec<u8>>, DecodeError> {
    let mut streams = Vec::new();
    let mut total = 0usize;
    for (magic, coding) in EMBEDDED_MAGIC {
        for offset in memchr::memmem::find_iter(data, magic).take(MAX_EMBEDDED) {
            let rest = &data[offset..];
            let decoded = match coding {
                // One member: what follows the stream (the rest of a form) is not gzip.
                Coding::Gzip => read_capped(flate2::read::GzDecoder::new(rest), "gzip"),
                _ => decode_one(coding, rest),
            };
            match decoded {
                Ok(decoded) if !decoded.is_empty() => {
                    total += decoded.len();
                    if total > MAX_DECODED {
                        return Err(DecodeError::TooLarge);
                    }
                    streams.push(decoded);
                }
                Err(DecodeError::TooLarge) => return Err(DecodeError::TooLarge),
                _ => {}
            }
        }
    }
    Ok(streams)
}

fn decode_one(coding: Coding, data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    match coding {
        Coding::Gzip => read_capped(flate2::read::MultiGzDecoder::new(data), "gzip"),
        Coding::Deflate => {
            // `deflate` means zlib-wrapped; some clients send raw deflate instead.
            read_capped(flate2::read::ZlibDecoder::new(data), "deflate")
                .or_else(|_| read_capped(flate2::read::DeflateDecoder::new(data), "deflate"))
        }
        Coding::Brotli => read_capped(brotli_decompressor::Decompressor::new(data, 8192), "br"),
        Coding::Zstd => {
            let decoder = ruzstd::decoding::StreamingDecoder::new(data)
                .map_err(|_| DecodeError::Corrupt("zstd"))?;
            read_capped(decoder, "zstd")
        }
    }
}

/// Reads at most [`MAX_DECODED`] bytes; one more is an error.
fn read_capped(reader: impl Read, name: &'static str) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let limit = u64::try_from(MAX_DECODED + 1).expect("the cap fits in u64");
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| DecodeError::Corrupt(name))?;
    if out.len() > MAX_DECODED {
        return Err(DecodeError::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use http::HeaderValue;

    use super::*;

    fn headers(encoding: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(
            http::header::CONTENT_ENCODING,
            HeaderValue::from_str(encoding).expect("valid"),
        );
        map
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).expect("write");
        encoder.finish().expect("finish")
    }

    #[test]
    fn decodes_stacked_gzip() {
        let body = gzip(&gzip(b"hello"));
        assert_eq!(
            decode_body(&headers("GZIP, gzip"), &body).expect("decodes"),
            b"hello"
        );
    }

    #[test]
    fn decodes_zlib_and_raw_deflate() {
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(b"zlib text").expect("write");
        let zlib = zlib.finish().expect("finish");
        assert_eq!(
            decode_body(&headers("deflate"), &zlib).expect("decodes"),
            b"zlib text"
        );
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(b"raw text").expect("write");
        let raw = raw.finish().expect("finish");
        assert_eq!(
            decode_body(&headers("deflate"), &raw).expect("decodes"),
            b"raw text"
        );
    }

    /// Builds a brotli stream that stores `data` in one uncompressed meta-block (at most
    /// 65536 bytes), written by hand from the brotli format (RFC 7932, section 9.2).
    fn brotli_stored(data: &[u8]) -> Vec<u8> {
        let length = u32::try_from(data.len() - 1).expect("short");
        // WBITS = 16 (one 0 bit), ISLAST = 0, MNIBBLES = 4 (00), MLEN - 1 in 16 bits,
        // ISUNCOMPRESSED = 1, then padding to the byte boundary.
        let header = (length << 4) | (1 << 20);
        let mut out = header.to_le_bytes()[..3].to_vec();
        out.extend_from_slice(data);
        // A last, empty meta-block: ISLAST = 1, ISLASTEMPTY = 1.
        out.push(0b11);
        out
    }

    #[test]
    fn decodes_brotli_and_zstd() {
        let body = brotli_stored(b"brotli text");
        assert_eq!(
            decode_body(&headers("br"), &body).expect("decodes"),
            b"brotli text"
        );
        let zstd = ruzstd::encoding::compress_to_vec(
            &b"zstd text"[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert_eq!(
            decode_body(&headers("zstd"), &zstd).expect("decodes"),
            b"zstd text"
        );
    }

    #[test]
    fn refuses_unknown_and_corrupt() {
        assert!(matches!(
            decode_body(&headers("x-foo"), b"abc"),
            Err(DecodeError::Unsupported)
        ));
        assert!(matches!(
            decode_body(&headers("gzip"), b"not gzip"),
            Err(DecodeError::Corrupt(_))
        ));
        assert!(matches!(
            decode_body(&headers("br"), &[0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::Corrupt(_))
        ));
        assert!(matches!(
            decode_body(&headers("zstd"), b"not zstd"),
            Err(DecodeError::Corrupt(_))
        ));
        // Positive control: identity passes the body through.
        assert_eq!(
            decode_body(&headers("identity"), b"abc").expect("ok"),
            b"abc"
        );
    }

    #[test]
    fn refuses_a_decompression_bomb() {
        let zeros = vec![0u8; 8 * 1024 * 1024];
        let bomb = gzip(&zeros);
        assert!(
            bomb.len() * MAX_RATIO < zeros.len(),
            "the sample is not a bomb"
        );
        assert_eq!(
            decode_body(&headers("gzip"), &bomb),
            Err(DecodeError::TooLarge)
        );
        // Positive control: a small repetitive body under the ratio floor decodes.
        let small = gzip(&zeros[..1000]);
        assert_eq!(
            decode_body(&headers("gzip"), &small).expect("ok").len(),
            1000
        );
    }

    // Property tests over the decoders, which parse bytes the agent controls. They
    // stand in for a fuzz target, because cargo-fuzz needs a nightly toolchain.
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bodies_never_panic(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
            encoding in proptest::sample::select(
                vec!["gzip", "deflate", "br", "zstd", "gzip, br", "zstd, gzip"],
            ),
        ) {
            if let Ok(decoded) = decode_body(&headers(encoding), &body) {
                proptest::prop_assert!(decoded.len() <= MAX_DECODED);
            }
        }

        #[test]
        fn gzip_round_trips(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..8192),
        ) {
            let decoded = decode_body(&headers("gzip"), &gzip(&data)).expect("decodes");
            proptest::prop_assert_eq!(decoded, data);
        }
    }
}
