//! Randomness measures used to tell secrets from ordinary words and placeholders.

/// Returns the Shannon entropy of `bytes` in bits per byte (0 for an empty slice).
///
/// Random base62 text approaches log2 of its length for short strings; English words
/// and placeholders like `xxxxxxxx` stay well below that.
pub(crate) fn shannon_entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &byte in bytes {
        counts[usize::from(byte)] += 1;
    }

    let total = f64::from(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    counts
        .iter()
        .filter(|&&count| count > 0)
        .map(|&count| {
            let p = f64::from(count) / total;
            -p * p.log2()
        })
        .sum()
}

/// Returns whether `value` mixes upper case, lower case and digits and has entropy close
/// to the maximum for its length, as generated passwords and API keys do.
///
/// The entropy floor is `log2(len) - 0.8`, capped at 3.8 bits: a 12-character value needs
/// about 2.8, a 24-character one about 3.8. Identifiers such as `get_api_key_v2` lack
/// upper case; camel-case names lack digits or entropy.
pub(crate) fn has_random_mix(value: &[u8]) -> bool {
    let has_upper = value.iter().any(u8::is_ascii_uppercase);
    let has_lower = value.iter().any(u8::is_ascii_lowercase);
    let has_digit = value.iter().any(u8::is_ascii_digit);
    if !(has_upper && has_lower && has_digit) {
        return false;
    }

    let length = f64::from(u32::try_from(value.len()).unwrap_or(u32::MAX));
    let floor = (length.log2() - 0.8).min(3.8);
    shannon_entropy(value) >= floor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_uniform_and_constant() {
        assert_eq!(shannon_entropy(b""), 0.0);
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
    }

    #[test]
    fn random_mix_accepts_generated_values() {
        assert!(has_random_mix(b"q7Lm2XvR9pKa4TzW"));
        assert!(has_random_mix(b"Zx81kQpL0mNv"));
    }

    #[test]
    fn random_mix_rejects_words() {
        assert!(!has_random_mix(b"oauth2_client_credentials_flow"));
        assert!(!has_random_mix(b"getApiKeyFromConfig"));
        assert!(!has_random_mix(b"AAAAaaaa1111AAAA"));
    }
}
