//! End-to-end tests of the agent providers: the real, pinned Claude Code and Codex CLIs
//! run headless in a bottle against scripted APIs on loopback. The proxy's routes for
//! the API hosts use `connect` and `upstream_ca` to reach the scripted server, so
//! nothing leaves loopback. The CLIs run only inside a bottle.

mod support;

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bottle_testkit::TestCa;
use bottle_testkit::git::{
    Sshd, build_upstream, fake_github_token, keygen, upstream_git, upstream_has_object,
    upstream_ref,
};
use bottle_testkit::scripted::{Script, ScriptedResponse, ScriptedServer};
use serde_json::{Value, json};
use support::{HostUser, Sandbox, bottle_command, files_containing, run};

/// The host token that the proxy injects for Claude; the bottle must never hold it.
const CLAUDE_TOKEN: &str = "bottle-e2e-claude-host-token-51c2";

/// The host variable named by `agent_provider.auth_token`.
const CLAUDE_TOKEN_VAR: &str = "BOTTLE_E2E_CLAUDE_TOKEN";

/// The scripted model's reply once its tool calls have run.
const FINAL_ANSWER: &str = "BOTTLE-E2E-SCRIPTED-ANSWER";

/// The line the scripted agent appends to the upstream's README.
const EDITED_LINE: &str = "Widgets are assembled inside the bottle.";

/// The message of the commit the scripted agent pushes.
const COMMIT_MESSAGE: &str = "Say where widgets are assembled";

/// The bottle variable that contains the planted token. Its name has no `KEY`, `SECRET` or
/// `TOKEN`: Codex's shell environment policy can drop such variables from its commands.
const PLANTED_VAR: &str = "PLANTED_VALUE";

/// The first tool call: clone through the git gate, edit, commit and push, then try the
/// upstream's port directly. It also copies what the agent can see (environment, home)
/// for the test to search. Each step leaves its result under /workspace/out and prints
/// nothing, so no tool output reaches the API.
const PUSH_COMMAND: &str = r#"set -u
out=/workspace/out
mkdir -p "$out"
env > "$out/agent-env.txt"
cp -R "$HOME" "$out/agent-home"
cd /workspace
git clone --quiet "__URL__" w 2> "$out/clone.err"
echo $? > "$out/clone.rc"
cd /workspace/w
printf '%s\n' "__LINE__" >> README.md
git commit --quiet -am "__MESSAGE__" > "$out/commit.out" 2>&1
git rev-parse HEAD > "$out/clean.sha"
git push --quiet origin HEAD:main 2> "$out/clean-push.err"
echo $? > "$out/clean-push.rc"
bash -c 'exec 3<>/dev/tcp/127.0.0.1/__PORT__' 2> "$out/direct.err"
echo $? > "$out/direct.rc"
"#;

/// The second tool call: commit a file that contains the planted token and push it. The
/// gate must reject the push.
const SECRET_COMMAND: &str = r#"set -u
out=/workspace/out
cd /workspace/w
printf 'deploy = %s\n' "$__VAR__" > deploy.conf
git add deploy.conf
git commit --quiet -m "Add the deploy config" > "$out/dirty-commit.out" 2>&1
git rev-parse HEAD > "$out/dirty.sha"
git push origin HEAD:main 2> "$out/dirty-push.err"
echo $? > "$out/dirty-push.rc"
"#;

/// Installs the provider's pinned CLI once per target directory and links it into the
/// sandbox's cache, where `bottle run` looks for it. Fails with the reason when the
/// CLI cannot be installed from the npm registry.
fn install_agent(sandbox: &Sandbox, provider: &str) {
    let spec = bottle_providers::load(provider, Path::new("/nonexistent")).expect("built-in");
    let package = spec.package.expect("built-in providers have a package");
    let shared = bottle_providers::install_dir(
        &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("providers"),
        &package,
    );
    bottle_providers::ensure_installed(&shared, &package).unwrap_or_else(|err| {
        panic!(
            "the {provider} CLI is needed for this test and could not be installed: {err}; \
             check that npm can reach its registry (scripts/test installs it first)"
        )
    });
    let link = bottle_providers::install_dir(&sandbox.config(), &package);
    fs::create_dir_all(link.parent().expect("parent")).expect("mkdir cache");
    std::os::unix::fs::symlink(&shared, &link).expect("link the installed CLI");
}

/// Builds an Anthropic Messages API event stream with one content block.
fn messages_stream(block: Value, delta: Value, stop_reason: &str) -> ScriptedResponse {
    let start = json!({"type": "message_start", "message": {
        "id": "msg_bottle_e2e", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5", "content": [], "stop_reason": null,
        "stop_sequence": null, "usage": {"input_tokens": 10, "output_tokens": 1}}});
    ScriptedResponse::sse(&[
        ("message_start", start.to_string()),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": block}).to_string(),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": delta}).to_string(),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}).to_string(),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop_reason,
                "stop_sequence": null}, "usage": {"output_tokens": 5}})
            .to_string(),
        ),
        ("message_stop", json!({"type": "message_stop"}).to_string()),
    ])
}

/// Counts the parts of type `part_type` in the `content` of the items of the JSON array
/// `field` of a request body.
fn count_parts(body: &Value, field: &str, part_type: &str) -> usize {
    body[field].as_array().map_or(0, |items| {
        items
            .iter()
            .filter_map(|item| item["content"].as_array())
            .flatten()
            .filter(|part| part["type"] == part_type)
            .count()
    })
}

/// Builds the scripted Messages API. A conversation with tools gets one Bash tool call
/// per command, each after the previous one's result has come back, then
/// [`FINAL_ANSWER`]. A conversation without tools gets plain text.
fn claude_script(commands: Vec<String>) -> Script {
    Arc::new(move |request| {
        if !request.path.starts_with("/v1/messages") || request.method != "POST" {
            return ScriptedResponse::status(404, "not scripted");
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let results = count_parts(&body, "messages", "tool_result");
        let offers_bash = body["tools"]
            .as_array()
            .is_some_and(|tools| tools.iter().any(|tool| tool["name"] == "Bash"));
        if body["stream"] != Value::Bool(true) {
            return ScriptedResponse::json(
                &json!({"id": "msg_bottle_e2e", "type": "message", "role": "assistant",
                    "model": "claude-sonnet-4-5",
                    "content": [{"type": "text", "text": FINAL_ANSWER}],
                    "stop_reason": "end_turn", "stop_sequence": null,
                    "usage": {"input_tokens": 10, "output_tokens": 5}})
                .to_string(),
            );
        }
        let Some(command) = commands.get(results).filter(|_| offers_bash) else {
            return messages_stream(
                json!({"type": "text", "text": ""}),
                json!({"type": "text_delta", "text": FINAL_ANSWER}),
                "end_turn",
            );
        };
        let input = json!({"command": command, "description": "Work on the widgets repository"});
        messages_stream(
            json!({"type": "tool_use", "id": format!("toolu_bottle_e2e_{results}"),
                "name": "Bash", "input": {}}),
            json!({"type": "input_json_delta", "partial_json": input.to_string()}),
            "tool_use",
        )
    })
}

/// Writes the test CA where the bottle file names it, and returns its path.
fn write_test_ca(sandbox: &Sandbox, ca: &TestCa) -> PathBuf {
    let path = sandbox.path("test-ca.pem");
    ca.write_cert_pem(&path).expect("write test CA");
    path
}

/// A coding task on a repository behind a real `sshd` on loopback, which the bottle
/// reaches only through the git gate.
struct GitTask {
    sshd: Sshd,
    repo: PathBuf,
    identity: PathBuf,
    planted: String,
}

impl GitTask {
    fn start(sandbox: &Sandbox) -> GitTask {
        let dir = sandbox.path("upstream");
        fs::create_dir_all(&dir).expect("mkdir upstream");
        let identity = dir.join("gate_key");
        let public = keygen(&identity);
        let sshd = Sshd::start(&dir, &public);
        let repo = build_upstream(&dir);
        GitTask {
            sshd,
            repo,
            identity,
            planted: fake_github_token(),
        }
    }

    /// Returns the bottle file's `git-gate` and `env` sections.
    fn bottle_sections(&self) -> String {
        format!(
            "git-gate:\n  user: {{name: gate-bot, email: gate-bot@example.org}}\n  repos:\n    \
             widgets:\n      url: {url}\n      host_key: {host_key}\n      identity: {identity}\n\
             env:\n  {PLANTED_VAR}: \"${{BOTTLE_E2E_PLANTED}}\"\n",
            url = self.sshd.url(&self.repo),
            host_key = self.sshd.host_key,
            identity = self.identity.display(),
        )
    }

    /// Returns the shell commands of the scripted model's tool calls, in order.
    fn commands(&self) -> Vec<String> {
        vec![
            PUSH_COMMAND
                .replace("__URL__", &self.sshd.url(&self.repo))
                .replace("__LINE__", EDITED_LINE)
                .replace("__MESSAGE__", COMMIT_MESSAGE)
                .replace("__PORT__", &self.sshd.port.to_string()),
            SECRET_COMMAND.replace("__VAR__", PLANTED_VAR),
        ]
    }

    /// Adds the host variables the bottle file reads to `command`.
    fn env<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command.env("BOTTLE_E2E_PLANTED", &self.planted)
    }

    /// Checks the task's outcome: the upstream has the clean commit, made through the gate,
    /// and not the one with the planted token.
    fn check(&self, sandbox: &Sandbox) {
        let out = sandbox.workspace().join("out");
        let read = |name: &str| {
            fs::read_to_string(out.join(name))
                .unwrap_or_else(|err| panic!("the scripted tool calls left no out/{name}: {err}"))
        };
        assert_eq!(read("clone.rc").trim(), "0", "clone: {}", read("clone.err"));
        assert_eq!(
            read("clean-push.rc").trim(),
            "0",
            "clean push: {}",
            read("clean-push.err")
        );

        // The upstream's main is the agent's commit, with its message and its edit.
        let clean = read("clean.sha").trim().to_owned();
        assert_eq!(
            upstream_ref(&self.repo, "refs/heads/main").as_deref(),
            Some(clean.as_str()),
            "the upstream's main is not the agent's commit"
        );
        let log = upstream_git(&self.repo, &["log", "-1", "--format=%s%n%an <%ae>", "main"]);
        assert_eq!(
            log,
            format!("{COMMIT_MESSAGE}\ngate-bot <gate-bot@example.org>\n")
        );
        let readme = upstream_git(&self.repo, &["show", "main:README.md"]);
        assert_eq!(readme, format!("# widgets\n{EDITED_LINE}\n"));

        // The gate rejected the commit that adds the planted token, naming file and rule.
        assert_ne!(
            read("dirty-push.rc").trim(),
            "0",
            "the push with a token succeeded"
        );
        let rejection = read("dirty-push.err");
        assert!(
            rejection.contains("deploy.conf"),
            "file not named: {rejection}"
        );
        assert!(rejection.contains("github"), "rule not named: {rejection}");
        assert!(
            !rejection.contains(&self.planted),
            "the rejection shows the token"
        );
        let dirty = read("dirty.sha").trim().to_owned();
        assert_ne!(dirty, clean);
        assert!(
            !upstream_has_object(&self.repo, &dirty),
            "the upstream holds the commit with the token"
        );
        assert_eq!(
            upstream_ref(&self.repo, "refs/heads/main").as_deref(),
            Some(clean.as_str())
        );

        // Only the gate reaches the upstream: the bottle cannot open its port, which the
        // host can, and the deploy key is nowhere inside the bottle.
        assert_ne!(
            read("direct.rc").trim(),
            "0",
            "the bottle opened the upstream's port directly"
        );
        TcpStream::connect(("127.0.0.1", self.sshd.port))
            .expect("the host reaches the upstream's port");
        let private_key = fs::read_to_string(&self.identity).expect("read the deploy key");
        let key_body = private_key.lines().nth(1).expect("key body line");
        let leaked = files_containing(&sandbox.workspace(), key_body.as_bytes());
        assert!(
            leaked.is_empty(),
            "the deploy key is inside the bottle: {leaked:?}"
        );
        let sshd_log = self.sshd.log.lock().expect("sshd log").join("\n");
        assert!(
            sshd_log.contains("Accepted publickey"),
            "the upstream saw no login with the gate's key: {sshd_log}"
        );
    }
}

/// Checks what every provider test checks beyond the git task: the scripted reply came
/// back, the agent ran behind the proxy, and the real token is nowhere inside the bottle.
fn check_agent_run(sandbox: &Sandbox, stdout: &str, real_token: &str) -> String {
    assert!(
        stdout.contains(FINAL_ANSWER),
        "the scripted answer is missing from the agent's output: {stdout}"
    );
    let agent_env = fs::read_to_string(sandbox.workspace().join("out/agent-env.txt"))
        .expect("the scripted tool call wrote agent-env.txt");
    assert!(
        agent_env.contains("HTTPS_PROXY=http://127.0.0.1:3128"),
        "the environment dump is incomplete: {agent_env}"
    );
    let leaked = files_containing(&sandbox.workspace(), real_token.as_bytes());
    assert!(
        leaked.is_empty(),
        "the real token is inside the bottle: {leaked:?}"
    );
    agent_env
}

/// Returns the recorded requests as text for a failure message: path and body.
fn describe(requests: &[bottle_testkit::RecordedRequest]) -> String {
    requests
        .iter()
        .map(|r| {
            format!(
                "{} {}\n{}",
                r.method,
                r.path,
                String::from_utf8_lossy(&request_body(r))
            )
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Writes the bottle `NAME-e2e` with the provider `template`, the git task and routes
/// that send `hosts` to the scripted server, and the agent `NAME-e2e` that uses it.
fn write_bottle(
    sandbox: &Sandbox,
    name: &str,
    provider: &str,
    task: &GitTask,
    server: &ScriptedServer,
    ca: &TestCa,
    hosts: &[&str],
) {
    let ca_path = write_test_ca(sandbox, ca);
    let mut routes = String::new();
    for host in hosts {
        routes.push_str(&format!(
            "    - host: {host}\n      connect: \"{}\"\n      upstream_ca: {}\n",
            server.addr(),
            ca_path.display()
        ));
    }
    sandbox.write(
        &format!("config/bottles/{name}-e2e.md"),
        &format!(
            "---\nagent_provider:\n{provider}{git}egress:\n  routes:\n{routes}---\n",
            git = task.bottle_sections()
        ),
    );
    sandbox.write(
        &format!("config/agents/{name}-e2e.md"),
        &format!("---\nbottle: {name}-e2e\n---\nYou are the bottle end-to-end test agent.\n"),
    );
    // The agent runs as an unprivileged host uid, so the workspace must be writable to it.
    fs::set_permissions(sandbox.workspace(), fs::Permissions::from_mode(0o777))
        .expect("chmod workspace");
}

/// Builds `bottle run NAME-e2e --headless` with the coding task as its prompt.
fn headless_run(sandbox: &Sandbox, name: &str) -> Command {
    let agent = format!("{name}-e2e");
    let workspace = sandbox.workspace().display().to_string();
    bottle_command(
        sandbox,
        HostUser::Root,
        &[
            "run",
            &agent,
            "--label",
            &agent,
            "--workspace",
            &workspace,
            "--headless",
            "--prompt",
            "Clone the widgets repository, describe where widgets are made, commit and push.",
        ],
    )
}

#[test]
fn claude_cli_pushes_through_git_gate() {
    let sandbox = Sandbox::new();
    install_agent(&sandbox, "claude");
    let task = GitTask::start(&sandbox);
    let ca = TestCa::new("bottle claude e2e CA");
    let server = ScriptedServer::start(&ca, &["api.anthropic.com"], claude_script(task.commands()));
    write_bottle(
        &sandbox,
        "claude",
        &format!("  template: claude\n  auth_token: {CLAUDE_TOKEN_VAR}\n"),
        &task,
        &server,
        &ca,
        &["api.anthropic.com"],
    );

    let output =
        run(task.env(headless_run(&sandbox, "claude").env(CLAUDE_TOKEN_VAR, CLAUDE_TOKEN)));

    let requests = server.requests();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {stdout}; requests: {}",
        describe(&requests)
    );
    let messages: Vec<_> = requests
        .iter()
        .filter(|r| r.path.starts_with("/v1/messages"))
        .collect();
    assert!(
        messages.len() >= 3,
        "two tool calls and their results: {}",
        describe(&requests)
    );
    for request in &requests {
        assert_eq!(
            request.header_values("authorization"),
            [format!("Bearer {CLAUDE_TOKEN}")],
            "{} carries the host token",
            request.path
        );
        assert!(
            !request.contains("bottle-placeholder"),
            "{} carries the agent's placeholder",
            request.path
        );
        assert_eq!(request.header_values("x-api-key"), Vec::<&str>::new());
    }
    assert!(
        messages
            .iter()
            .any(|r| r.contains("bottle end-to-end test agent")),
        "the agent's system prompt reached the API"
    );
    task.check(&sandbox);
    let agent_env = check_agent_run(&sandbox, &stdout, CLAUDE_TOKEN);
    assert!(
        agent_env.contains("ANTHROPIC_AUTH_TOKEN=bottle-placeholder-anthropic-token"),
        "the agent holds the placeholder: {agent_env}"
    );
}

/// The access token of the fake host Codex login: a JWT whose signature part marks it
/// as the real one. The bottle must never hold it.
const CODEX_SIGNATURE: &str = "Ym90dGxlLWUyZS1jb2RleC1yZWFsLXNpZ25hdHVyZQ";

/// Builds the fake host login with an access token that expires in an hour.
fn codex_host_login(dir: &Path) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let exp = bottle_providers::now_unix() + 3600;
    let claims = URL_SAFE_NO_PAD.encode(json!({"exp": exp, "sub": "e2e"}).to_string());
    let access_token = format!("eyJhbGciOiJSUzI1NiJ9.{claims}.{CODEX_SIGNATURE}");
    let id_claims = URL_SAFE_NO_PAD.encode(
        json!({"email": "e2e@example.org", "https://api.openai.com/auth":
            {"chatgpt_plan_type": "plus", "chatgpt_account_id": "acct-e2e"}})
        .to_string(),
    );
    let auth = json!({
        "OPENAI_API_KEY": null,
        "tokens": {
            "id_token": format!("eyJhbGciOiJSUzI1NiJ9.{id_claims}.{CODEX_SIGNATURE}"),
            "access_token": access_token,
            "refresh_token": "e2e-real-refresh-token",
            "account_id": "acct-e2e",
        },
        "last_refresh": "2026-01-01T00:00:00Z",
    });
    fs::create_dir_all(dir).expect("mkdir host codex home");
    fs::write(dir.join("auth.json"), auth.to_string()).expect("write host login");
    access_token
}

/// Builds a Responses API event stream that carries one output item.
fn responses_stream(item: Value) -> ScriptedResponse {
    let usage = json!({"input_tokens": 10, "input_tokens_details": null, "output_tokens": 5,
        "output_tokens_details": null, "total_tokens": 15});
    ScriptedResponse::sse(&[
        (
            "response.created",
            json!({"type": "response.created", "response": {"id": "resp_bottle_e2e"}}).to_string(),
        ),
        (
            "response.output_item.done",
            json!({"type": "response.output_item.done", "output_index": 0, "item": item})
                .to_string(),
        ),
        (
            "response.completed",
            json!({"type": "response.completed",
                "response": {"id": "resp_bottle_e2e", "usage": usage}})
            .to_string(),
        ),
    ])
}

/// Returns the request body, decompressed when Codex sent it with zstd.
fn request_body(request: &bottle_testkit::RecordedRequest) -> Vec<u8> {
    use std::io::Read;

    if request.header_values("content-encoding") != ["zstd"] {
        return request.body.clone();
    }
    let mut decoded = Vec::new();
    ruzstd::decoding::StreamingDecoder::new(&request.body[..])
        .expect("a zstd frame header")
        .read_to_end(&mut decoded)
        .expect("a complete zstd body");
    decoded
}

/// Builds the scripted Responses API: one shell tool call per command, each after the
/// previous one's output has come back, then [`FINAL_ANSWER`].
fn codex_script(commands: Vec<String>) -> Script {
    Arc::new(move |request| {
        if request.path.starts_with("/backend-api/wham/accounts/check") {
            return ScriptedResponse::json(
                &json!({"accounts": [{"id": "acct-e2e", "structure": "personal",
                    "plan_type": "plus", "is_deactivated": false,
                    "can_access_with_session": true,
                    "workspace_backend_origin": "https://chatgpt.com",
                    "account_routing_override": "NO_CONSTRAINT"}],
                    "account_ordering": ["acct-e2e"]})
                .to_string(),
            );
        }
        if !request.path.ends_with("/responses") || request.method != "POST" {
            return ScriptedResponse::status(404, "not scripted");
        }
        let body: Value = serde_json::from_slice(&request_body(request)).unwrap_or(Value::Null);
        let outputs = body["input"].as_array().map_or(0, |items| {
            items
                .iter()
                .filter(|item| item["type"] == "custom_tool_call_output")
                .count()
        });
        let Some(command) = commands.get(outputs) else {
            return responses_stream(json!({"type": "message", "role": "assistant",
                "id": "msg_bottle_e2e",
                "content": [{"type": "output_text", "text": FINAL_ANSWER}]}));
        };
        // Codex 0.169's default model works in "code mode": its one tool, `exec`, runs
        // JavaScript that calls the shell tool as `tools.exec_command`. The pragma and
        // `yield_time_ms` let a push through the gate finish before the tool returns.
        let script = format!(
            "// @exec: {{\"yield_time_ms\": 120000}}\n\
             await tools.exec_command({{cmd: {}, yield_time_ms: 120000}});\ntext(\"done\");",
            Value::String(command.clone())
        );
        responses_stream(
            json!({"type": "custom_tool_call", "id": format!("ctc_bottle_e2e_{outputs}"),
            "call_id": format!("call_bottle_e2e_{outputs}"), "name": "exec", "input": script}),
        )
    })
}

#[test]
fn codex_cli_pushes_with_forwarded_login() {
    let sandbox = Sandbox::new();
    install_agent(&sandbox, "codex");
    let host_codex_home = sandbox.path("host-codex");
    let access_token = codex_host_login(&host_codex_home);
    let task = GitTask::start(&sandbox);
    let ca = TestCa::new("bottle codex e2e CA");
    let hosts = ["chatgpt.com", "api.openai.com"];
    let server = ScriptedServer::start(&ca, &hosts, codex_script(task.commands()));
    write_bottle(
        &sandbox,
        "codex",
        "  template: codex\n  forward_host_credentials: true\n",
        &task,
        &server,
        &ca,
        &hosts,
    );

    let output = run(task.env(headless_run(&sandbox, "codex").env("CODEX_HOME", &host_codex_home)));

    let requests = server.requests();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {stdout}; requests: {}",
        describe(&requests)
    );
    let turns: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with("/responses"))
        .collect();
    assert!(
        turns.len() >= 3,
        "two tool calls and their outputs: {}",
        describe(&requests)
    );
    for request in &requests {
        assert_eq!(
            request.header_values("authorization"),
            [format!("Bearer {access_token}")],
            "{} carries the forwarded host token",
            request.path
        );
        assert!(
            !request.contains("bottle-placeholder"),
            "{} carries the agent's placeholder",
            request.path
        );
    }
    task.check(&sandbox);
    check_agent_run(&sandbox, &stdout, CODEX_SIGNATURE);
    let dummy = fs::read_to_string(sandbox.workspace().join("out/agent-home/.codex/auth.json"))
        .expect("the agent's home holds the dummy login");
    assert!(dummy.contains("bottle-placeholder."), "{dummy}");
    assert!(
        !dummy.contains(&access_token),
        "the dummy login holds the real token"
    );
    assert!(
        files_containing(&sandbox.workspace(), b"e2e-real-refresh-token").is_empty(),
        "the host's refresh token is inside the bottle"
    );
}

#[test]
fn bad_codex_login_stops_launch() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "config/bottles/codex-login.md",
        "---\nagent_provider:\n  template: codex\n  forward_host_credentials: true\n---\n",
    );
    sandbox.write(
        "config/agents/codex-login.md",
        "---\nbottle: codex-login\n---\n",
    );
    let host_codex_home = sandbox.path("host-codex");
    fs::create_dir_all(&host_codex_home).expect("mkdir");

    // No login file at all, then an API-key login: both stop the launch before anything
    // starts, and name the fix.
    for (auth_json, expected) in [
        (None, "does not exist"),
        (
            Some(r#"{"OPENAI_API_KEY": "sk-e2e-not-a-real-key"}"#),
            "API-key login",
        ),
    ] {
        if let Some(auth_json) = auth_json {
            fs::write(host_codex_home.join("auth.json"), auth_json).expect("write login");
        }
        let output = run(bottle_command(
            &sandbox,
            HostUser::Root,
            &["run", "codex-login", "--label", "codex-login", "--", "true"],
        )
        .env("CODEX_HOME", &host_codex_home));

        assert_eq!(output.status.code(), Some(125), "{expected}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
        assert!(stderr.contains("run `codex login`"), "{stderr}");
        assert!(
            !stderr.contains("sk-e2e"),
            "the message shows the key: {stderr}"
        );
        assert!(!sandbox.config().join("state/codex-login").exists());
    }

    // Positive control: a valid login lets the same launch run its command.
    codex_host_login(&host_codex_home);
    let output = run(bottle_command(
        &sandbox,
        HostUser::Root,
        &["run", "codex-login", "--label", "codex-login", "--", "true"],
    )
    .env("CODEX_HOME", &host_codex_home));
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn headless_needs_provider_cli() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "config/bottles/claude-only.md",
        "---\nagent_provider:\n  template: claude\n---\n",
    );
    sandbox.write(
        "config/agents/claude-only.md",
        "---\nbottle: claude-only\n---\n",
    );
    for (args, expected) in [
        (
            &["run", "--headless", "--prompt", "hi", "--", "true"][..],
            "no bottle sets agent_provider.template",
        ),
        (
            &[
                "run",
                "claude-only",
                "--headless",
                "--prompt",
                "hi",
                "--",
                "true",
            ][..],
            "a command replaces it",
        ),
    ] {
        let output = run(&mut bottle_command(&sandbox, HostUser::Root, args));
        assert_eq!(output.status.code(), Some(125), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
