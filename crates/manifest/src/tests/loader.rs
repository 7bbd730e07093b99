//! Finding files: the config directory, the repository, shadowing and `bottle check`.

use std::path::{Path, PathBuf};

use super::Fixture;
use crate::check::{FileKind, check_all, check_paths};
use crate::env::EnvValue;
use crate::plan::Plan;
use crate::sources::{Sources, find_repo_root};

fn examples() -> Sources {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    Sources {
        config_dir: root.join("config"),
        repo_root: Some(root.join("repo")),
    }
}

#[test]
fn examples_resolve_to_the_merged_plan() {
    let sources = examples();
    let plan = crate::resolve(&sources, Some("reviewer"), &[]).unwrap();
    let agent = plan.agent.as_ref().unwrap();
    assert!(agent.from_repository);
    assert_eq!(agent.shadowed, None);
    let names: Vec<_> = plan
        .bottles
        .iter()
        .map(|bottle| bottle.name.as_str())
        .collect();
    assert_eq!(names, ["claude-base", "forge-work"]);

    let provider = plan.provider.as_ref().unwrap();
    assert_eq!(provider.template.value, "claude");
    assert_eq!(
        provider.template.source,
        Some(sources.bottles_dir().join("claude-base.md"))
    );
    assert_eq!(
        provider.auth_token.as_ref().unwrap().value,
        "MY_CLAUDE_TOKEN"
    );

    assert_eq!(
        plan.env[1].value,
        EnvValue::Prompt {
            message: Some("PIN for the staging deploy".into())
        }
    );
    assert_eq!(plan.git_user.name.as_ref().unwrap().value, "reviewer-bot");
    assert_eq!(
        plan.git_user.name.as_ref().unwrap().source.as_deref(),
        Some(agent.file.as_path())
    );
    assert_eq!(
        plan.git_user.email.as_ref().unwrap().value,
        "build-bot@example.org"
    );
    assert_eq!(plan.repos[0].value.push.branches, ["bot/*"]);
    assert_eq!(plan.routes.len(), 2);
    assert_eq!(plan.routes[0].value.auth.as_ref().unwrap().scheme, "token");
    assert_eq!(plan.skills.as_ref().unwrap().value, ["code-review"]);
    assert_eq!(
        plan.system_prompt.as_ref().unwrap().value,
        "You review pull requests and leave short comments."
    );
    assert_eq!(plan.egress_log.value, 1);
    assert_eq!(plan.egress_log.source, None);
}

#[test]
fn examples_pass_check() {
    let results = check_paths(
        &examples(),
        &[
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/config"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/repo"),
        ],
    );
    assert_eq!(results.len(), 3);
    for result in results {
        assert!(
            result.error.is_none(),
            "{}: {}",
            result.file.display(),
            result.error.unwrap()
        );
    }
}

#[test]
fn plan_json_has_sources_and_no_secret_values() {
    let fixture = Fixture::new();
    fixture.bottle("b", "env: {T: \"${SECRET_TOKEN}\", P: \"?pin\"}\nagent_provider: {template: claude, auth_token: HOST_TOKEN}\n");
    fixture.agent("a", "bottle: b\n", "Prompt.\n");
    let plan = crate::resolve(&fixture.sources, Some("a"), &[]).unwrap();
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(
        json["env"][0]["value"],
        serde_json::json!({"kind": "host", "variable": "SECRET_TOKEN"})
    );
    assert_eq!(
        json["env"][1]["value"],
        serde_json::json!({"kind": "prompt", "message": "pin"})
    );
    assert_eq!(json["provider"]["auth_token"]["value"], "HOST_TOKEN");
    assert_eq!(
        json["egress_log"],
        serde_json::json!({"value": 1, "source": null})
    );
    assert_eq!(json["agent"]["from_repository"], false);
}

#[test]
fn user_agent_shadows_repository_agent() {
    let fixture = Fixture::new();
    let user = fixture.agent("dup", "", "user\n");
    let repo = fixture.repo_agent("dup", "", "repo\n");
    let plan = crate::resolve(&fixture.sources, Some("dup"), &[]).unwrap();
    let agent = plan.agent.unwrap();
    assert_eq!(agent.file, user);
    assert!(!agent.from_repository);
    assert_eq!(agent.shadowed, Some(repo));
    assert_eq!(plan.system_prompt.unwrap().value, "user");
}

#[test]
fn repository_agent_is_marked() {
    let fixture = Fixture::new();
    let repo = fixture.repo_agent("r", "", "");
    let plan = crate::resolve(&fixture.sources, Some("r"), &[]).unwrap();
    let agent = plan.agent.unwrap();
    assert_eq!(agent.file, repo);
    assert!(agent.from_repository);
    assert_eq!(plan.system_prompt, None);
}

#[test]
fn repository_cannot_ship_bottles() {
    let fixture = Fixture::new();
    let repo_bottles = fixture
        .sources
        .repo_root
        .as_ref()
        .unwrap()
        .join(".bot-bottle/bottles");
    std::fs::create_dir_all(&repo_bottles).unwrap();
    std::fs::write(repo_bottles.join("evil.md"), "---\n---\n").unwrap();
    fixture.repo_agent("r", "bottle: evil\n", "");
    let error = crate::resolve(&fixture.sources, Some("r"), &[]).unwrap_err();
    assert!(
        error.to_string().starts_with("bottle `evil` not found"),
        "{error}"
    );
}

#[cfg(unix)]
#[test]
fn repository_agent_symlink_outside_is_rejected() {
    let fixture = Fixture::new();
    let outside = fixture.sources.config_dir.join("outside.md");
    std::fs::write(&outside, "---\n---\n").unwrap();
    let link = fixture.sources.repo_agents_dir().unwrap().join("link.md");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let error = crate::resolve(&fixture.sources, Some("link"), &[]).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("the file links outside the repository"),
        "{error}"
    );

    let inside = fixture
        .sources
        .repo_root
        .as_ref()
        .unwrap()
        .join("inside.md");
    std::fs::write(&inside, "---\n---\n").unwrap();
    let link = fixture.sources.repo_agents_dir().unwrap().join("ok.md");
    std::os::unix::fs::symlink(&inside, &link).unwrap();
    assert!(
        crate::resolve(&fixture.sources, Some("ok"), &[]).is_ok(),
        "a link inside is fine"
    );
}

#[test]
fn missing_agent_lists_both_places() {
    let fixture = Fixture::new();
    let error = crate::resolve(&fixture.sources, Some("nope"), &[]).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "agent `nope` not found; looked for {} and {}",
            fixture.sources.agents_dir().join("nope.md").display(),
            fixture
                .sources
                .repo_agents_dir()
                .unwrap()
                .join("nope.md")
                .display()
        )
    );
}

#[test]
fn names_must_be_plain() {
    let fixture = Fixture::new();
    for name in ["../x", "a/b", "", ".hidden"] {
        let error = crate::resolve(&fixture.sources, Some(name), &[]).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid agent name"),
            "{name}: {error}"
        );
        let error = crate::resolve(&fixture.sources, None, &[name.to_string()]).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid bottle name"),
            "{name}: {error}"
        );
    }
}

#[test]
fn no_agent_and_no_bottles_is_the_default_bottle() {
    let fixture = Fixture::new();
    let plan = crate::resolve(&fixture.sources, None, &[]).unwrap();
    assert_eq!(plan, Plan::default_bottle());
    assert!(plan.routes.is_empty());
    assert!(plan.repos.is_empty());
    assert_eq!(plan.provider, None);
    assert_eq!(plan.command, None);
}

#[test]
fn agent_without_bottle_gets_default_settings() {
    let fixture = Fixture::new();
    fixture.agent("plain", "command: [sh]\n", "");
    let plan = crate::resolve(&fixture.sources, Some("plain"), &[]).unwrap();
    assert!(plan.bottles.is_empty());
    assert!(plan.routes.is_empty());
}

#[test]
fn broken_file_does_not_stop_others() {
    let fixture = Fixture::new();
    fixture.bottle("good", "env: {A: b}\n");
    let broken_bottle = fixture.bottle("broken", "env: [x]\n");
    fixture.agent("ok", "bottle: good\n", "");
    let broken_agent = fixture.repo_agent("bad", "egress: {}\n", "");
    fixture.agent("uses-broken", "bottle: broken\n", "");

    assert!(crate::resolve(&fixture.sources, Some("ok"), &[]).is_ok());
    let results = check_all(&fixture.sources);
    let failed: Vec<_> = results
        .iter()
        .filter(|result| result.error.is_some())
        .map(|result| result.file.clone())
        .collect();
    assert_eq!(
        failed,
        [
            broken_bottle,
            fixture.sources.agents_dir().join("uses-broken.md"),
            broken_agent
        ],
        "{results:?}"
    );
    assert_eq!(results.len(), 5);
    let kinds: Vec<_> = results.iter().map(|result| result.kind).collect();
    assert_eq!(
        kinds,
        [
            FileKind::Bottle,
            FileKind::Bottle,
            FileKind::Agent,
            FileKind::Agent,
            FileKind::Agent
        ]
    );
}

#[test]
fn check_single_files_by_directory_name() {
    let fixture = Fixture::new();
    fixture.bottle("base", "env: {A: b}\n");
    let dir = tempfile::tempdir().unwrap();
    let bottles = dir.path().join("bottles");
    std::fs::create_dir(&bottles).unwrap();
    let bottle = bottles.join("mine.md");
    std::fs::write(&bottle, "---\nextends: base\negress: {log: 2}\n---\n").unwrap();
    let agent = dir.path().join("agent.md");
    std::fs::write(&agent, "---\negress: {log: 2}\n---\n").unwrap();

    let results = check_paths(&fixture.sources, &[bottle.clone(), agent.clone()]);
    assert_eq!(results[0].kind, FileKind::Bottle);
    assert!(results[0].error.is_none(), "{:?}", results[0].error);
    assert_eq!(results[1].kind, FileKind::Agent);
    assert!(results[1].error.is_some());

    let missing = check_paths(&fixture.sources, &[PathBuf::from("/nonexistent/x.md")]);
    assert!(
        missing[0]
            .error
            .as_ref()
            .unwrap()
            .to_string()
            .contains("cannot read the file")
    );
}

#[test]
fn find_repo_root_walks_up() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/c");
    std::fs::create_dir_all(&nested).unwrap();
    assert_eq!(find_repo_root(&nested), None);
    std::fs::create_dir(dir.path().join("a/.git")).unwrap();
    assert_eq!(find_repo_root(&nested), Some(dir.path().join("a")));
    std::fs::write(dir.path().join("a/b/.git"), "gitdir: elsewhere\n").unwrap();
    assert_eq!(
        find_repo_root(&nested),
        Some(dir.path().join("a/b")),
        "a worktree's .git file counts"
    );
}
