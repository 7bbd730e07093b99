//! End-to-end tests of the agent providers: the real, pinned Claude Code and Codex CLIs
//! run headless in a bottle against scripted APIs on loopback. The proxy's routes for
//! the API hosts use `connect` and `upstream_ca` to reach the scripted server, so
//! nothing leaves loopback. The CLIs run only inside a bottle.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bottle_testkit::TestCa;
use bottle_testkit::scripted::{ScriptedResponse, ScriptedServer};
use serde_json::{Value, json};
use support::{HostUser, Sandbox, bottle_command, files_containing, run};

/// The host token that the proxy injects for Claude; the bottle must never hold it.
const CLAUDE_TOKEN: &str = "bottle-e2e-claude-host-token-51c2";

/// The host variable named by `agent_provider.auth_token`.
const CLAUDE_TOKEN_VAR: &str = "BOTTLE_E2E_CLAUDE_TOKEN";

/// The scripted model's reply once its tool call has run.
const FINAL_ANSWER: &str = "BOTTLE-E2E-SCRIPTED-ANSWER";

/// The shell command of the scripted model's tool call: it writes the test file
/// and copies what the agent can see (environment, home) for the test to search.
const TOOL_COMMAND: &str = "env > /workspace/agent-env.txt; cp -R \"$HOME\" /workspace/agent-home; \
    printf 'hello from the bottle\\n' > /workspace/hello.txt";

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

/// Returns whether any item of the JSON array `field` of a request body has a part of
/// type `part_type` in its `content`.
fn has_part(body: &Value, field: &str, part_type: &str) -> bool {
    body[field].as_array().is_some_and(|items| {
        items.iter().any(|item| {
            item["content"]
                .as_array()
                .is_some_and(|parts| parts.iter().any(|part| part["type"] == part_type))
        })
    })
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

/// The scripted Messages API: a conversation with tools gets a Bash tool call, the
/// conversation that returns its result gets [`FINAL_ANSWER`], anything else plain text.
fn claude_script(request: &bottle_testkit::RecordedRequest) -> ScriptedResponse {
    if !request.path.starts_with("/v1/messages") || request.method != "POST" {
        return ScriptedResponse::status(404, "not scripted");
    }
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let has_tool_result = has_part(&body, "messages", "tool_result");
    let offers_bash = body["tools"]
        .as_array()
        .is_some_and(|tools| tools.iter().any(|tool| tool["name"] == "Bash"));

    let text = if has_tool_result || !offers_bash {
        FINAL_ANSWER
    } else {
        ""
    };
    if body["stream"] != Value::Bool(true) {
        return ScriptedResponse::json(
            &json!({"id": "msg_bottle_e2e", "type": "message", "role": "assistant",
                "model": "claude-sonnet-4-5", "content": [{"type": "text", "text": FINAL_ANSWER}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": 10, "output_tokens": 5}})
            .to_string(),
        );
    }
    if !text.is_empty() {
        return messages_stream(
            json!({"type": "text", "text": ""}),
            json!({"type": "text_delta", "text": text}),
            "end_turn",
        );
    }
    let input = json!({"command": TOOL_COMMAND, "description": "Write the test files"});
    messages_stream(
        json!({"type": "tool_use", "id": "toolu_bottle_e2e", "name": "Bash", "input": {}}),
        json!({"type": "input_json_delta", "partial_json": input.to_string()}),
        "tool_use",
    )
}

/// Writes the test CA where the bottle file names it, and returns its path.
fn write_test_ca(sandbox: &Sandbox, ca: &TestCa) -> PathBuf {
    let path = sandbox.path("test-ca.pem");
    ca.write_cert_pem(&path).expect("write test CA");
    path
}

/// Checks what every provider test checks: the tool call ran, the scripted reply came back,
/// and the real token is nowhere inside the bottle.
fn check_agent_run(sandbox: &Sandbox, stdout: &str, real_token: &str) {
    assert!(
        stdout.contains(FINAL_ANSWER),
        "the scripted answer is missing from the agent's output: {stdout}"
    );
    let hello = fs::read_to_string(sandbox.workspace().join("hello.txt"))
        .expect("the scripted tool call wrote hello.txt");
    assert_eq!(hello, "hello from the bottle\n");
    let agent_env = fs::read_to_string(sandbox.workspace().join("agent-env.txt"))
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
}

#[test]
fn claude_cli_runs_headless() {
    let sandbox = Sandbox::new();
    install_agent(&sandbox, "claude");
    let ca = TestCa::new("bottle claude e2e CA");
    let server = ScriptedServer::start(&ca, &["api.anthropic.com"], Arc::new(claude_script));
    let ca_path = write_test_ca(&sandbox, &ca);
    sandbox.write(
        "config/bottles/claude-e2e.md",
        &format!(
            "---\nagent_provider:\n  template: claude\n  auth_token: {CLAUDE_TOKEN_VAR}\n\
             egress:\n  routes:\n    - host: api.anthropic.com\n      connect: \"{}\"\n      \
             upstream_ca: {}\n---\n",
            server.addr(),
            ca_path.display()
        ),
    );
    sandbox.write(
        "config/agents/claude-e2e.md",
        "---\nbottle: claude-e2e\n---\nYou are the bottle end-to-end test agent.\n",
    );
    // The agent runs as an unprivileged host uid, so the workspace must be writable to it.
    fs::set_permissions(sandbox.workspace(), fs::Permissions::from_mode(0o777))
        .expect("chmod workspace");
    let workspace = sandbox.workspace().display().to_string();

    let output = run(bottle_command(
        &sandbox,
        HostUser::Root,
        &[
            "run",
            "claude-e2e",
            "--label",
            "claude-e2e",
            "--workspace",
            &workspace,
            "--headless",
            "--prompt",
            "Write hello.txt in the workspace.",
        ],
    )
    .env(CLAUDE_TOKEN_VAR, CLAUDE_TOKEN));

    let requests = server.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {stdout}; requests: {paths:?}"
    );

    let messages: Vec<_> = requests
        .iter()
        .filter(|r| r.path.starts_with("/v1/messages"))
        .collect();
    assert!(messages.len() >= 2, "a tool call and its result: {paths:?}");
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
    check_agent_run(&sandbox, &stdout, CLAUDE_TOKEN);
    let agent_env = fs::read_to_string(sandbox.workspace().join("agent-env.txt")).expect("env");
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

/// The scripted Responses API: the first turn gets a shell tool call, the turn that
/// returns its output gets [`FINAL_ANSWER`].
fn codex_script(request: &bottle_testkit::RecordedRequest) -> ScriptedResponse {
    if request.path.starts_with("/backend-api/wham/accounts/check") {
        return ScriptedResponse::json(
            &json!({"accounts": [{"id": "acct-e2e", "structure": "personal",
                "plan_type": "plus", "is_deactivated": false, "can_access_with_session": true,
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
    let returns_output = body["input"].as_array().is_some_and(|items| {
        items
            .iter()
            .any(|item| item["type"] == "custom_tool_call_output")
    });
    if returns_output {
        return responses_stream(json!({"type": "message", "role": "assistant",
            "id": "msg_bottle_e2e", "content": [{"type": "output_text", "text": FINAL_ANSWER}]}));
    }
    // Codex 0.169's default model works in "code mode": its one tool, `exec`, runs
    // JavaScript that calls the shell tool as `tools.exec_command`.
    let script = format!(
        "await tools.exec_command({{cmd: {}}});\ntext(\"done\");",
        Value::String(TOOL_COMMAND.to_owned())
    );
    responses_stream(json!({"type": "custom_tool_call", "id": "ctc_bottle_e2e",
        "call_id": "call_bottle_e2e", "name": "exec", "input": script}))
}

#[test]
fn codex_cli_runs_with_forwarded_login() {
    let sandbox = Sandbox::new();
    install_agent(&sandbox, "codex");
    let host_codex_home = sandbox.path("host-codex");
    let access_token = codex_host_login(&host_codex_home);
    let ca = TestCa::new("bottle codex e2e CA");
    let server = ScriptedServer::start(
        &ca,
        &["chatgpt.com", "api.openai.com"],
        Arc::new(codex_script),
    );
    let ca_path = write_test_ca(&sandbox, &ca);
    let mut routes = String::new();
    for host in ["chatgpt.com", "api.openai.com"] {
        routes.push_str(&format!(
            "    - host: {host}\n      connect: \"{}\"\n      upstream_ca: {}\n",
            server.addr(),
            ca_path.display()
        ));
    }
    sandbox.write(
        "config/bottles/codex-e2e.md",
        &format!(
            "---\nagent_provider:\n  template: codex\n  forward_host_credentials: true\n\
             egress:\n  routes:\n{routes}---\n"
        ),
    );
    sandbox.write(
        "config/agents/codex-e2e.md",
        "---\nbottle: codex-e2e\n---\nYou are the bottle end-to-end test agent.\n",
    );
    fs::set_permissions(sandbox.workspace(), fs::Permissions::from_mode(0o777))
        .expect("chmod workspace");
    let workspace = sandbox.workspace().display().to_string();

    let output = run(bottle_command(
        &sandbox,
        HostUser::Root,
        &[
            "run",
            "codex-e2e",
            "--label",
            "codex-e2e",
            "--workspace",
            &workspace,
            "--headless",
            "--prompt",
            "Write hello.txt in the workspace.",
        ],
    )
    .env("CODEX_HOME", &host_codex_home));

    let requests = server.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {stdout}; requests: {paths:?}"
    );
    let turns: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with("/responses"))
        .collect();
    assert!(turns.len() >= 2, "a tool call and its output: {paths:?}");
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
    check_agent_run(&sandbox, &stdout, CODEX_SIGNATURE);
    let dummy = fs::read_to_string(sandbox.workspace().join("agent-home/.codex/auth.json"))
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
