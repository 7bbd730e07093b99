//! The main job end to end on each backend. An agent clones a real repository through
//! the git gate and pushes a clean commit to a real `sshd` upstream. A commit with a
//! token is rejected, and the agent calls an API host through the proxy.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bottle_testkit::git::{Sshd, build_upstream, fake_github_token, keygen, upstream_ref};
use support::{
    API_HOST, Backend, FakeApi, HostUser, REAL_TOKEN, Sandbox, TOKEN_VAR, bottle_command,
    files_containing, on, run,
};

/// The scripted agent. Each step leaves its result under /workspace/out.
const AGENT_SCRIPT: &str = r#"
set -u
out=/workspace/out
mkdir -p "$out"
cd /workspace
git clone --quiet "__URL__" w 2> "$out/clone.err"
echo $? > "$out/clone.rc"
cd w
printf 'clean change\n' > notes.txt
git add notes.txt && git commit --quiet -m "Add notes"
git rev-parse HEAD > "$out/clean.sha"
git push --quiet origin HEAD:main 2> "$out/clean-push.err"
echo $? > "$out/clean-push.rc"
printf 'line one\ntoken = %s\n' "$FAKE_TOKEN" > config.txt
git add config.txt && git commit --quiet -m "Add config"
git rev-parse HEAD > "$out/dirty.sha"
git push origin HEAD:main 2> "$out/dirty-push.err"
echo $? > "$out/dirty-push.rc"
git log -1 --format='%an <%ae>' > "$out/author"
curl -sS --max-time 20 "https://__API__/v1/models" > "$out/api.body" 2> "$out/api.err"
echo $? > "$out/api.rc"
curl -sS --max-time 20 http://evil.example/ > "$out/evil.body" 2>&1
cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline > "$out/proc.dump" 2> /dev/null
cp -r /home/agent /tmp /etc/bottle "$out/" 2> /dev/null
# The host's /etc/gitconfig is visible on native; the docker images have none.
if test -e /etc/gitconfig; then cp /etc/gitconfig "$out/"; fi
"#;

struct Upstream {
    sshd: Sshd,
    repo: PathBuf,
    identity: PathBuf,
}

fn upstream(sandbox: &Sandbox) -> Upstream {
    let dir = sandbox.path("upstream");
    fs::create_dir_all(&dir).expect("mkdir upstream");
    let identity = dir.join("gate_key");
    let public = keygen(&identity);
    let sshd = Sshd::start(&dir, &public);
    let repo = build_upstream(&dir);
    Upstream {
        sshd,
        repo,
        identity,
    }
}

fn write_bottle(sandbox: &Sandbox, api: &FakeApi, upstream: &Upstream, identity: &Path) {
    let ca_path = sandbox.path("test-ca.pem");
    api.ca.write_cert_pem(&ca_path).expect("write test CA");
    let bottle = format!(
        "---
git-gate:
  user: {{name: gate-bot, email: gate-bot@example.org}}
  repos:
    widgets:
      url: {url}
      host_key: {host_key}
      identity: {identity}
env:
  FAKE_TOKEN: \"${{BOTTLE_E2E_FAKE_TOKEN}}\"
egress:
  routes:
    - host: {API_HOST}
      connect: \"{addr}\"
      upstream_ca: {ca}
      auth: {{token_ref: {TOKEN_VAR}}}
---
",
        url = upstream.sshd.url(&upstream.repo),
        host_key = upstream.sshd.host_key,
        identity = identity.display(),
        addr = api.server.https_addr(),
        ca = ca_path.display(),
    );
    sandbox.write("config/bottles/work.md", &bottle);
    sandbox.write("config/agents/worker.md", "---\nbottle: work\n---\n");
}

fn read(out: &Path, name: &str) -> String {
    fs::read_to_string(out.join(name)).unwrap_or_else(|err| panic!("read out/{name}: {err}"))
}

fn clone_push_scan_and_call_api_on(backend: Backend) {
    let api = FakeApi::start();
    let sandbox = Sandbox::new();
    let upstream = upstream(&sandbox);
    write_bottle(&sandbox, &api, &upstream, &upstream.identity);
    fs::set_permissions(sandbox.workspace(), fs::Permissions::from_mode(0o777))
        .expect("chmod workspace");
    let before = upstream_ref(&upstream.repo, "refs/heads/main").expect("upstream main");

    let token = fake_github_token();
    let script = AGENT_SCRIPT
        .replace("__URL__", &upstream.sshd.url(&upstream.repo))
        .replace("__API__", API_HOST);
    let workspace = sandbox.workspace().display().to_string();
    let output = run(on(
        backend,
        &mut bottle_command(
            &sandbox,
            HostUser::Root,
            &[
                "run",
                "worker",
                "--workspace",
                &workspace,
                "--",
                "sh",
                "-c",
                &script,
            ],
        ),
    )
    .env(TOKEN_VAR, REAL_TOKEN)
    .env("BOTTLE_E2E_FAKE_TOKEN", &token));
    assert_eq!(output.status.code(), Some(0));
    let out = sandbox.workspace().join("out");

    // 1. Clone by the upstream URL, commit, push: the upstream has exactly that commit.
    assert_eq!(
        read(&out, "clone.rc").trim(),
        "0",
        "clone: {}",
        read(&out, "clone.err")
    );
    assert_eq!(
        read(&out, "clean-push.rc").trim(),
        "0",
        "clean push: {}",
        read(&out, "clean-push.err")
    );
    let clean = read(&out, "clean.sha").trim().to_owned();
    assert_ne!(clean, before);
    assert_eq!(
        upstream_ref(&upstream.repo, "refs/heads/main").as_deref(),
        Some(clean.as_str())
    );
    assert_eq!(
        read(&out, "author").trim(),
        "gate-bot <gate-bot@example.org>"
    );

    // 2. A commit with a token is rejected with commit, file, line and rule.
    assert_ne!(
        read(&out, "dirty-push.rc").trim(),
        "0",
        "the push with a token succeeded"
    );
    let rejection = read(&out, "dirty-push.err");
    let dirty = read(&out, "dirty.sha").trim().to_owned();
    assert!(
        rejection.contains(&dirty[..12]),
        "commit not named: {rejection}"
    );
    assert!(
        rejection.contains("config.txt"),
        "file not named: {rejection}"
    );
    assert!(rejection.contains('2'), "line not named: {rejection}");
    assert!(rejection.contains("github"), "rule not named: {rejection}");
    assert!(!rejection.contains(&token), "the rejection shows the token");
    assert_eq!(
        upstream_ref(&upstream.repo, "refs/heads/main").as_deref(),
        Some(clean.as_str())
    );

    // 3. The API host gets the injected token; a host with no route gets the 403.
    assert_eq!(
        read(&out, "api.rc").trim(),
        "0",
        "api: {}",
        read(&out, "api.err")
    );
    let requests = api.server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.header_values("authorization") == [format!("Bearer {REAL_TOKEN}")]),
        "the API host never received the token: {requests:?}"
    );
    assert!(read(&out, "evil.body").starts_with("bottle: "));

    // 4. No credential inside the bottle: the API token and the deploy key.
    let private_key = fs::read_to_string(&upstream.identity).expect("read identity");
    let key_body = private_key
        .lines()
        .nth(1)
        .expect("key body line")
        .to_owned();
    for (name, secret) in [("API token", REAL_TOKEN), ("deploy key", key_body.as_str())] {
        let leaked = files_containing(&out, secret.as_bytes());
        assert!(
            leaked.is_empty(),
            "the {name} is inside the bottle: {leaked:?}"
        );
    }
}

#[test]
fn clone_push_scan_and_call_api() {
    clone_push_scan_and_call_api_on(Backend::Native);
}

#[test]
fn docker_clone_push_scan_and_call_api() {
    clone_push_scan_and_call_api_on(Backend::Docker);
}

fn wrong_host_key_fails_and_names_repo_on(backend: Backend) {
    let api = FakeApi::start();
    let sandbox = Sandbox::new();
    let upstream = upstream(&sandbox);
    let mut bottle_upstream = Upstream {
        sshd: upstream.sshd,
        repo: upstream.repo.clone(),
        identity: upstream.identity.clone(),
    };
    // A host key of another server: the gate must refuse to talk to the upstream.
    let other = keygen(&sandbox.path("other_host_key"));
    bottle_upstream.sshd.host_key = other;
    write_bottle(&sandbox, &api, &bottle_upstream, &bottle_upstream.identity);
    let before = upstream_ref(&upstream.repo, "refs/heads/main");

    let url = bottle_upstream.sshd.url(&upstream.repo);
    let output = run(on(
        backend,
        &mut bottle_command(
            &sandbox,
            HostUser::Root,
            &["run", "worker", "--", "git", "clone", &url, "/tmp/w"],
        ),
    )
    .env(TOKEN_VAR, REAL_TOKEN)
    .env("BOTTLE_E2E_FAKE_TOKEN", fake_github_token()));
    assert_ne!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("widgets"),
        "the error does not name the repo: {stderr}"
    );
    assert_eq!(upstream_ref(&upstream.repo, "refs/heads/main"), before);
}

#[test]
fn wrong_host_key_fails_and_names_repo() {
    wrong_host_key_fails_and_names_repo_on(Backend::Native);
}

#[test]
fn docker_wrong_host_key_fails_and_names_repo() {
    wrong_host_key_fails_and_names_repo_on(Backend::Docker);
}

#[test]
fn missing_identity_stops_launch() {
    let api = FakeApi::start();
    let sandbox = Sandbox::new();
    let upstream = upstream(&sandbox);
    write_bottle(&sandbox, &api, &upstream, &sandbox.path("no-such-key"));
    let output = run(
        bottle_command(&sandbox, HostUser::Root, &["run", "worker", "--", "true"])
            .env(TOKEN_VAR, REAL_TOKEN)
            .env("BOTTLE_E2E_FAKE_TOKEN", fake_github_token()),
    );
    assert_eq!(output.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("widgets"),
        "the error does not name the repo: {stderr}"
    );
    assert!(
        stderr.contains("no-such-key"),
        "the error does not name the file: {stderr}"
    );
}
