//! Splitting a Markdown file into its YAML front matter and its body.
//!
//! The rules: an optional UTF-8 byte order mark, then a first line that is exactly
//! `---`, then YAML up to the next line that is exactly `---` or `...`, then the
//! Markdown body. Lines may end in `\n` or `\r\n`.

/// The largest front matter accepted, in bytes. Bottle and agent front matter is a few
/// kilobytes; the cap bounds the work a hostile repository file can cause.
pub const MAX_FRONT_MATTER_BYTES: usize = 64 * 1024;

/// A file split into its front matter and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontMatter<'a> {
    /// The YAML text between the delimiter lines, with its line endings.
    pub yaml: &'a str,
    /// How many lines of the file come before the YAML (the opening `---` line), so a
    /// line `n` of the YAML is line `n + lines_before_yaml` of the file.
    pub lines_before_yaml: u64,
    /// The Markdown after the closing delimiter line.
    pub body: &'a str,
}

/// Why a file has no usable front matter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrontMatterError {
    /// The first line is not `---`.
    #[error(
        "the file does not start with a `---` line; a bottle or agent file starts with \
         YAML front matter between two `---` lines"
    )]
    MissingOpening,
    /// No closing `---` or `...` line follows the opening one.
    #[error("the front matter opened on line 1 is never closed; add a `---` line after the YAML")]
    Unclosed,
    /// The front matter exceeds [`MAX_FRONT_MATTER_BYTES`].
    #[error("the front matter is larger than {max} bytes; bottle and agent files are small")]
    TooLarge {
        /// The limit in bytes.
        max: usize,
    },
}

/// Splits `text` into front matter and body.
pub fn split(text: &str) -> Result<FrontMatter<'_>, FrontMatterError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');

    let first = lines.next().ok_or(FrontMatterError::MissingOpening)?;
    if line_content(first) != "---" {
        return Err(FrontMatterError::MissingOpening);
    }

    let yaml_start = first.len();
    let mut offset = yaml_start;
    for line in lines {
        let content = line_content(line);
        if content == "---" || content == "..." {
            return Ok(FrontMatter {
                yaml: &text[yaml_start..offset],
                lines_before_yaml: 1,
                body: &text[offset + line.len()..],
            });
        }
        offset += line.len();
        if offset - yaml_start > MAX_FRONT_MATTER_BYTES {
            return Err(FrontMatterError::TooLarge {
                max: MAX_FRONT_MATTER_BYTES,
            });
        }
    }
    Err(FrontMatterError::Unclosed)
}

/// Returns a line without its `\n` or `\r\n` ending.
fn line_content(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn split_basic_file() {
        let parts = split("---\na: 1\n---\nbody\n").unwrap();
        assert_eq!(parts.yaml, "a: 1\n");
        assert_eq!(parts.body, "body\n");
        assert_eq!(parts.lines_before_yaml, 1);
    }

    #[test]
    fn split_accepts_bom_and_crlf() {
        let parts = split("\u{feff}---\r\na: 1\r\n---\r\nbody").unwrap();
        assert_eq!(parts.yaml, "a: 1\r\n");
        assert_eq!(parts.body, "body");
    }

    #[test]
    fn split_accepts_dots_as_closing_line() {
        let parts = split("---\na: 1\n...\nbody").unwrap();
        assert_eq!(parts.yaml, "a: 1\n");
        assert_eq!(parts.body, "body");
    }

    #[test]
    fn split_empty_front_matter_and_no_body() {
        let parts = split("---\n---").unwrap();
        assert_eq!(parts.yaml, "");
        assert_eq!(parts.body, "");
    }

    #[test]
    fn split_rejects_missing_opening() {
        assert_eq!(split(""), Err(FrontMatterError::MissingOpening));
        assert_eq!(
            split("# title\n---\n"),
            Err(FrontMatterError::MissingOpening)
        );
        assert_eq!(
            split("--- \na: 1\n---\n"),
            Err(FrontMatterError::MissingOpening)
        );
        assert_eq!(split(" ---\n---\n"), Err(FrontMatterError::MissingOpening));
    }

    #[test]
    fn split_rejects_unclosed() {
        assert_eq!(split("---\na: 1\n"), Err(FrontMatterError::Unclosed));
        assert_eq!(split("---\na: 1\n ---\n"), Err(FrontMatterError::Unclosed));
    }

    #[test]
    fn split_rejects_oversized_front_matter() {
        let mut text = String::from("---\n");
        let line = "k: vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\n";
        while text.len() < MAX_FRONT_MATTER_BYTES + 100 {
            text.push_str(line);
        }
        text.push_str("---\n");
        assert_eq!(
            split(&text),
            Err(FrontMatterError::TooLarge {
                max: MAX_FRONT_MATTER_BYTES
            })
        );
        assert_eq!(
            FrontMatterError::TooLarge {
                max: MAX_FRONT_MATTER_BYTES
            }
            .to_string(),
            "the front matter is larger than 65536 bytes; bottle and agent files are small"
        );
    }

    #[test]
    fn split_keeps_later_delimiters_in_body() {
        let parts = split("---\n---\nbody\n---\nmore\n").unwrap();
        assert_eq!(parts.yaml, "");
        assert_eq!(parts.body, "body\n---\nmore\n");
    }

    fn yaml_line() -> impl Strategy<Value = String> {
        "[^\r\n]{0,20}".prop_filter("not a delimiter", |line| line != "---" && line != "...")
    }

    proptest! {
        #[test]
        fn split_never_panics(text in ".{0,400}") {
            let _ = split(&text);
        }

        #[test]
        fn split_never_panics_on_delimiter_soup(
            parts in proptest::collection::vec(
                prop_oneof![Just("---"), Just("..."), Just("\n"), Just("\r\n"), Just("\u{feff}"), Just("a")],
                0..30,
            )
        ) {
            let _ = split(&parts.concat());
        }

        #[test]
        fn split_round_trips(
            yaml_lines in proptest::collection::vec(yaml_line(), 0..8),
            body in ".{0,100}",
            crlf in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let yaml: String = yaml_lines.iter().map(|line| format!("{line}{eol}")).collect();
            let text = format!("---{eol}{yaml}---{eol}{body}");
            let parts = split(&text).unwrap();
            prop_assert_eq!(parts.yaml, yaml.as_str());
            prop_assert_eq!(parts.body, body.as_str());
        }
    }
}
