//! Bottle slugs: the name a running bottle is known by.

use rand::Rng;

/// Characters of the random suffix: lower-case letters and digits, so a slug is a
/// valid host name label and path component.
const SUFFIX_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const SUFFIX_LEN: usize = 5;
const MAX_LABEL_LEN: usize = 48;

/// Builds the slug of a new bottle: the label when given, else the agent name (or
/// `bottle` for the default bottle) plus a random five-character suffix.
pub fn new_slug(agent: Option<&str>, label: Option<&str>) -> Result<String, String> {
    if let Some(label) = label {
        validate_label(label)?;
        return Ok(label.to_owned());
    }

    let base: String = agent
        .unwrap_or("bottle")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(MAX_LABEL_LEN - SUFFIX_LEN - 1)
        .collect();
    let mut rng = rand::rng();
    let suffix: String = (0..SUFFIX_LEN)
        .map(|_| char::from(SUFFIX_ALPHABET[rng.random_range(0..SUFFIX_ALPHABET.len())]))
        .collect();
    Ok(format!("{base}-{suffix}"))
}

/// Checks that a `--label` can be used as a slug: it names a directory under the
/// state and log directories and becomes the bottle's host name.
fn validate_label(label: &str) -> Result<(), String> {
    let valid_chars = label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if label.is_empty()
        || label.len() > MAX_LABEL_LEN
        || !valid_chars
        || label.starts_with('-')
        || label.ends_with('-')
    {
        return Err(format!(
            "invalid label {label:?}: use 1 to {MAX_LABEL_LEN} lower-case letters, digits and \
             inner hyphens, such as `review-1`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_from_agent_name() {
        let slug = new_slug(Some("Code_Review"), None).expect("valid");
        assert!(slug.starts_with("code-review-"), "{slug}");
        assert_eq!(slug.len(), "code-review-".len() + SUFFIX_LEN);
    }

    #[test]
    fn slug_for_default_bottle() {
        assert!(new_slug(None, None).expect("valid").starts_with("bottle-"));
    }

    #[test]
    fn slug_is_label_when_given() {
        assert_eq!(
            new_slug(Some("x"), Some("review-1")).expect("valid"),
            "review-1"
        );
    }

    #[test]
    fn label_rejects_path_tricks() {
        for bad in [
            "",
            "../x",
            "a/b",
            "UPPER",
            "-a",
            "a-",
            "a b",
            &"a".repeat(49),
        ] {
            let err = new_slug(None, Some(bad)).expect_err(bad);
            assert!(err.starts_with("invalid label"), "{err}");
        }
    }
}
