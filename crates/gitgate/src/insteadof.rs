//! The git configuration given to the bottle, which sends every upstream URL to the gate.

use std::fmt::Write;

use crate::config::GateRepo;
use crate::url::UpstreamUrl;

/// Commit identity for the bottle's git configuration; either field may be absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GitUser {
    pub name: Option<String>,
    pub email: Option<String>,
}

/// Returns gitconfig text that rewrites each repo's upstream URL to
/// `<gate_base_url>/<name>.git`, so the agent clones, fetches and pushes with the
/// ordinary upstream URL. Each URL gets its spellings with and without `.git` and, when
/// the port is the default, in both the `ssh://` and the `user@host:path` form.
///
/// `insteadOf` matches URL prefixes and the longest match wins, so a URL that only starts
/// like a declared one is rewritten to a path that the gate rejects with 404.
/// A repo whose URL does not parse is left out; `GateConfig::validate` reports it.
/// Values with a newline or NUL are left out too, as they cannot be written safely.
pub fn insteadof_config(repos: &[GateRepo], gate_base_url: &str, user: Option<&GitUser>) -> String {
    let base = gate_base_url.trim_end_matches('/');
    let mut text = String::new();
    for repo in repos {
        let Ok(url) = UpstreamUrl::parse(&repo.url) else {
            continue;
        };
        writeln!(
            text,
            "[url {}]",
            quote(&format!("{base}/{}.git", repo.name))
        )
        .expect("string");
        for form in url.equivalent_forms(&repo.url) {
            writeln!(text, "\tinsteadOf = {}", quote(&form)).expect("string");
        }
    }
    if let Some(user) = user {
        let fields = [("name", &user.name), ("email", &user.email)];
        let fields: Vec<_> = fields
            .into_iter()
            .filter_map(|(key, value)| Some((key, value.as_deref()?)))
            .filter(|(_, value)| !value.contains(['\n', '\r', '\0']))
            .collect();
        if !fields.is_empty() {
            text.push_str("[user]\n");
            for (key, value) in fields {
                writeln!(text, "\t{key} = {}", quote(value)).expect("string");
            }
        }
    }
    text
}

/// Quotes a gitconfig value or subsection name.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PushPolicy;

    fn repo(name: &str, url: &str) -> GateRepo {
        GateRepo {
            name: name.into(),
            url: url.into(),
            host_keys: vec!["ssh-ed25519 AAAA".into()],
            identity: "/k".into(),
            push: PushPolicy::default(),
        }
    }

    #[test]
    fn rewrites_every_form() {
        let text = insteadof_config(
            &[repo("widgets", "git@forge.example.org:team/widgets.git")],
            "http://127.0.0.1:9418/",
            None,
        );
        assert_eq!(
            text,
            "[url \"http://127.0.0.1:9418/widgets.git\"]\n\
             \tinsteadOf = \"git@forge.example.org:team/widgets.git\"\n\
             \tinsteadOf = \"git@forge.example.org:team/widgets\"\n"
        );
    }

    #[test]
    fn writes_user_and_escapes_quotes() {
        let user = GitUser {
            name: Some("Bot \"B\"".into()),
            email: Some("b@example.org".into()),
        };
        let text = insteadof_config(&[], "http://127.0.0.1:1", Some(&user));
        assert_eq!(
            text,
            "[user]\n\tname = \"Bot \\\"B\\\"\"\n\temail = \"b@example.org\"\n"
        );
    }

    #[test]
    fn drops_values_with_newlines() {
        let user = GitUser {
            name: Some("a\n[core]\nx".into()),
            email: None,
        };
        assert_eq!(insteadof_config(&[], "http://127.0.0.1:1", Some(&user)), "");
    }

    #[test]
    fn output_parses_with_git() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config");
        let user = GitUser {
            name: Some("Bot".into()),
            email: None,
        };
        let text = insteadof_config(
            &[repo("w", "ssh://git@h.example.org/srv/w.git")],
            "http://127.0.0.1:7",
            Some(&user),
        );
        std::fs::write(&file, text).expect("write");
        let output = std::process::Command::new("git")
            .args(["config", "--file"])
            .arg(&file)
            .args(["--get-all", "url.http://127.0.0.1:7/w.git.insteadof"])
            .output()
            .expect("run git");
        assert!(output.status.success());
        let forms = String::from_utf8(output.stdout).expect("utf-8");
        assert!(
            forms
                .lines()
                .any(|line| line == "ssh://git@h.example.org/srv/w.git")
        );
        assert!(forms.lines().any(|line| line == "git@h.example.org:/srv/w"));
    }
}
