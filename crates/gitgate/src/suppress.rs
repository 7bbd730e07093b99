//! Recognising suppression markers and ignore files, so that they hold a push for an
//! operator's decision instead of silencing the scanner.
//!
//! Secret scanners let authors mark a false positive with a comment on its line
//! (`gitleaks:allow`, `pragma: allowlist secret`, `nosec`, ...) or with an ignore file
//! (`.gitleaksignore`, `.secrets.baseline`, ...). An agent can write either as easily as
//! the secret itself, so the gate never honours them: a finding that one covers is shown
//! to the operator, who approves or denies the push. A finding that none covers rejects
//! the push outright.

use std::sync::LazyLock;

use regex::Regex;

use crate::policy::glob_matches;

/// Bytes on either side of a finding searched for a marker, so a finding inside a very
/// long line (minified code) costs a bounded search.
const MAX_LINE_CONTEXT: usize = 64 * 1024;

/// Names of the ignore files of common secret scanners: gitleaks, detect-secrets,
/// TruffleHog, GitGuardian, secretlint, Talisman and git-secrets.
const IGNORE_FILES: &[&str] = &[
    ".gitleaksignore",
    ".gitleaks.toml",
    ".secrets.baseline",
    ".trufflehogignore",
    ".gitguardian.yaml",
    ".gitguardian.yml",
    ".secretlintignore",
    ".talismanrc",
    ".gitallowed",
];

/// Markers on a finding's own line, each with the name shown to the operator.
/// `noqa` is handled apart because only some of its forms silence a secrets check.
static LINE_MARKERS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"(?i)gitleaks\s*:\s*allow", "gitleaks:allow"),
        (r"(?i)pragma\s*:\s*allowlist", "pragma: allowlist secret"),
        (r"(?i)\bnosec\b", "nosec"),
        (r"(?i)\bnosemgrep\b", "nosemgrep"),
        (r"(?i)trufflehog\s*:\s*ignore", "trufflehog:ignore"),
        (r"(?i)\bggignore\b", "ggignore"),
        (r"(?i)secretlint-disable", "secretlint-disable"),
        (r"(?i)checkov\s*:\s*skip\s*=\s*ckv_secret", "checkov:skip"),
        (r"(?i)talisman\s*:\s*ignore", "talisman:ignore"),
    ]
    .into_iter()
    .map(|(pattern, name)| {
        (
            Regex::new(pattern).expect("marker patterns are valid"),
            name,
        )
    })
    .collect()
});

/// Markers on the line before a finding that name the next line.
static NEXT_LINE_MARKERS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (
            r"(?i)pragma\s*:\s*allowlist\s+nextline",
            "pragma: allowlist nextline secret",
        ),
        (
            r"(?i)secretlint-disable-next-line",
            "secretlint-disable-next-line",
        ),
    ]
    .into_iter()
    .map(|(pattern, name)| {
        (
            Regex::new(pattern).expect("marker patterns are valid"),
            name,
        )
    })
    .collect()
});

/// A `noqa` comment: blanket, or with a list of codes.
static NOQA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\bnoqa\b(\s*:\s*([A-Z0-9]+(\s*,\s*[A-Z0-9]+)*))?")
        .expect("the noqa pattern is valid")
});

/// flake8-bandit and bandit codes for hard-coded passwords, the checks a `noqa` must name
/// to silence a secret.
const SECRET_NOQA_CODES: &[&str] = &["S105", "S106", "S107", "B105", "B106", "B107"];

/// Returns the marker that covers the finding at `start..end` of `contents`: one on the
/// lines the finding spans, or a next-line marker on the line before. `None` when there
/// is none.
pub(crate) fn line_marker(contents: &[u8], start: usize, end: usize) -> Option<&'static str> {
    let start = start.min(contents.len());
    let end = end.clamp(start, contents.len());
    let line_start = contents[..start]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1)
        .max(start.saturating_sub(MAX_LINE_CONTEXT));
    let line_end = contents[end..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(contents.len(), |i| end + i)
        .min(end.saturating_add(MAX_LINE_CONTEXT));
    let line = String::from_utf8_lossy(&contents[line_start..line_end]);
    for (pattern, name) in LINE_MARKERS.iter() {
        if pattern.is_match(&line) {
            return Some(name);
        }
    }
    if silencing_noqa(&line) {
        return Some("noqa");
    }

    if line_start == 0 {
        return None;
    }
    let before = &contents[..line_start - 1];
    let previous_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1)
        .max(before.len().saturating_sub(MAX_LINE_CONTEXT));
    let previous = String::from_utf8_lossy(&before[previous_start..]);
    NEXT_LINE_MARKERS
        .iter()
        .find(|(pattern, _)| pattern.is_match(&previous))
        .map(|(_, name)| *name)
}

/// Returns whether `line` has a `noqa` that silences a secrets check: a blanket `noqa`,
/// or one whose codes include a hard-coded password check.
fn silencing_noqa(line: &str) -> bool {
    NOQA.captures_iter(line)
        .any(|captures| match captures.get(2) {
            None => true,
            Some(codes) => codes.as_str().split(',').any(|code| {
                SECRET_NOQA_CODES
                    .iter()
                    .any(|secret| code.trim().eq_ignore_ascii_case(secret))
            }),
        })
}

/// Returns whether the file at `path` is the ignore file of a common secret scanner.
pub(crate) fn is_ignore_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    IGNORE_FILES.contains(&name)
}

/// The ignore files that a push brings, by path and content.
#[derive(Debug, Default)]
pub(crate) struct IgnoreFiles {
    files: Vec<(String, String)>,
}

impl IgnoreFiles {
    pub fn add(&mut self, path: &str, contents: &[u8]) {
        self.files.push((
            path.to_owned(),
            String::from_utf8_lossy(contents).into_owned(),
        ));
    }

    /// Returns the path of an ignore file that would cover a finding in the file at
    /// `path`: one that names the path or the file name, or has a line that matches the
    /// path as a glob or as a regular expression, as the scanners' path lists do.
    pub fn covering(&self, path: &str) -> Option<&str> {
        let file_name = path.rsplit('/').next().unwrap_or(path);
        self.files
            .iter()
            .find(|(_, text)| {
                text.contains(path)
                    || (file_name.len() >= 3 && text.contains(file_name))
                    || text.lines().any(|line| line_matches(line, path))
            })
            .map(|(ignore_path, _)| ignore_path.as_str())
    }
}

/// Returns whether one line of an ignore file, as a glob or a regular expression,
/// matches `path`. Comments, YAML list dashes and quotes are stripped first.
fn line_matches(line: &str, path: &str) -> bool {
    let entry = line.trim();
    if entry.is_empty() || entry.starts_with('#') {
        return false;
    }
    let entry = entry
        .trim_start_matches("- ")
        .trim_matches(|c| c == '"' || c == '\'' || c == ',');
    if entry.is_empty() {
        return false;
    }
    if glob_matches(entry, path) || glob_matches(&format!("*/{entry}"), path) {
        return true;
    }
    Regex::new(entry).is_ok_and(|pattern| pattern.is_match(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(text: &str, needle: &str) -> Option<&'static str> {
        let start = text.find(needle).expect("needle in text");
        line_marker(text.as_bytes(), start, start + needle.len())
    }

    #[test]
    fn common_markers_are_recognised() {
        let cases = [
            ("token = 'SECRET'  # gitleaks:allow\n", "gitleaks:allow"),
            (
                "key = 'SECRET'  # pragma: allowlist secret\n",
                "pragma: allowlist secret",
            ),
            ("pw := \"SECRET\" // #nosec G101\n", "nosec"),
            ("PASSWORD = 'SECRET'  # noqa: S105\n", "noqa"),
            ("PASSWORD = 'SECRET'  # noqa\n", "noqa"),
            ("t = 'SECRET' # trufflehog:ignore\n", "trufflehog:ignore"),
            ("t = 'SECRET' # ggignore\n", "ggignore"),
            (
                "// secretlint-disable-next-line\nconst t = 'SECRET';\n",
                "secretlint-disable-next-line",
            ),
            (
                "# pragma: allowlist nextline secret\nt = 'SECRET'\n",
                "pragma: allowlist nextline secret",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(marker(text, "SECRET"), Some(expected), "{text:?}");
        }
    }

    #[test]
    fn unrelated_comments_are_not_markers() {
        let cases = [
            "token = 'SECRET'\n",
            "PASSWORD = 'SECRET'  # noqa: E501\n",
            "# gitleaks:allow\n\nt = 'SECRET'\n",
            "t = 'SECRET'\n# pragma: allowlist secret\n",
        ];
        for text in cases {
            assert_eq!(marker(text, "SECRET"), None, "{text:?}");
        }
    }

    #[test]
    fn ignore_files_cover_named_paths() {
        let mut files = IgnoreFiles::default();
        assert!(is_ignore_file("sub/.gitleaksignore"));
        assert!(!is_ignore_file("gitleaksignore.txt"));
        files.add(".trufflehogignore", b"# test data\nfixtures/.*\\.env\n");
        files.add(".gitleaksignore", b"abc123:config/app.env:github-pat:2\n");
        assert_eq!(files.covering("config/app.env"), Some(".gitleaksignore"));
        assert_eq!(files.covering("fixtures/x.env"), Some(".trufflehogignore"));
        assert_eq!(files.covering("src/main.rs"), None);
    }
}
