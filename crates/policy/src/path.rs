//! Path canonicalization: the proxy matches routes on the canonical path and forwards
//! that same path upstream, so the rule matches exactly the path the upstream receives.

/// Rejection reason of a request path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/` (asterisk-form or a relative reference).
    #[error("path does not start with `/`")]
    NotAbsolute,
    /// A `%` is not followed by two hex digits.
    #[error("path has an invalid percent-encoding")]
    InvalidEncoding,
    /// An encoded slash (`%2F`) would make the upstream and the rule disagree on segments.
    #[error("path contains an encoded slash (%2F)")]
    EncodedSlash,
    /// `%00` or a raw NUL.
    #[error("path contains a NUL byte")]
    Nul,
    /// A raw or encoded backslash, which some servers read as a separator.
    #[error("path contains a backslash")]
    Backslash,
    /// A control character, space, or non-ASCII byte.
    #[error("path contains a control character, space or non-ASCII byte")]
    ForbiddenCharacter,
}

/// Returns the canonical form of a request path (no query, no fragment).
///
/// One pass of percent-decoding turns encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`)
/// back into themselves; other encodings stay encoded with upper-case hex. Then `.`
/// segments are removed, `..` segments remove their parent (never above the root), and
/// runs of slashes collapse to one. A trailing slash is kept.
pub fn canonicalize_path(path: &str) -> Result<String, PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }

    let decoded = decode_unreserved(path)?;

    let ends_with_slash = decoded.ends_with('/');
    let mut segments: Vec<&str> = Vec::new();
    let mut last_was_dot = false;
    for segment in decoded.split('/') {
        last_was_dot = false;
        match segment {
            "" => {}
            "." => last_was_dot = true,
            ".." => {
                segments.pop();
                last_was_dot = true;
            }
            other => segments.push(other),
        }
    }

    let mut canonical = String::with_capacity(decoded.len());
    for segment in &segments {
        canonical.push('/');
        canonical.push_str(segment);
    }
    // `/a/.` and `/a/b/..` name a directory under the dot-segment rules of RFC 3986.
    if canonical.is_empty() || ends_with_slash || last_was_dot {
        canonical.push('/');
    }
    Ok(canonical)
}

/// Decodes percent-encoded unreserved characters and validates every other byte.
fn decode_unreserved(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(PathError::InvalidEncoding)?;
                let value = decode_hex_pair(hex).ok_or(PathError::InvalidEncoding)?;
                match value {
                    b'/' => return Err(PathError::EncodedSlash),
                    0 => return Err(PathError::Nul),
                    b'\\' => return Err(PathError::Backslash),
                    v if is_unreserved(v) => out.push(char::from(v)),
                    v => {
                        out.push('%');
                        out.push_str(&format!("{v:02X}"));
                    }
                }
                i += 3;
            }
            0 => return Err(PathError::Nul),
            b'\\' => return Err(PathError::Backslash),
            b if b <= b' ' || b >= 0x7f => return Err(PathError::ForbiddenCharacter),
            b'?' | b'#' => return Err(PathError::ForbiddenCharacter),
            b => {
                out.push(char::from(b));
                i += 1;
            }
        }
    }
    Ok(out)
}

fn decode_hex_pair(hex: &[u8]) -> Option<u8> {
    let high = char::from(hex[0]).to_digit(16)?;
    let low = char::from(hex[1]).to_digit(16)?;
    u8::try_from(high * 16 + low).ok()
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Returns the query with every value removed, keeping the keys in order
/// (`a=1&b=2&c` becomes `a&b&c`), for audit records that must not hold values.
pub fn query_keys_only(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').map_or(pair, |(key, _)| key))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonicalizes_paths() {
        let cases = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//a///b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/../../etc", "/etc"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/%61%62c", "/abc"),
            ("/%2e%2e/admin", "/admin"),
            ("/api/%2E%2E/%2e/x", "/x"),
            ("/a%20b", "/a%20b"),
            ("/a%3fb", "/a%3Fb"),
            ("/~user/%7e", "/~user/~"),
        ];
        for (input, expected) in cases {
            assert_eq!(canonicalize_path(input).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn rejects_ambiguous_paths() {
        let cases = [
            ("/a%2Fb", PathError::EncodedSlash),
            ("/a%2fb", PathError::EncodedSlash),
            ("/a%00", PathError::Nul),
            ("/a%5Cb", PathError::Backslash),
            ("/a\\b", PathError::Backslash),
            ("/a%", PathError::InvalidEncoding),
            ("/a%4", PathError::InvalidEncoding),
            ("/a%zz", PathError::InvalidEncoding),
            ("/a b", PathError::ForbiddenCharacter),
            ("/a\tb", PathError::ForbiddenCharacter),
            ("/a#b", PathError::ForbiddenCharacter),
            ("a/b", PathError::NotAbsolute),
            ("*", PathError::NotAbsolute),
        ];
        for (input, expected) in cases {
            assert_eq!(canonicalize_path(input), Err(expected), "{input}");
        }
    }

    #[test]
    fn decodes_only_once() {
        // %252e is an encoded "%2e", which must stay an encoded percent sign, not a dot.
        assert_eq!(
            canonicalize_path("/%252e%252e/x").as_deref(),
            Ok("/%252e%252e/x")
        );
    }

    #[test]
    fn strips_query_values() {
        assert_eq!(query_keys_only("a=1&b=secret&c"), "a&b&c");
        assert_eq!(query_keys_only(""), "");
        assert_eq!(query_keys_only("token=x=y"), "token");
    }
}
