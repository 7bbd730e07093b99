//! Sanitizing text that the agent controls before an operator's terminal shows it.

/// Longest sanitized text, in characters; longer text is cut and marked with `…`.
const MAX_CHARS: usize = 512;

/// Returns `text` with every control character (C0, DEL and C1, which covers ESC and the
/// 8-bit CSI that start terminal escape sequences) replaced by `?`, and with Unicode
/// bidirectional overrides replaced too, cut to 512 characters.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_CHARS));
    for (count, ch) in text.chars().enumerate() {
        if count == MAX_CHARS {
            out.push('…');
            break;
        }
        let unsafe_char =
            ch.is_control() || matches!(ch, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        out.push(if unsafe_char { '?' } else { ch });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_replaced() {
        let text = "host\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\r\nx\u{202e}";
        let clean = sanitize(text);
        assert!(!clean.chars().any(char::is_control), "{clean:?}");
        assert!(!clean.contains('\u{202e}'), "{clean:?}");
        assert_eq!(clean, "host?]0;pwned??[2J?31m??x?");
    }

    #[test]
    fn plain_text_is_kept() {
        assert_eq!(sanitize("api.example.com /v1/x"), "api.example.com /v1/x");
    }

    #[test]
    fn long_text_is_cut() {
        let clean = sanitize(&"a".repeat(2000));
        assert_eq!(clean.chars().count(), MAX_CHARS + 1);
        assert!(clean.ends_with('…'));
    }
}
