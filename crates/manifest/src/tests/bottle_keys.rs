//! Every bottle key outside `egress.routes`: its type, default and errors.

use std::path::{Path, PathBuf};

use super::{bottle, bottle_errors};
use crate::env::EnvValue;
use crate::gitgate::{Forge, ProvisionedKey, PushPolicy, RepoKey};
use crate::sourced::Sourced;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIQzVK80EvAY6oH+ocpNWO8I9EQJ47Eotz7cRxpJRYXr";

fn repo_yaml(extra: &str) -> String {
    format!(
        "git-gate:\n  repos:\n    widgets:\n      url: git@example.org:team/widgets.git\n      \
         host_key: {KEY}\n{extra}"
    )
}

#[test]
fn empty_bottle_is_valid() {
    let parsed = bottle("");
    assert!(parsed.extends.is_empty());
    assert!(parsed.env.is_empty());
    assert!(parsed.routes.is_empty());
    assert_eq!(parsed.egress_log, None);
}

#[test]
fn extends_name_or_list() {
    assert_eq!(
        bottle("extends: base\n").extends,
        vec![("base".to_string(), 1)]
    );
    let parsed = bottle("extends: [a, b]\n");
    let names: Vec<_> = parsed
        .extends
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn extends_rejects_paths_and_bad_types() {
    assert_eq!(
        bottle_errors("extends: ../evil\n"),
        [
            "b.md:2: extends: invalid bottle name \"../evil\"; a bottle is named by its file name \
          in the config directory's `bottles`, without `.md`"
        ]
    );
    assert_eq!(
        bottle_errors("extends: {a: 1}\n"),
        ["b.md:2: extends: expected a name or a list of names, found a map"]
    );
    assert_eq!(
        bottle_errors("extends: [a, 3]\n"),
        ["b.md:2: extends[1]: expected a string, found an integer"]
    );
}

#[test]
fn env_values() {
    let parsed = bottle(
        "env:\n  A: plain\n  B: \"${HOME_TOKEN}\"\n  C: \"?\"\n  D: \"?Your PIN\"\n  E: 8080\n",
    );
    let values: Vec<_> = parsed
        .env
        .iter()
        .map(|(name, value)| (name.as_str(), &value.value))
        .collect();
    assert_eq!(
        values,
        [
            (
                "A",
                &EnvValue::Literal {
                    value: "plain".into()
                }
            ),
            (
                "B",
                &EnvValue::Host {
                    variable: "HOME_TOKEN".into()
                }
            ),
            ("C", &EnvValue::Prompt { message: None }),
            (
                "D",
                &EnvValue::Prompt {
                    message: Some("Your PIN".into())
                }
            ),
            (
                "E",
                &EnvValue::Literal {
                    value: "8080".into()
                }
            ),
        ]
    );
    assert_eq!(parsed.env[0].1.source, Some(PathBuf::from("b.md")));
}

#[test]
fn env_reserved_names_rejected() {
    for name in [
        "HTTPS_PROXY",
        "https_proxy",
        "SSL_CERT_FILE",
        "PATH",
        "BOT_BOTTLE_SLUG",
    ] {
        assert_eq!(
            bottle_errors(&format!("env:\n  {name}: x\n")),
            [format!(
                "b.md:3: env.{name}: `{name}` is set by bottle in every bottle and cannot be \
                 overridden; remove it"
            )]
        );
    }
}

#[test]
fn env_errors() {
    assert_eq!(
        bottle_errors("env:\n  1BAD: x\n"),
        [
            "b.md:3: env.1BAD: invalid variable name \"1BAD\"; use letters, digits and `_`, not \
          starting with a digit"
        ]
    );
    assert_eq!(
        bottle_errors("env:\n  A: true\n"),
        ["b.md:3: env.A: expected a string, found a boolean; quote the value"]
    );
    assert_eq!(
        bottle_errors("env:\n  A: \"x${B}\"\n"),
        [
            "b.md:3: env.A: only a whole value \"${NAME}\" copies a host variable; `${` inside a \
          longer value is not expanded"
        ]
    );
    assert_eq!(
        bottle_errors("env: [A]\n"),
        ["b.md:2: env: expected a map, found a list"]
    );
}

#[test]
fn agent_provider_keys() {
    let parsed = bottle(
        "agent_provider:\n  template: codex\n  auth_token: TOKEN\n  forward_host_credentials: true\n",
    );
    assert_eq!(parsed.provider.template.unwrap().value, "codex");
    assert_eq!(parsed.provider.auth_token.unwrap().value, "TOKEN");
    assert!(parsed.provider.forward_host_credentials.unwrap().value);
}

#[test]
fn agent_provider_errors() {
    assert_eq!(
        bottle_errors("agent_provider:\n  templte: claude\n"),
        ["b.md:3: agent_provider.templte: unknown key `templte`; did you mean `template`?"]
    );
    assert_eq!(
        bottle_errors("agent_provider:\n  forward_host_credentials: yes\n"),
        [
            "b.md:3: agent_provider.forward_host_credentials: expected true or false, found the \
          string \"yes\""
        ]
    );
    assert_eq!(
        bottle_errors("agent_provider:\n  auth_token: \"$TOKEN\"\n"),
        [
            "b.md:3: agent_provider.auth_token: invalid variable name \"$TOKEN\"; use letters, \
          digits and `_`, not starting with a digit"
        ]
    );
    assert_eq!(
        bottle_errors("agent_provider:\n  template: ../x\n"),
        [
            "b.md:3: agent_provider.template: invalid template \"../x\"; use `claude`, `codex` or a \
          plugin name"
        ]
    );
}

#[test]
fn dockerfile_resolves_against_the_file() {
    let parsed = crate::file::parse_bottle(
        Path::new("/config/bottles/b.md"),
        "---\ndockerfile: images/Dockerfile\n---\n",
    )
    .unwrap();
    assert_eq!(
        parsed.dockerfile.unwrap().value,
        PathBuf::from("/config/bottles/images/Dockerfile")
    );
    let parsed = bottle("dockerfile: /abs/Dockerfile\n");
    assert_eq!(
        parsed.dockerfile.unwrap().value,
        PathBuf::from("/abs/Dockerfile")
    );
}

#[test]
fn git_user_fields() {
    let parsed = bottle("git-gate:\n  user: {name: bot, email: bot@example.org}\n");
    assert_eq!(parsed.git_user.name.unwrap().value, "bot");
    assert_eq!(parsed.git_user.email.unwrap().value, "bot@example.org");
    assert_eq!(
        bottle_errors("git-gate:\n  user: {name: \"a\\nb\"}\n"),
        ["b.md:3: git-gate.user.name: the value contains a control character, `<` or `>`"]
    );
    assert_eq!(
        bottle_errors("git-gate:\n  user: {nmae: a}\n"),
        ["b.md:3: git-gate.user.nmae: unknown key `nmae`; did you mean `name`?"]
    );
}

#[test]
fn repo_with_provisioned_key_and_defaults() {
    let parsed = bottle(&repo_yaml(
        "      provisioned_key: {provider: gitea, api_url: \"https://forge.example.org/\", \
         token_env: FORGE}\n",
    ));
    let (name, repo) = &parsed.repos[0];
    assert_eq!(name, "widgets");
    assert_eq!(repo.value.url.host, "example.org");
    assert_eq!(repo.value.host_keys[0].key_type, "ssh-ed25519");
    assert_eq!(
        repo.value.key,
        RepoKey::ProvisionedKey(ProvisionedKey {
            provider: Forge::Gitea,
            api_url: "https://forge.example.org".into(),
            token_env: "FORGE".into(),
            read_only: false,
            title: None,
        })
    );
    assert_eq!(repo.value.push, PushPolicy::default());
    assert_eq!(repo.value.push.branches, ["*"]);
}

#[test]
fn repo_with_identity_and_push_policy() {
    let parsed = bottle(&repo_yaml(
        "      identity: /keys/deploy\n      push: {branches: [\"bot/*\", main], force: true, \
         delete: true, tags: true}\n",
    ));
    let repo = &parsed.repos[0].1.value;
    assert_eq!(repo.key, RepoKey::Identity(PathBuf::from("/keys/deploy")));
    assert_eq!(
        repo.push,
        PushPolicy {
            branches: vec!["bot/*".into(), "main".into()],
            force: true,
            delete: true,
            tags: true
        }
    );
}

#[test]
fn repo_provisioned_key_all_fields() {
    let parsed = bottle(&repo_yaml(
        "      provisioned_key:\n        provider: github\n        api_url: https://api.github.com\n        \
         token_env: GH\n        read_only: true\n        title: bottle key\n",
    ));
    let RepoKey::ProvisionedKey(key) = &parsed.repos[0].1.value.key else {
        panic!("not provisioned")
    };
    assert_eq!(key.provider, Forge::Github);
    assert!(key.read_only);
    assert_eq!(key.title.as_deref(), Some("bottle key"));
}

#[test]
fn repo_needs_exactly_one_key() {
    assert_eq!(
        bottle_errors(&repo_yaml("")),
        [
            "b.md:5: git-gate.repos.widgets: set exactly one of `identity` and `provisioned_key`; \
          neither is set"
        ]
    );
    assert_eq!(
        bottle_errors(&repo_yaml(
            "      identity: /k\n      provisioned_key: {provider: gitea, api_url: \
             \"https://f.example\", token_env: T}\n"
        )),
        [
            "b.md:5: git-gate.repos.widgets: set exactly one of `identity` and `provisioned_key`, \
          not both"
        ]
    );
}

#[test]
fn repo_errors() {
    assert_eq!(
        bottle_errors(
            "git-gate:\n  repos:\n    w:\n      url: https://example.org/r.git\n      host_key: \
             ssh-ed25519 AAAA\n      identity: /k\n"
        ),
        [
            "b.md:5: git-gate.repos.w.url: invalid upstream URL: the git gate pushes over SSH only; expected `ssh://[user@]host[:port]/path` or \
             `user@host:path`",
            "b.md:6: git-gate.repos.w.host_key: invalid host key: the base64 part is not a \
             ssh-ed25519 key; expected `<type> <base64>`",
        ]
    );
    assert_eq!(
        bottle_errors("git-gate:\n  repos:\n    w:\n      identity: /k\n"),
        [
            "b.md:5: git-gate.repos.w: missing required key `url`",
            "b.md:5: git-gate.repos.w: missing required key `host_key`",
        ]
    );
    assert_eq!(
        bottle_errors("git-gate:\n  repos:\n    ../x: {}\n"),
        [
            "b.md:4: git-gate.repos.../x: invalid repo name; use letters, digits, `.`, `_` and `-`, \
          starting with a letter or digit"
        ]
    );
    assert_eq!(
        bottle_errors(&repo_yaml(
            "      provisioned_key: {provider: bitbucket, api_url: \"http://forge.example\", \
             token_env: T}\n"
        )),
        [
            "b.md:7: git-gate.repos.widgets.provisioned_key.provider: unknown provider \
             \"bitbucket\"; expected `gitea`, `github` or `gitlab`",
            "b.md:7: git-gate.repos.widgets.provisioned_key.api_url: invalid API URL: plain `http://` is allowed only for a loopback address; \
             use `https://`",
        ]
    );
    assert_eq!(
        bottle_errors(&repo_yaml(
            "      provisioned_key: {provider: gitea, api_url: \"https://u:p@forge.example\", \
             token_env: T}\n"
        )),
        [
            "b.md:7: git-gate.repos.widgets.provisioned_key.api_url: invalid API URL: credentials do not belong in the URL; use `token_env`"
        ]
    );
    assert_eq!(
        bottle_errors(&repo_yaml(
            "      identity: /k\n      push: {branches: [\"a..b\"], force: 1}\n"
        )),
        [
            "b.md:8: git-gate.repos.widgets.push.branches[0]: invalid branch pattern \"a..b\"",
            "b.md:8: git-gate.repos.widgets.push.force: expected true or false, found an integer",
        ]
    );
    assert_eq!(
        bottle_errors("git-gate:\n  repo: {}\n"),
        ["b.md:3: git-gate.repo: unknown key `repo`; did you mean `repos`?"]
    );
}

#[test]
fn loopback_api_url_may_be_plain_http() {
    let parsed = bottle(&repo_yaml(
        "      provisioned_key: {provider: gitea, api_url: \"http://127.0.0.1:3000\", token_env: T}\n",
    ));
    let RepoKey::ProvisionedKey(key) = &parsed.repos[0].1.value.key else {
        panic!("not provisioned")
    };
    assert_eq!(key.api_url, "http://127.0.0.1:3000");
}

#[test]
fn egress_log_levels() {
    for level in 0..=2u8 {
        let parsed = bottle(&format!("egress:\n  log: {level}\n"));
        assert_eq!(
            parsed.egress_log,
            Some(Sourced::new(level, Path::new("b.md")))
        );
    }
    assert_eq!(
        bottle_errors("egress:\n  log: 3\n"),
        ["b.md:3: egress.log: 3 is out of range; expected 0 to 2"]
    );
    assert_eq!(
        bottle_errors("egress:\n  log: verbose\n"),
        ["b.md:3: egress.log: expected an integer, found a string"]
    );
}

#[test]
fn unknown_top_level_keys() {
    assert_eq!(
        bottle_errors("git_gate: {}\n"),
        ["b.md:2: git_gate: unknown key `git_gate`; did you mean `git-gate`?"]
    );
    assert_eq!(
        bottle_errors("routes: []\n"),
        [
            "b.md:2: routes: unknown key `routes`; expected one of `extends`, `env`, \
          `agent_provider`, `dockerfile`, `git-gate`, `egress`"
        ]
    );
    assert_eq!(
        bottle_errors("egress:\n  route: []\n"),
        ["b.md:3: egress.route: unknown key `route`; did you mean `routes`?"]
    );
}

#[test]
fn several_errors_are_all_reported_in_line_order() {
    assert_eq!(
        bottle_errors("env: {A: true}\negress: {log: 9}\nextend: x\n"),
        [
            "b.md:2: env.A: expected a string, found a boolean; quote the value",
            "b.md:3: egress.log: 9 is out of range; expected 0 to 2",
            "b.md:4: extend: unknown key `extend`; did you mean `extends`?",
        ]
    );
}
