//! Bounded expansion of compressed blobs, so the scanner also reads the contents of gzip,
//! bzip2, xz, zstd and zlib streams (`.gz`, `.tar.gz`, `.bz2`, `.xz`, `.zst`, zlib data)
//! and the members of zip archives (`.zip`, `.jar`).
//!
//! PNG images are read chunk by chunk. The compressed text chunks (`zTXt`, `iTXt`) and
//! the image data (`IDAT`) are zlib streams, decompressed like the others. Plain `tEXt`
//! chunks need nothing, because the raw scan already reads them.
//!
//! Blobs are recognised by their magic bytes, not their names. The expansion fails closed:
//! an archive that cannot be parsed, a member that is encrypted or uses another compression
//! method, or output beyond the byte budget rejects the push instead of skipping the member.
//! A tar archive is not compressed, so its members are already scanned as the raw blob.
//!
//! Zlib has only a two-byte header, which some text files start with by chance (`x^`).
//! So a blob with a zlib header that does not decode is rejected only when it is not
//! UTF-8 text. Such text is scanned as it is, with whatever part of it decodes.

use std::io::{self, Read, Write};

use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};

/// Maximum nesting depth of archives inside archives that are expanded.
const MAX_DEPTH: usize = 3;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// `BZh`, then the block size `1`..`9`, then the first block's magic (the digits of pi)
/// or the end-of-stream magic (the square root of pi) of an empty stream.
const BZIP2_PREFIX: &[u8] = b"BZh";
const BZIP2_BLOCK: &[u8] = &[0x31, 0x41, 0x59, 0x26, 0x53, 0x59];
const BZIP2_END: &[u8] = &[0x17, 0x72, 0x45, 0x38, 0x50, 0x90];
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
const ZIP_LOCAL_MAGIC: &[u8] = b"PK\x03\x04";
const ZIP_EMPTY_MAGIC: &[u8] = b"PK\x05\x06";
const ZIP_END_SIGNATURE: u32 = 0x0605_4b50;
const ZIP_CENTRAL_SIGNATURE: u32 = 0x0201_4b50;
const ZIP_LOCAL_SIGNATURE: u32 = 0x0403_4b50;

/// One expanded member. `name` is the path inside the archive, with `!` between levels;
/// the contents of a compressed stream are named after its format: `<gzip>`, `<bzip2>`,
/// `<xz>`, `<zstd>` or `<zlib>`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Member {
    pub name: String,
    pub data: Vec<u8>,
}

// TODO(security): 7z and rar archives, raw deflate without a header, and compressed
// streams inside other formats (PDF streams) are not expanded, so they are scanned only
// as raw bytes.

/// Expands `blob` if it is a compressed stream, a PNG image or a zip archive, recursively
/// up to three levels.
/// `budget` is the largest number of expanded bytes in total. Returns no members for any
/// other blob.
pub(crate) fn expand(blob: &[u8], budget: u64) -> Result<Vec<Member>, String> {
    let mut members = Vec::new();
    let mut remaining = budget;
    expand_into(blob, "", 0, budget, &mut remaining, &mut members)?;
    Ok(members)
}

/// A compressed stream format recognised by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    Gzip,
    Bzip2,
    Xz,
    Zstd,
    Zlib,
}

impl Stream {
    fn detect(blob: &[u8]) -> Option<Stream> {
        if blob.starts_with(GZIP_MAGIC) {
            Some(Stream::Gzip)
        } else if is_bzip2(blob) {
            Some(Stream::Bzip2)
        } else if blob.starts_with(XZ_MAGIC) {
            Some(Stream::Xz)
        } else if blob.starts_with(ZSTD_MAGIC) {
            Some(Stream::Zstd)
        } else if is_zlib_header(blob) {
            Some(Stream::Zlib)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stream::Gzip => "gzip",
            Stream::Bzip2 => "bzip2",
            Stream::Xz => "xz",
            Stream::Zstd => "zstd",
            Stream::Zlib => "zlib",
        }
    }
}

fn is_bzip2(blob: &[u8]) -> bool {
    blob.starts_with(BZIP2_PREFIX)
        && blob
            .get(3)
            .is_some_and(|level| (b'1'..=b'9').contains(level))
        && blob
            .get(4..10)
            .is_some_and(|magic| magic == BZIP2_BLOCK || magic == BZIP2_END)
}

/// Returns whether `blob` starts with a zlib header (RFC 1950): deflate with a window of
/// at most 32 KiB, a valid header check, and no preset dictionary, which git and common
/// tools never use.
fn is_zlib_header(blob: &[u8]) -> bool {
    let [cmf, flags, ..] = *blob else {
        return false;
    };
    let deflate = cmf & 0x0f == 8 && cmf >> 4 <= 7;
    let checked = (u16::from(cmf) << 8 | u16::from(flags)) % 31 == 0;
    let preset_dictionary = flags & 0x20 != 0;
    deflate && checked && !preset_dictionary
}

fn is_archive(blob: &[u8]) -> bool {
    Stream::detect(blob).is_some()
        || blob.starts_with(PNG_MAGIC)
        || blob.starts_with(ZIP_LOCAL_MAGIC)
        || blob.starts_with(ZIP_EMPTY_MAGIC)
}

fn expand_into(
    blob: &[u8],
    prefix: &str,
    depth: usize,
    budget: u64,
    remaining: &mut u64,
    out: &mut Vec<Member>,
) -> Result<(), String> {
    let expanded = if let Some(stream) = Stream::detect(blob) {
        match decompress(stream, blob, budget, remaining) {
            Ok(data) => vec![(join(prefix, &format!("<{}>", stream.name())), data)],
            Err(_) if stream == Stream::Zlib && std::str::from_utf8(blob).is_ok() => {
                // Text with a zlib-like start. Whatever part of it decodes is scanned too,
                // in case it is a truncated stream made of text bytes.
                let data = partial_inflate(ZlibDecoder::new(blob), remaining);
                if data.is_empty() {
                    return Ok(());
                }
                vec![(join(prefix, "<zlib>"), data)]
            }
            Err(reason) => return Err(format!("{} data {reason}", stream.name())),
        }
    } else if blob.starts_with(PNG_MAGIC) {
        png_members(blob, budget, remaining)?
            .into_iter()
            .map(|(name, data)| (join(prefix, &name), data))
            .collect()
    } else if blob.starts_with(ZIP_LOCAL_MAGIC) || blob.starts_with(ZIP_EMPTY_MAGIC) {
        zip_members(blob, budget, remaining)?
            .into_iter()
            .map(|(name, data)| (join(prefix, &name), data))
            .collect()
    } else {
        return Ok(());
    };

    for (name, data) in expanded {
        if is_archive(&data) {
            if depth + 1 >= MAX_DEPTH {
                return Err(format!(
                    "member {name} is an archive nested more than {MAX_DEPTH} levels deep"
                ));
            }
            expand_into(&data, &name, depth + 1, budget, remaining, out)?;
        }
        out.push(Member { name, data });
    }
    Ok(())
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}!{name}")
    }
}

/// Decompresses one stream within the budget.
fn decompress(
    stream: Stream,
    blob: &[u8],
    budget: u64,
    remaining: &mut u64,
) -> Result<Vec<u8>, String> {
    match stream {
        Stream::Gzip => inflate(MultiGzDecoder::new(blob), budget, remaining),
        Stream::Bzip2 => inflate(bzip2::read::MultiBzDecoder::new(blob), budget, remaining),
        Stream::Zlib => inflate(ZlibDecoder::new(blob), budget, remaining),
        Stream::Zstd => {
            let decoder = ruzstd::decoding::StreamingDecoder::new(blob)
                .map_err(|error| format!("is invalid: {error}"))?;
            inflate(decoder, budget, remaining)
        }
        Stream::Xz => {
            let mut output = BudgetWriter {
                data: Vec::new(),
                limit: *remaining,
            };
            let mut input = blob;
            let result = lzma_rs::xz_decompress(&mut input, &mut output);
            if output.data.len() as u64 > *remaining {
                return Err(over_budget(budget));
            }
            result.map_err(|error| format!("is invalid: {error}"))?;
            *remaining -= output.data.len() as u64;
            Ok(output.data)
        }
    }
}

fn over_budget(budget: u64) -> String {
    format!("expands to more than {budget} bytes, the limit for one file and its archive members")
}

/// A writer that keeps at most `limit` bytes plus one, and then fails, so a decoder that
/// writes rather than reads stops at the budget.
struct BudgetWriter {
    data: Vec<u8>,
    limit: u64,
}

impl Write for BudgetWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = (self.limit + 1).saturating_sub(self.data.len() as u64);
        if room == 0 {
            return Err(io::Error::other("the output passed the budget"));
        }
        let take = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        self.data.extend_from_slice(&buf[..take]);
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads a decoder up to its first error or `remaining` bytes, and returns what it read.
fn partial_inflate(decoder: impl Read, remaining: &mut u64) -> Vec<u8> {
    let mut reader = decoder.take(*remaining);
    let mut data = Vec::new();
    let mut buffer = [0u8; 8192];
    while let Ok(n @ 1..) = reader.read(&mut buffer) {
        data.extend_from_slice(&buffer[..n]);
    }
    *remaining -= data.len() as u64;
    data
}

/// Reads a decoder to its end, failing once the output passes `remaining` bytes.
fn inflate(decoder: impl Read, budget: u64, remaining: &mut u64) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    decoder
        .take(*remaining + 1)
        .read_to_end(&mut data)
        .map_err(|error| format!("is invalid: {error}"))?;
    let len = data.len() as u64;
    if len > *remaining {
        return Err(over_budget(budget));
    }
    *remaining -= len;
    Ok(data)
}

fn u16_at(bytes: &[u8], offset: usize) -> Option<usize> {
    let field = bytes.get(offset..offset + 2)?;
    Some(usize::from(u16::from_le_bytes([field[0], field[1]])))
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    let field = bytes.get(offset..offset + 4)?;
    Some(u32::from_le_bytes([field[0], field[1], field[2], field[3]]))
}

fn usize_at(bytes: &[u8], offset: usize) -> Option<usize> {
    u32_at(bytes, offset).and_then(|value| usize::try_from(value).ok())
}

/// Returns the decompressed `zTXt` and compressed `iTXt` chunks of a PNG image, named
/// `<png zTXt>` and `<png iTXt>`, and its image data, `<png IDAT>`.
fn png_members(
    png: &[u8],
    budget: u64,
    remaining: &mut u64,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let malformed = |what: &str| format!("png image is malformed: {what}");
    let mut members = Vec::new();
    let mut image_data = Vec::new();
    let mut offset = PNG_MAGIC.len();
    while offset < png.len() {
        let length = usize_at_be(png, offset).ok_or_else(|| malformed("truncated chunk"))?;
        let kind = png
            .get(offset + 4..offset + 8)
            .ok_or_else(|| malformed("truncated chunk"))?;
        let data = png
            .get(offset + 8..(offset + 8).saturating_add(length))
            .ok_or_else(|| malformed("chunk past the end"))?;
        offset = offset + 12 + length;
        let compressed = match kind {
            b"zTXt" => {
                let keyword_end = data
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or_else(|| malformed("zTXt without a keyword"))?;
                data.get(keyword_end + 2..)
            }
            b"iTXt" => {
                let keyword_end = data
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or_else(|| malformed("iTXt without a keyword"))?;
                // Compression flag, method, then the language tag and the translated
                // keyword, each ended by a zero byte.
                let flag = data.get(keyword_end + 1).copied();
                let mut rest = data.get(keyword_end + 3..).unwrap_or_default();
                for _ in 0..2 {
                    let end = rest
                        .iter()
                        .position(|&b| b == 0)
                        .ok_or_else(|| malformed("truncated iTXt"))?;
                    rest = &rest[end + 1..];
                }
                (flag == Some(1)).then_some(rest)
            }
            b"IDAT" => {
                image_data.extend_from_slice(data);
                None
            }
            _ => None,
        };
        if let Some(stream) = compressed {
            let name = format!("<png {}>", String::from_utf8_lossy(kind));
            let text = inflate(ZlibDecoder::new(stream), budget, remaining)
                .map_err(|reason| format!("{name} {reason}"))?;
            members.push((name, text));
        }
        if kind == b"IEND" {
            break;
        }
    }
    if !image_data.is_empty() {
        let pixels = inflate(ZlibDecoder::new(&image_data[..]), budget, remaining)
            .map_err(|reason| format!("<png IDAT> {reason}"))?;
        members.push(("<png IDAT>".to_owned(), pixels));
    }
    Ok(members)
}

fn usize_at_be(bytes: &[u8], offset: usize) -> Option<usize> {
    let field = bytes.get(offset..offset + 4)?;
    usize::try_from(u32::from_be_bytes([field[0], field[1], field[2], field[3]])).ok()
}

/// Reads every member of a zip archive through its central directory.
fn zip_members(
    zip: &[u8],
    budget: u64,
    remaining: &mut u64,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let malformed = |what: &str| format!("zip archive is malformed: {what}");

    // The end-of-central-directory record is 22 bytes plus a comment of up to 65535.
    let search_from = zip.len().saturating_sub(22 + 65_535);
    let end = (search_from..zip.len().saturating_sub(21))
        .rev()
        .find(|&offset| u32_at(zip, offset) == Some(ZIP_END_SIGNATURE))
        .ok_or_else(|| malformed("no end of central directory"))?;
    let count = u16_at(zip, end + 10).ok_or_else(|| malformed("truncated end record"))?;
    let directory = usize_at(zip, end + 16).ok_or_else(|| malformed("truncated end record"))?;
    if count == 0xffff || directory == 0xffff_ffff {
        return Err("zip64 archives are not supported by the scanner".to_owned());
    }

    let mut members = Vec::new();
    let mut entry = directory;
    for _ in 0..count {
        if u32_at(zip, entry) != Some(ZIP_CENTRAL_SIGNATURE) {
            return Err(malformed("bad central directory entry"));
        }
        let field =
            |offset: usize| u16_at(zip, entry + offset).ok_or_else(|| malformed("truncated entry"));
        let flags = field(8)?;
        let method = field(10)?;
        let compressed = usize_at(zip, entry + 20).ok_or_else(|| malformed("truncated entry"))?;
        let (name_len, extra_len, comment_len) = (field(28)?, field(30)?, field(32)?);
        let local = usize_at(zip, entry + 42).ok_or_else(|| malformed("truncated entry"))?;
        let name_bytes = zip
            .get(entry + 46..entry + 46 + name_len)
            .ok_or_else(|| malformed("truncated name"))?;
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        entry += 46 + name_len + extra_len + comment_len;

        if flags & 1 != 0 {
            return Err(format!(
                "zip member {name} is encrypted and cannot be scanned"
            ));
        }
        if u32_at(zip, local) != Some(ZIP_LOCAL_SIGNATURE) {
            return Err(malformed("bad local header"));
        }
        let local_name =
            u16_at(zip, local + 26).ok_or_else(|| malformed("truncated local header"))?;
        let local_extra =
            u16_at(zip, local + 28).ok_or_else(|| malformed("truncated local header"))?;
        let start = local + 30 + local_name + local_extra;
        let data = zip
            .get(start..start.saturating_add(compressed))
            .ok_or_else(|| malformed("member data past the end"))?;
        let expanded = match method {
            0 => inflate(data, budget, remaining),
            8 => inflate(DeflateDecoder::new(data), budget, remaining),
            other => {
                return Err(format!(
                    "zip member {name} uses compression method {other}, which the scanner cannot read"
                ));
            }
        }
        .map_err(|reason| format!("zip member {name} {reason}"))?;
        members.push((name, expanded));
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::{DeflateEncoder, GzEncoder};

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).expect("compress");
        encoder.finish().expect("compress")
    }

    /// Builds a zip archive with deflated members (method 8), or stored ones (method 0).
    fn zip(members: &[(&str, &[u8])], method: u16) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in members {
            let body = if method == 8 {
                let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
                encoder.write_all(data).expect("compress");
                encoder.finish().expect("compress")
            } else {
                data.to_vec()
            };
            let offset = u32::try_from(out.len()).expect("small");
            let name_len = u16::try_from(name.len()).expect("small");
            let size = u32::try_from(body.len()).expect("small");
            let raw = u32::try_from(data.len()).expect("small");
            out.extend_from_slice(&ZIP_LOCAL_SIGNATURE.to_le_bytes());
            out.extend_from_slice(&[20, 0, 0, 0]);
            out.extend_from_slice(&method.to_le_bytes());
            out.extend_from_slice(&[0; 8]);
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&raw.to_le_bytes());
            out.extend_from_slice(&name_len.to_le_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&body);

            central.extend_from_slice(&ZIP_CENTRAL_SIGNATURE.to_le_bytes());
            central.extend_from_slice(&[20, 0, 20, 0, 0, 0]);
            central.extend_from_slice(&method.to_le_bytes());
            central.extend_from_slice(&[0; 8]);
            central.extend_from_slice(&size.to_le_bytes());
            central.extend_from_slice(&raw.to_le_bytes());
            central.extend_from_slice(&name_len.to_le_bytes());
            central.extend_from_slice(&[0; 12]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let directory = u32::try_from(out.len()).expect("small");
        let count = u16::try_from(members.len()).expect("small");
        let central_len = u32::try_from(central.len()).expect("small");
        out.extend_from_slice(&central);
        out.extend_from_slice(&ZIP_END_SIGNATURE.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&central_len.to_le_bytes());
        out.extend_from_slice(&directory.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out
    }

    #[test]
    fn plain_blob_has_no_members() {
        assert_eq!(expand(b"just text", 100).expect("plain"), vec![]);
    }

    #[test]
    fn gzip_is_expanded() {
        let members = expand(&gzip(b"hello secret"), 1000).expect("gzip");
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].name, "<gzip>");
        assert_eq!(members[0].data, b"hello secret");
    }

    #[test]
    fn zip_members_expanded() {
        for method in [0, 8] {
            let archive = zip(&[("a.txt", b"alpha"), ("dir/b.pem", b"bravo")], method);
            let members = expand(&archive, 1000).expect("zip");
            let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
            assert_eq!(names, vec!["a.txt", "dir/b.pem"], "method {method}");
            assert_eq!(members[1].data, b"bravo");
        }
    }

    #[test]
    fn nested_archives_expanded() {
        let inner = zip(&[("key.pem", b"inner secret")], 8);
        let outer = gzip(&zip(&[("lib.jar", &inner)], 8));
        let members = expand(&outer, 10_000).expect("nested");
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        assert!(names.contains(&"<gzip>!lib.jar!key.pem"), "{names:?}");
    }

    #[test]
    fn bomb_is_rejected() {
        let bomb = gzip(&vec![0u8; 1 << 20]);
        let error = expand(&bomb, 1000).expect_err("over budget");
        assert!(error.contains("expands to more than 1000 bytes"), "{error}");
    }

    #[test]
    fn malformed_archives_rejected() {
        let mut truncated = gzip(b"some data that is long enough");
        truncated.truncate(12);
        assert!(expand(&truncated, 1000).is_err());
        assert!(expand(b"PK\x03\x04garbage", 1000).is_err());

        let mut encrypted = zip(&[("a.txt", b"alpha")], 0);
        let central = encrypted
            .windows(4)
            .position(|w| w == ZIP_CENTRAL_SIGNATURE.to_le_bytes())
            .expect("central directory");
        encrypted[central + 8] |= 1;
        let error = expand(&encrypted, 1000).expect_err("encrypted");
        assert!(error.contains("encrypted"), "{error}");
    }
}
