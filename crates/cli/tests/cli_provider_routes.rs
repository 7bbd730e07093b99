//! `bottle info` and `bottle run --dry-run` show the routes an agent provider adds, as a
//! launch would use them, marked as the provider's. Printing them reads no credential.

#![allow(clippy::unwrap_used)] // a failed unwrap in a test is the failure report

use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::{Value, json};

/// The value of the host variable named by `agent_provider.auth_token`. No printed plan
/// may show it.
const HOST_TOKEN: &str = "bottle-plan-test-host-token-93e1";

/// A temporary config directory. The commands run in a directory outside any repository.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["config/bottles", "config/agents", "work"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Setup { dir }
    }

    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn bottle(&self, args: &[&str]) -> Command {
        let mut command = Command::cargo_bin("bottle").unwrap();
        command
            .args(args)
            .current_dir(self.dir.path().join("work"))
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("BOT_BOTTLE_HOME", self.dir.path().join("config"))
            .env("HOME", self.dir.path())
            .env("CODEX_HOME", self.dir.path().join("no-codex-login"))
            .env("MY_CLAUDE_TOKEN", HOST_TOKEN);
        command
    }

    /// Runs `bottle ARGS`, expects success, and returns stdout with the temporary
    /// directory replaced, so that snapshots are stable.
    fn stdout(&self, args: &[&str]) -> String {
        let output = self.bottle(args).output().unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "bottle {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!stdout.contains(HOST_TOKEN), "the plan shows the token");
        let real = self.dir.path().canonicalize().unwrap();
        stdout
            .replace(&real.display().to_string(), "[TMP]")
            .replace(&self.dir.path().display().to_string(), "[TMP]")
    }
}

/// Returns the lines of the printed plan from `routes` up to `egress log`.
fn routes_section(text: &str) -> String {
    let start = text.find("\nroutes").expect("a routes section") + 1;
    let end = text.find("\negress log").expect("an egress log line") + 1;
    text[start..end].to_owned()
}

#[test]
fn info_marks_claude_provider_routes() {
    let setup = Setup::new();
    setup.write(
        "config/bottles/claude.md",
        "---\nagent_provider:\n  template: claude\n  auth_token: MY_CLAUDE_TOKEN\n\
         egress:\n  routes:\n    - host: pypi.org\n---\n",
    );
    setup.write("config/agents/coder.md", "---\nbottle: claude\n---\n");

    let text = setup.stdout(&["info", "coder"]);
    let routes = routes_section(&text);
    assert!(
        routes.contains("api.anthropic.com:443  [provider claude]"),
        "{routes}"
    );
    assert!(
        routes.contains("auth: MY_CLAUDE_TOKEN in Authorization (Bearer)"),
        "{routes}"
    );
    insta::assert_snapshot!("info_claude_routes", routes);

    // The dry run prints the same routes.
    let dry_run = setup.stdout(&["run", "coder", "--dry-run"]);
    assert_eq!(routes_section(&dry_run), routes);

    // Positive control: without a provider the API host is not among the routes.
    setup.write(
        "config/bottles/claude.md",
        "---\negress:\n  routes:\n    - host: pypi.org\n---\n",
    );
    let text = setup.stdout(&["info", "coder"]);
    assert!(!text.contains("api.anthropic.com"), "{text}");
}

#[test]
fn dry_run_shows_forwarded_codex_routes_without_login() {
    let setup = Setup::new();
    // The bottle points one API host elsewhere and sets no auth there: the launch keeps
    // the provider's token on it. No Codex login exists: printing reads no credential.
    setup.write(
        "config/bottles/codex.md",
        "---\nagent_provider:\n  template: codex\n  forward_host_credentials: true\n\
         egress:\n  routes:\n    - host: api.openai.com\n      connect: \"127.0.0.1:9\"\n---\n",
    );
    setup.write("config/agents/coder.md", "---\nbottle: codex\n---\n");

    let text = setup.stdout(&["run", "coder", "--dry-run"]);
    let routes = routes_section(&text);
    insta::assert_snapshot!("dry_run_codex_routes", routes);

    let json: Value =
        serde_json::from_str(&setup.stdout(&["run", "coder", "--dry-run", "--json"])).unwrap();
    let launch: Vec<Value> = json["launch_routes"]
        .as_array()
        .expect("launch_routes")
        .iter()
        .map(|route| {
            json!({
                "host": route["route"]["host"],
                "origin": route["origin"],
                "provider": route["provider"],
                "token_ref": route["route"]["auth"]["token_ref"],
            })
        })
        .collect();
    assert_eq!(
        launch,
        [
            json!({"host": "chatgpt.com", "origin": "provider", "provider": "codex",
                "token_ref": "BOTTLE_CODEX_ACCESS_TOKEN"}),
            json!({"host": "api.openai.com", "origin": "bottle_with_provider_auth",
                "provider": "codex", "token_ref": "BOTTLE_CODEX_ACCESS_TOKEN"}),
        ]
    );
    // The bottle's own routes are still listed as the files set them.
    assert_eq!(json["routes"].as_array().map(Vec::len), Some(1));
}

#[test]
fn printed_plan_fails_like_launch_on_bad_provider() {
    let setup = Setup::new();
    setup.write(
        "config/bottles/claude.md",
        "---\nagent_provider:\n  template: claude\n  forward_host_credentials: true\n---\n",
    );
    setup.write("config/agents/coder.md", "---\nbottle: claude\n---\n");

    let output = setup
        .bottle(&["run", "coder", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("forward_host_credentials"), "{stderr}");

    let output = setup.bottle(&["info", "coder"]).output().unwrap();
    assert!(!output.status.success());
}
