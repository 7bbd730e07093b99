//! Plain names of bottles, agents, repos and skills.

/// The longest name accepted.
const MAX_NAME_LEN: usize = 128;

/// Returns whether `name` is a plain name: a letter or digit, then letters, digits,
/// `.`, `_` and `-`, with no `..`. Such a name is safe to join to a directory path.
pub fn is_plain_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let starts_well = bytes
        .next()
        .is_some_and(|byte| byte.is_ascii_alphanumeric());
    starts_well
        && name.len() <= MAX_NAME_LEN
        && !name.contains("..")
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names() {
        for name in ["a", "claude-base", "v1.2", "my_agent", "0day"] {
            assert!(is_plain_name(name), "{name}");
        }
        let long = "a".repeat(129);
        for name in [
            "", ".", "..", "a/b", "../x", "a..b", "-x", ".hidden", "a b", "a\0", "é", &long,
        ] {
            assert!(!is_plain_name(name), "{name:?}");
        }
    }
}
