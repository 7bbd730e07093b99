//! Item ids: 10 random base32 characters (50 bits), short enough to type and too many to
//! guess while an item is pending.

use rand::Rng;

/// The RFC 4648 base32 alphabet, lower-cased.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Length of an id in characters.
pub const ID_LEN: usize = 10;

/// Returns a fresh random id.
pub fn new_id() -> String {
    let mut rng = rand::rng();
    (0..ID_LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Returns true when `id` has the form [`new_id`] produces, so it is safe to use as a
/// file name (no `/`, no `..`, no dot at all).
pub fn is_valid_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_valid_and_distinct() {
        let first = new_id();
        let second = new_id();
        assert!(is_valid_id(&first), "{first}");
        assert_eq!(first.len(), ID_LEN);
        assert_ne!(first, second);
    }

    #[test]
    fn path_tricks_are_invalid() {
        for id in [
            "",
            "../../etc/x",
            "abcdefghi/",
            "ABCDEFGHIJ",
            "abcdefghij1",
            "abc.efghij",
        ] {
            assert!(!is_valid_id(id), "{id:?} was accepted");
        }
        assert!(is_valid_id("abcdefgh27"), "positive control");
    }
}
