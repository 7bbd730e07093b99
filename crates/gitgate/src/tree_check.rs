//! Checks of hostile tree content: `.git` look-alikes, a `.gitmodules` that is a symlink,
//! and submodule entries that name paths outside the repository or look like options.
//!
//! Git's `receive.fsckObjects` only warns about `.git` look-alikes (`hasDotgit`) and
//! accepts absolute and `..` submodule paths, so the gate rejects them itself. The gate
//! never checks a tree out; these checks protect the users who clone the upstream later.

use crate::git::{run_bounded, sanitize_text};
use crate::mirror::Mirror;
use crate::scan::Quarantine;

/// Mode of a symlink entry in a tree object.
const SYMLINK_MODE: &[u8] = b"120000";
/// Mode of a submodule (gitlink) entry in a tree object.
const GITLINK_MODE: &[u8] = b"160000";
/// Mode of a directory entry in a tree object.
const TREE_MODE: &[u8] = b"40000";

/// Classification of a tree entry by the gate.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum EntryVerdict {
    /// An ordinary entry.
    Plain,
    /// A `.gitmodules` file: its blob is checked with [`check_gitmodules`].
    Gitmodules,
}

/// Checks one tree entry's mode and name. Returns an error naming the entry when a
/// checkout of the tree could write into `.git` or run code.
pub(crate) fn check_entry(mode: &[u8], name: &[u8]) -> Result<EntryVerdict, String> {
    let display_name = sanitize_text(name, 100);
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(format!(
            "tree entry '{display_name}' is not a valid file name"
        ));
    }
    let normalized = normalize(name);
    if is_dotgit(&normalized) {
        return Err(format!(
            "tree entry '{display_name}' is a look-alike of the .git directory, which a checkout on a \
             case-insensitive or Windows file system would treat as the repository itself"
        ));
    }
    if is_named(&normalized, b".gitmodules", b"gitmod~") {
        if mode == SYMLINK_MODE {
            return Err(format!(
                "'{display_name}' is a symlink; .gitmodules must be a file"
            ));
        }
        if mode != TREE_MODE && mode != GITLINK_MODE {
            return Ok(EntryVerdict::Gitmodules);
        }
    }
    Ok(EntryVerdict::Plain)
}

/// Lower-cases ASCII letters, drops the code points that HFS+ ignores in names, and strips
/// the trailing dots and spaces that NTFS ignores.
fn normalize(name: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(name);
    let mut stripped: String = text
        .chars()
        .filter(|ch| !is_hfs_ignorable(*ch))
        .collect::<String>()
        .to_ascii_lowercase();
    while stripped.ends_with(['.', ' ']) {
        stripped.pop();
    }
    stripped.into_bytes()
}

/// Returns whether HFS+ ignores `ch` when it compares names (the list git's `is_hfs_dotgit` uses).
fn is_hfs_ignorable(ch: char) -> bool {
    matches!(
        ch,
        '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}'
    )
}

fn is_dotgit(normalized: &[u8]) -> bool {
    // An NTFS alternate data stream such as `.git::$INDEX_ALLOCATION` names the directory.
    is_named(normalized, b".git", b"git~") || normalized.starts_with(b".git:")
}

/// Matches a normalized name against `long` and its NTFS short (8.3) form `<short><digit>`.
fn is_named(normalized: &[u8], long: &[u8], short: &[u8]) -> bool {
    if normalized == long {
        return true;
    }
    normalized
        .strip_prefix(short)
        .is_some_and(|rest| !rest.is_empty() && rest.iter().all(u8::is_ascii_digit))
}

/// Parses a `.gitmodules` blob with git's own configuration parser and rejects submodule
/// names or paths that are absolute, contain a `..` component or start with `-`, URLs that
/// start with `-`, and `update` commands. A blob git cannot parse is rejected too.
pub(crate) async fn check_gitmodules(
    mirror: &Mirror,
    quarantine: &Quarantine,
    blob: &str,
) -> Result<(), String> {
    let mut command = quarantine.git(mirror);
    command.args(["config", "--null", "--list", "--blob", blob]);
    let output = run_bounded(command, mirror.upstream_timeout)
        .await
        .map_err(|error| format!("reading .gitmodules ({blob}) failed: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            ".gitmodules ({blob}) cannot be parsed: {}",
            sanitize_text(&output.stderr, 300)
        ));
    }
    for entry in output.stdout.split(|&b| b == 0).filter(|e| !e.is_empty()) {
        let text = String::from_utf8_lossy(entry);
        let (key, value) = text.split_once('\n').unwrap_or((&text, ""));
        check_submodule_setting(key, value)
            .map_err(|reason| format!(".gitmodules ({blob}): {reason}"))?;
    }
    Ok(())
}

/// Checks one `key`/`value` pair of a `.gitmodules` file as `git config --list` prints it.
pub(crate) fn check_submodule_setting(key: &str, value: &str) -> Result<(), String> {
    let Some(rest) = key.strip_prefix("submodule.") else {
        return Ok(());
    };
    let Some((name, variable)) = rest.rsplit_once('.') else {
        return Ok(());
    };
    if is_escaping_path(name) {
        return Err(format!(
            "submodule name '{}' is absolute, contains '..' or starts with '-'",
            sanitize_text(name.as_bytes(), 100)
        ));
    }
    let display_name = sanitize_text(value.as_bytes(), 100);
    match variable {
        "path" if is_escaping_path(value) => Err(format!(
            "submodule path '{display_name}' is absolute, contains '..' or starts with '-'"
        )),
        "url" if value.trim_start().starts_with('-') => {
            Err(format!("submodule url '{display_name}' starts with '-'"))
        }
        "update" if value.trim_start().starts_with('!') => Err(format!(
            "submodule update '{display_name}' runs a command on the cloner's machine"
        )),
        _ => Ok(()),
    }
}

fn is_escaping_path(path: &str) -> bool {
    let trimmed = path.trim();
    trimmed.starts_with('/')
        || trimmed.starts_with('\\')
        || trimmed.starts_with('-')
        || trimmed.as_bytes().get(1) == Some(&b':')
        || trimmed.split(['/', '\\']).any(|part| part == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotgit_look_alikes_rejected() {
        for name in [
            ".git",
            ".GIT",
            ".Git",
            ".git.",
            ".git ",
            ".git. .",
            "git~1",
            "GIT~2",
            ".git::$INDEX_ALLOCATION",
            ".g\u{200c}it",
            "\u{feff}.git",
        ] {
            assert!(
                check_entry(b"40000", name.as_bytes()).is_err(),
                "{name:?} should be rejected"
            );
        }
    }

    #[test]
    fn ordinary_names_accepted() {
        for name in [
            ".github",
            ".gitignore",
            "git",
            "git~",
            "git~x",
            "a.git",
            ".gitx",
        ] {
            assert_eq!(
                check_entry(b"100644", name.as_bytes()),
                Ok(EntryVerdict::Plain),
                "{name:?}"
            );
        }
    }

    #[test]
    fn invalid_names_rejected() {
        for name in ["", ".", "..", "a/b"] {
            assert!(check_entry(b"100644", name.as_bytes()).is_err(), "{name:?}");
        }
    }

    #[test]
    fn gitmodules_found_and_symlink_rejected() {
        for name in [".gitmodules", ".GITMODULES", ".gitmodules.", "gitmod~1"] {
            assert_eq!(
                check_entry(b"100644", name.as_bytes()),
                Ok(EntryVerdict::Gitmodules),
                "{name:?}"
            );
            assert!(check_entry(b"120000", name.as_bytes()).is_err(), "{name:?}");
        }
        assert_eq!(
            check_entry(b"40000", b".gitmodules"),
            Ok(EntryVerdict::Plain)
        );
    }

    #[test]
    fn submodule_settings() {
        let rejected = [
            ("submodule.x.path", "../outside"),
            ("submodule.x.path", "a/../../b"),
            ("submodule.x.path", "/etc"),
            ("submodule.x.path", "-oProxyCommand=x"),
            ("submodule.x.path", "C:/x"),
            ("submodule.../x.path", "lib"),
            ("submodule.x.url", "--upload-pack=touch /tmp/x"),
            ("submodule.x.update", "!sh -c id"),
        ];
        for (key, value) in rejected {
            assert!(
                check_submodule_setting(key, value).is_err(),
                "{key}={value}"
            );
        }
        let accepted = [
            ("submodule.lib.path", "vendor/lib"),
            ("submodule.lib.url", "https://forge.example.org/lib.git"),
            ("submodule.lib.url", "../lib.git"),
            ("submodule.lib.update", "rebase"),
            ("core.bare", "false"),
        ];
        for (key, value) in accepted {
            assert!(check_submodule_setting(key, value).is_ok(), "{key}={value}");
        }
    }
}
