//! `bottle check`, `bottle info` and `bottle run --dry-run`, run as the built binary on
//! temporary config directories and git repositories.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is the failure report

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use serde_json::Value;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A temporary home with a config directory and a git repository.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    /// Copies the example files: the bottles into the config directory, the agent into
    /// a fresh git repository.
    fn with_examples() -> Setup {
        let setup = Setup::empty();
        for name in ["claude-base", "forge-work"] {
            let from = examples_dir().join(format!("config/bottles/{name}.md"));
            std::fs::copy(from, setup.config().join(format!("bottles/{name}.md"))).unwrap();
        }
        let from = examples_dir().join("repo/.bot-bottle/agents/reviewer.md");
        std::fs::copy(from, setup.repo().join(".bot-bottle/agents/reviewer.md")).unwrap();
        setup
    }

    fn empty() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let setup = Setup { dir };
        std::fs::create_dir_all(setup.config().join("bottles")).unwrap();
        std::fs::create_dir_all(setup.config().join("agents")).unwrap();
        std::fs::create_dir_all(setup.repo().join(".bot-bottle/agents")).unwrap();
        let status = StdCommand::new("git")
            .args(["init", "--quiet"])
            .current_dir(setup.repo())
            .status()
            .expect("these tests need git on PATH: install git");
        assert!(status.success(), "git init failed");
        setup
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn repo(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The `bottle` binary, run inside the repository with this config directory.
    fn bottle(&self, args: &[&str]) -> Command {
        let mut command = Command::cargo_bin("bottle").unwrap();
        command
            .args(args)
            .current_dir(self.repo())
            .env("BOT_BOTTLE_HOME", self.config())
            .env("HOME", self.dir.path())
            .env_remove("BOT_BOTTLE_BACKEND");
        command
    }

    /// Replaces the temporary directory in output so snapshots are stable.
    fn redact(&self, text: &str) -> String {
        let real = self.dir.path().canonicalize().unwrap();
        text.replace(&real.display().to_string(), "[TMP]")
            .replace(&self.dir.path().display().to_string(), "[TMP]")
    }
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn info_reviewer_shows_merged_example() {
    let setup = Setup::with_examples();
    let output = setup.bottle(&["info", "reviewer"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = setup.redact(&stdout(&output));

    let lines = [
        "agent            reviewer  [[TMP]/repo/.bot-bottle/agents/reviewer.md, from the repository]",
        "bottles          claude-base  [[TMP]/config/bottles/claude-base.md]",
        "                 forge-work  [[TMP]/config/bottles/forge-work.md]",
        "provider         claude  [[TMP]/config/bottles/claude-base.md]",
        "git user.name    reviewer-bot  [[TMP]/repo/.bot-bottle/agents/reviewer.md]",
        "git user.email   build-bot@example.org  [[TMP]/config/bottles/forge-work.md]",
        "skills           code-review  [[TMP]/repo/.bot-bottle/agents/reviewer.md]",
    ];
    for expected in lines {
        assert!(
            text.lines().any(|line| line == expected),
            "missing {expected:?} in:\n{text}"
        );
    }
    insta::assert_snapshot!("info_reviewer", text);
}

#[test]
fn info_json_has_provenance() {
    let setup = Setup::with_examples();
    let output = setup
        .bottle(&["info", "reviewer", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    let forge_work = setup.config().join("bottles/forge-work.md");

    assert_eq!(plan["agent"]["name"], "reviewer");
    assert_eq!(plan["agent"]["from_repository"], true);
    assert_eq!(plan["env"][0]["name"], "LOG_LEVEL");
    assert_eq!(plan["env"][0]["source"], forge_work.display().to_string());
    assert_eq!(plan["env"][1]["value"]["kind"], "prompt");
    assert_eq!(
        plan["repos"][0]["value"]["url"],
        "ssh://git@forge.example.org:2222/team/widgets.git"
    );
    assert_eq!(plan["routes"][0]["value"]["host"], "forge.example.org");
    assert_eq!(
        plan["routes"][0]["value"]["auth"]["token_ref"],
        "FORGE_API_TOKEN"
    );
    assert_eq!(plan["routes"][1]["value"]["host"], "pypi.org");
    assert_eq!(plan["egress_log"]["source"], Value::Null);
}

#[test]
fn info_user_agent_shadows_repository_agent() {
    let setup = Setup::with_examples();
    setup.write(
        "config/agents/reviewer.md",
        "---\nbottle: claude-base\n---\nMine.\n",
    );
    let output = setup
        .bottle(&["info", "reviewer", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["agent"]["from_repository"], false);
    let shadowed = plan["agent"]["shadowed"].as_str().unwrap();
    assert!(
        shadowed.ends_with("repo/.bot-bottle/agents/reviewer.md"),
        "{shadowed}"
    );
}

#[test]
fn info_missing_agent_fails() {
    let setup = Setup::empty();
    let output = setup.bottle(&["info", "ghost"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("agent `ghost` not found; looked for "),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_passes_examples() {
    let setup = Setup::with_examples();
    let output = setup.bottle(&["check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(stdout(&output), "checked 3 files: 0 invalid\n");

    let examples = examples_dir();
    let paths = [examples.join("config"), examples.join("repo")];
    let output = setup
        .bottle(&[
            "check",
            paths[0].to_str().unwrap(),
            paths[1].to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(stdout(&output), "checked 3 files: 0 invalid\n");
}

#[test]
fn check_reports_every_broken_file() {
    let setup = Setup::with_examples();
    let bottle = setup.write(
        "config/bottles/broken.md",
        "---\negress:\n  routes:\n    - host: a.example\n      prot: 443\n---\n",
    );
    let agent = setup.write(
        "repo/.bot-bottle/agents/sneaky.md",
        "---\nenv: {A: b}\n---\n",
    );
    let output = setup.bottle(&["check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let expected = format!(
        "{}:5: egress.routes[0].prot: unknown key `prot`; did you mean `port`?\n\
         {}:2: env: `env` is a bottle key, and an agent file cannot set it because agents may \
         come from a repository; set it in a bottle under the config directory's `bottles`\n\
         checked 5 files: 2 invalid\n",
        bottle.display(),
        agent.display()
    );
    assert_eq!(text, expected);
}

#[test]
fn check_single_path_and_usage_errors() {
    let setup = Setup::with_examples();
    let good = setup.config().join("bottles/forge-work.md");
    let output = setup
        .bottle(&["check", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(stdout(&output), "checked 1 file: 0 invalid\n");

    let output = setup
        .bottle(&["check", "/nonexistent/x.md"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        "bottle check: /nonexistent/x.md does not exist\n"
    );

    let output = setup.bottle(&["check", "--no-such-flag"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn check_missing_parent_names_the_chain() {
    let setup = Setup::empty();
    setup.write("config/bottles/child.md", "---\nextends: gone\n---\n");
    let output = setup.bottle(&["check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = setup.redact(&stdout(&output));
    assert_eq!(
        text,
        "bottle `gone` not found: [TMP]/config/bottles/gone.md does not exist (needed by bottle \
         child)\nchecked 1 file: 1 invalid\n"
    );
}

#[test]
fn dry_run_json_for_an_agent() {
    let setup = Setup::with_examples();
    let output = setup
        .bottle(&["run", "reviewer", "--dry-run", "--json", "--", "bash", "-l"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["agent"]["name"], "reviewer");
    assert_eq!(plan["bottles"][1]["name"], "forge-work");
    assert_eq!(plan["provider"]["template"]["value"], "claude");
    assert_eq!(plan["command_line"], serde_json::json!(["bash", "-l"]));
    assert_eq!(
        plan["system_prompt"]["value"],
        "You review pull requests and leave short comments."
    );
}

#[test]
fn dry_run_bottle_flags_replace_the_agents_bottle() {
    let setup = Setup::with_examples();
    setup.write(
        "config/bottles/extra.md",
        "---\nenv: {LOG_LEVEL: info}\n---\n",
    );
    let output = setup
        .bottle(&[
            "run",
            "reviewer",
            "--bottle",
            "forge-work",
            "--bottle",
            "extra",
            "--dry-run",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<&str> = plan["bottles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["claude-base", "forge-work", "extra"]);
    assert_eq!(plan["env"][0]["value"]["value"], "info");
}

#[test]
fn dry_run_without_agent_is_the_default_bottle() {
    let setup = Setup::empty();
    let output = setup
        .bottle(&["run", "--dry-run", "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let plan: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["agent"], Value::Null);
    assert_eq!(plan["routes"], serde_json::json!([]));
    assert_eq!(plan["repos"], serde_json::json!([]));
    assert_eq!(plan["provider"], Value::Null);
    assert_eq!(plan["command"], Value::Null);

    let output = setup.bottle(&["run", "--dry-run"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(
        text.contains("bottles          (none)  [the default bottle]"),
        "{text}"
    );
    assert!(
        text.contains("command          (an interactive shell)"),
        "{text}"
    );
}

#[test]
fn dry_run_invalid_file_exits_125() {
    let setup = Setup::empty();
    let agent = setup.write("config/agents/bad.md", "---\nskills: [../../etc]\n---\n");
    let output = setup.bottle(&["run", "bad", "--dry-run"]).output().unwrap();
    assert_eq!(output.status.code(), Some(125));
    assert_eq!(
        stderr(&output),
        format!(
            "{}:2: skills[0]: invalid skill name \"../../etc\"; a skill is a folder name in the \
             host's skills directory: no `/`, no `..`, not empty\n",
            agent.display()
        )
    );
    assert!(stdout(&output).is_empty());
}

#[test]
fn dry_run_never_prints_host_values() {
    let setup = Setup::empty();
    setup.write(
        "config/bottles/b.md",
        "---\nenv: {TOKEN: \"${CANARY_VAR}\"}\n---\n",
    );
    let output = setup
        .bottle(&["run", "--bottle", "b", "--dry-run", "--json"])
        .env("CANARY_VAR", "canary-value-7f3a")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("\"variable\": \"CANARY_VAR\""),
        "positive control: {text}"
    );
    assert!(!text.contains("canary-value-7f3a"), "{text}");
}
