//! Pieces of known secrets, so that a secret with a few characters cut off, split in two
//! or spread over two files is still found.
//!
//! A secret of `n` bytes is cut into pieces of `w = max(10, n / 4)` bytes, aligned to its
//! start, with one more piece aligned to its end. Any run of `2w - 1` or more bytes of
//! the secret contains a whole piece, so its halves, or the secret without its first or
//! last characters, are found. Only pieces that look random count: a piece of a secret
//! that is mostly a readable word would be found in ordinary text.

use crate::entropy::shannon_entropy;

/// Secrets shorter than this are matched whole only.
const MIN_SECRET_LEN: usize = 20;

/// The shortest piece.
const MIN_PIECE_LEN: usize = 10;

/// Entropy a piece needs, in bits per byte. Ten random base62 characters have about 3.2
/// on average (an estimate), while readable pieces such as `bottle-e2e` stay under 3.
const MIN_PIECE_ENTROPY: f64 = 3.0;

/// Returns the pieces of `secrets` to search for besides the whole values.
pub(crate) fn fragments<S: AsRef<str>>(secrets: &[S]) -> Vec<String> {
    let mut pieces = Vec::new();
    for secret in secrets {
        let bytes = secret.as_ref().as_bytes();
        if bytes.len() < MIN_SECRET_LEN || !bytes.is_ascii() {
            continue;
        }
        let width = MIN_PIECE_LEN.max(bytes.len() / 4);
        let tail = &bytes[bytes.len() - width..];
        for piece in bytes.chunks_exact(width).chain(std::iter::once(tail)) {
            if looks_random(piece) {
                pieces.push(String::from_utf8_lossy(piece).into_owned());
            }
        }
    }
    pieces.sort();
    pieces.dedup();
    pieces
}

fn looks_random(piece: &[u8]) -> bool {
    let classes = [
        piece.iter().any(u8::is_ascii_lowercase),
        piece.iter().any(u8::is_ascii_uppercase),
        piece.iter().any(u8::is_ascii_digit),
    ];
    classes.iter().filter(|&&present| present).count() >= 2
        && shannon_entropy(piece) >= MIN_PIECE_ENTROPY
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "ghp_R4nd0mV4lu3Xq9Zt2Lw8Kp5Ns7Jd3Hf6Gb1Mc";

    #[test]
    fn long_run_contains_a_piece() {
        let pieces = fragments(&[SECRET]);
        assert!(!pieces.is_empty());
        let width = MIN_PIECE_LEN.max(SECRET.len() / 4);
        for start in 0..SECRET.len() {
            for end in (start + 2 * width - 1)..=SECRET.len() {
                let run = &SECRET[start..end];
                assert!(
                    pieces.iter().any(|piece| run.contains(piece.as_str())),
                    "{run} contains no piece of {pieces:?}"
                );
            }
        }
    }

    #[test]
    fn readable_and_short_values_give_no_pieces() {
        assert!(fragments(&["short-but-random-9Xq"[..19].to_owned()]).is_empty());
        assert!(fragments(&["correct-horse-battery-staple-horse"]).is_empty());
        let pieces = fragments(&["bottle-e2e-real-token-7f3a9c"]);
        assert!(
            pieces.iter().all(|piece| !piece.starts_with("bottle")),
            "{pieces:?}"
        );
    }
}
