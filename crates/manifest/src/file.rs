//! Reading one bottle or agent file into its typed partial.

use std::io::Read;
use std::path::Path;

use crate::agent::{PartialAgent, decode_agent};
use crate::bottle::{PartialBottle, decode_bottle};
use crate::decode::Cx;
use crate::error::{Diagnostic, Error};
use crate::frontmatter;
use crate::yaml::{self, Node};

/// The largest file read, in bytes. The front matter has its own, smaller cap; the
/// rest is the Markdown body (an agent's system prompt).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Reads a file of at most [`MAX_FILE_BYTES`] as UTF-8.
pub(crate) fn read_text(path: &Path) -> Result<String, Error> {
    let read_error = |source| Error::Read {
        file: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::TooLarge {
            file: path.to_path_buf(),
            max: MAX_FILE_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|error| Error::Invalid {
        diagnostics: vec![Diagnostic {
            file: path.to_path_buf(),
            line: None,
            key: None,
            message: format!(
                "the file is not valid UTF-8 (at byte {})",
                error.utf8_error().valid_up_to()
            ),
        }],
    })
}

/// Parses the text of a bottle file.
pub(crate) fn parse_bottle(path: &Path, text: &str) -> Result<PartialBottle, Error> {
    parse_with(path, text, decode_bottle)
}

/// Parses the text of an agent file.
pub(crate) fn parse_agent(path: &Path, text: &str) -> Result<PartialAgent, Error> {
    parse_with(path, text, decode_agent)
}

fn parse_with<T>(
    path: &Path,
    text: &str,
    decode: fn(&mut Cx, &Node, &str) -> T,
) -> Result<T, Error> {
    let invalid = |line: Option<u64>, message: String| Error::Invalid {
        diagnostics: vec![Diagnostic {
            file: path.to_path_buf(),
            line,
            key: None,
            message,
        }],
    };

    let parts = frontmatter::split(text).map_err(|error| invalid(Some(1), error.to_string()))?;
    let node = yaml::parse(parts.yaml).map_err(|error| {
        let line = error.line.map(|line| line + parts.lines_before_yaml);
        invalid(line, error.message)
    })?;

    let mut cx = Cx::new(path, parts.lines_before_yaml);
    let decoded = decode(&mut cx, &node, parts.body);
    if cx.diagnostics.is_empty() {
        Ok(decoded)
    } else {
        let mut diagnostics = cx.diagnostics;
        diagnostics.sort_by_key(|diagnostic| diagnostic.line);
        Err(Error::Invalid { diagnostics })
    }
}
