//! Push policy decisions: pure functions over one ref update.

use crate::config::PushPolicy;

/// One `<old> <new> <ref>` line of a push.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub name: String,
}

impl RefUpdate {
    /// Parses a pre-receive input line, checking both object ids.
    pub fn parse(line: &str) -> Option<RefUpdate> {
        let mut parts = line.split(' ');
        let (old, new, name) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !is_object_id(old) || !is_object_id(new) || name.is_empty() {
            return None;
        }
        Some(RefUpdate {
            old: old.to_owned(),
            new: new.to_owned(),
            name: name.to_owned(),
        })
    }

    pub fn is_create(&self) -> bool {
        is_zero(&self.old)
    }

    pub fn is_delete(&self) -> bool {
        is_zero(&self.new)
    }
}

/// Returns whether `text` is a full SHA-1 or SHA-256 object id in lower-case hex.
pub(crate) fn is_object_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_zero(id: &str) -> bool {
    id.bytes().all(|b| b == b'0')
}

/// Checks one update against the repo's policy. `fast_forward` is true when the new commit
/// descends from the old one. It is read only for updates of existing refs.
pub(crate) fn check_update(
    policy: &PushPolicy,
    update: &RefUpdate,
    fast_forward: bool,
) -> Result<(), String> {
    validate_ref_name(&update.name)?;
    if let Some(branch) = update.name.strip_prefix("refs/heads/") {
        if !policy
            .branches
            .iter()
            .any(|glob| glob_matches(glob, branch))
        {
            return Err(format!(
                "branch '{branch}' is not allowed; allowed branches: {}",
                policy.branches.join(", ")
            ));
        }
        if update.is_delete() {
            return allow(policy.delete, "deleting a branch is not allowed");
        }
        if !update.is_create() && !fast_forward {
            return allow(
                policy.force,
                "non-fast-forward (force) pushes are not allowed",
            );
        }
        return Ok(());
    }

    if update.name.strip_prefix("refs/tags/").is_some() {
        allow(policy.tags, "pushing tags is not allowed")?;
        if update.is_delete() {
            return allow(policy.delete, "deleting a tag is not allowed");
        }
        if !update.is_create() {
            return allow(policy.force, "moving an existing tag is not allowed");
        }
        return Ok(());
    }

    Err("only refs under refs/heads/ and refs/tags/ can be pushed".to_owned())
}

/// Checks a ref name against git's `check-ref-format` rules, and rejects names that git
/// would read as something else (`HEAD`, `@`, a name ending in `/HEAD`). git's receive-pack
/// checks the format too; this copy keeps the policy safe without relying on it.
pub(crate) fn validate_ref_name(name: &str) -> Result<(), String> {
    let display_name = name.escape_debug();
    let invalid = |why: &str| Err(format!("invalid ref name '{display_name}': {why}"));
    if name.len() > 1024 {
        return invalid("longer than 1024 bytes");
    }
    if name
        .chars()
        .any(|ch| ch.is_control() || matches!(ch, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return invalid("contains a control character, space or one of ~^:?*[\\");
    }
    if name.contains("..") || name.contains("@{") || name.contains("//") {
        return invalid("contains '..', '@{' or '//'");
    }
    if name.ends_with('/') || name.ends_with('.') || name == "@" {
        return invalid("ends with '/' or '.', or is '@'");
    }
    for component in name.split('/') {
        if component.starts_with('.') || component.ends_with(".lock") || component.is_empty() {
            return invalid("a component is empty, starts with '.' or ends with '.lock'");
        }
    }
    if name.split('/').count() < 3 || name.ends_with("/HEAD") {
        return invalid("expected refs/<namespace>/<name>, not a name ending in HEAD");
    }
    Ok(())
}

fn allow(allowed: bool, reason: &str) -> Result<(), String> {
    if allowed {
        Ok(())
    } else {
        Err(reason.to_owned())
    }
}

/// Matches `text` against a glob where `*` matches any sequence (including `/`) and `?`
/// matches one character.
pub(crate) fn glob_matches(glob: &str, text: &str) -> bool {
    let pattern: Vec<char> = glob.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    t = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const ZERO: &str = "0000000000000000000000000000000000000000";

    fn update(old: &str, new: &str, name: &str) -> RefUpdate {
        RefUpdate {
            old: old.into(),
            new: new.into(),
            name: name.into(),
        }
    }

    #[test]
    fn parse_checks_ids() {
        assert!(RefUpdate::parse(&format!("{A} {B} refs/heads/main")).is_some());
        assert!(RefUpdate::parse(&format!("{A} xyz refs/heads/main")).is_none());
        assert!(RefUpdate::parse(&format!("{A} {B}")).is_none());
        assert!(RefUpdate::parse(&format!("{A} {B} refs/heads/main extra")).is_none());
    }

    #[test]
    fn default_policy_allows_fast_forward_and_create() {
        let policy = PushPolicy::default();
        assert!(check_update(&policy, &update(A, B, "refs/heads/main"), true).is_ok());
        assert!(check_update(&policy, &update(ZERO, B, "refs/heads/feature/x"), false).is_ok());
    }

    #[test]
    fn default_policy_rejects_force_delete_tags() {
        let policy = PushPolicy::default();
        let force = check_update(&policy, &update(A, B, "refs/heads/main"), false);
        assert!(force.expect_err("force").contains("non-fast-forward"));
        let delete = check_update(&policy, &update(A, ZERO, "refs/heads/main"), true);
        assert!(delete.expect_err("delete").contains("deleting a branch"));
        let tag = check_update(&policy, &update(ZERO, B, "refs/tags/v1"), true);
        assert!(tag.expect_err("tag").contains("tags"));
    }

    #[test]
    fn permissive_policy_allows_them() {
        let policy = PushPolicy {
            branches: vec!["*".into()],
            force: true,
            delete: true,
            tags: true,
        };
        assert!(check_update(&policy, &update(A, B, "refs/heads/main"), false).is_ok());
        assert!(check_update(&policy, &update(A, ZERO, "refs/heads/main"), true).is_ok());
        assert!(check_update(&policy, &update(ZERO, B, "refs/tags/v1"), true).is_ok());
    }

    #[test]
    fn other_namespaces_rejected_even_when_permissive() {
        let policy = PushPolicy {
            branches: vec!["*".into()],
            force: true,
            delete: true,
            tags: true,
        };
        for name in [
            "refs/notes/commits",
            "refs/meta/config",
            "HEAD",
            "refs/remotes/o/x",
        ] {
            assert!(
                check_update(&policy, &update(ZERO, B, name), true).is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn branch_globs() {
        let policy = PushPolicy {
            branches: vec!["bot/*".into()],
            ..PushPolicy::default()
        };
        assert!(check_update(&policy, &update(ZERO, B, "refs/heads/bot/a"), true).is_ok());
        let err = check_update(&policy, &update(ZERO, B, "refs/heads/main"), true);
        assert!(err.expect_err("main").contains("bot/*"));
    }

    #[test]
    fn invalid_ref_names_rejected() {
        let policy = PushPolicy {
            branches: vec!["*".into()],
            force: true,
            delete: true,
            tags: true,
        };
        for name in [
            "refs/heads/a..b",
            "refs/heads/.hidden",
            "refs/heads/x.lock",
            "refs/heads/a//b",
            "refs/heads/a/",
            "refs/heads/a.",
            "refs/heads/a b",
            "refs/heads/a\u{1b}[31m",
            "refs/heads/a~1",
            "refs/heads/a^",
            "refs/heads/a:b",
            "refs/heads/a@{1}",
            "refs/heads/HEAD",
            "refs/heads/x/HEAD",
            "refs/heads",
            "refs/tags/v1\\x",
        ] {
            let result = check_update(&policy, &update(ZERO, B, name), true);
            let error = result.expect_err(name);
            assert!(error.contains("invalid ref name"), "{name}: {error}");
        }
        for name in [
            "refs/heads/bot/PACK",
            "refs/heads/a.b-c_d",
            "refs/tags/v1.2.3",
        ] {
            assert!(
                check_update(&policy, &update(ZERO, B, name), true).is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn glob_cases() {
        assert!(glob_matches("*", "a/b/c"));
        assert!(glob_matches("bot/*", "bot/x/y"));
        assert!(!glob_matches("bot/*", "bots/x"));
        assert!(glob_matches("v?.*-rc", "v1.2.3-rc"));
        assert!(!glob_matches("main", "main2"));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXbYY"));
    }
}
