//! Deploy keys created per bottle: `bottle run` registers a key through a fake Gitea
//! that writes it into a real sshd's authorized keys, the agent pushes with it through
//! the gate, and teardown revokes it. A failed revocation is left for `bottle gc`.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use bottle_forge::fake::FakeGitea;
use bottle_testkit::git::{Sshd, build_upstream, keygen, sshd_authorized_keys, upstream_ref};
use support::{HostUser, KillOnDrop, Sandbox, bottle_command, pids_with_arg, run, wait_for};

const FORGE_TOKEN: &str = "gitea-admin-token-e2e-4c1d";

const AGENT_SCRIPT: &str = r#"
set -e
git clone --quiet "__URL__" /tmp/w
cd /tmp/w
printf 'change\n' > change.txt
git add change.txt && git commit --quiet -m "Change"
git rev-parse HEAD > /workspace/pushed.sha
git push --quiet origin HEAD:main
"#;

struct World {
    sandbox: Sandbox,
    sshd: Sshd,
    fake: FakeGitea,
    upstream: std::path::PathBuf,
    /// `/<owner>`, a symlink to the upstream's directory, so that the upstream URL has
    /// the `/<owner>/<name>.git` path a forge's API identifies a repository by.
    owner_link: std::path::PathBuf,
}

impl World {
    /// Returns the `<owner>/<name>` path the forge knows the upstream by.
    fn fake_repo(&self) -> String {
        let owner = self
            .owner_link
            .file_name()
            .expect("owner name")
            .to_string_lossy();
        format!("{owner}/upstream")
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.owner_link);
    }
}

fn world() -> World {
    let sandbox = Sandbox::new();
    let dir = sandbox.path("upstream");
    fs::create_dir_all(&dir).expect("mkdir upstream");
    // At first sshd authorizes only a key that no part of this test uses, so a push can
    // only succeed with the key the launch registers.
    let unrelated = keygen(&dir.join("unrelated_key"));
    let sshd = Sshd::start(&dir, &unrelated);
    let built = build_upstream(&dir);
    let owner = sandbox
        .root
        .path()
        .file_name()
        .expect("temporary directory name")
        .to_string_lossy()
        .into_owned();
    let owner_link = std::path::Path::new("/").join(&owner);
    let _ = fs::remove_file(&owner_link);
    std::os::unix::fs::symlink(&dir, &owner_link).expect("link the owner directory at /");
    let upstream = owner_link.join(built.file_name().expect("upstream name"));
    let fake = FakeGitea::start(FORGE_TOKEN, sshd_authorized_keys(&dir));

    let bottle = format!(
        "---
git-gate:
  user: {{name: key-bot, email: key-bot@example.org}}
  repos:
    widgets:
      url: {url}
      host_key: {host_key}
      provisioned_key: {{provider: gitea, api_url: \"{api}\", token_env: BOTTLE_E2E_FORGE_TOKEN}}
---
",
        url = sshd.url(&upstream),
        host_key = sshd.host_key,
        api = fake.base_url,
    );
    sandbox.write("config/bottles/keyed.md", &bottle);
    sandbox.write("config/agents/pusher.md", "---\nbottle: keyed\n---\n");
    fs::set_permissions(sandbox.workspace(), fs::Permissions::from_mode(0o777))
        .expect("chmod workspace");
    World {
        sandbox,
        sshd,
        fake,
        upstream,
        owner_link,
    }
}

fn run_pusher(world: &World, label: &str) -> std::process::Output {
    let script = AGENT_SCRIPT.replace("__URL__", &world.sshd.url(&world.upstream));
    let workspace = world.sandbox.workspace().display().to_string();
    run(bottle_command(
        &world.sandbox,
        HostUser::Root,
        &[
            "run",
            "pusher",
            "--label",
            label,
            "--workspace",
            &workspace,
            "--",
            "sh",
            "-c",
            &script,
        ],
    )
    .env("BOTTLE_E2E_FORGE_TOKEN", FORGE_TOKEN))
}

#[test]
fn provisioned_key_pushes_then_revoked() {
    let world = world();
    let output = run_pusher(&world, "keyed");

    assert_eq!(output.status.code(), Some(0));
    let pushed =
        fs::read_to_string(world.sandbox.workspace().join("pushed.sha")).expect("the agent pushed");
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main").as_deref(),
        Some(pushed.trim())
    );
    assert!(
        world
            .fake
            .requests()
            .iter()
            .any(|request| request.starts_with("POST ")),
        "the key was never registered"
    );
    assert!(
        world.fake.keys().is_empty(),
        "the key was not revoked at teardown"
    );
    assert!(
        !world.sandbox.config().join("state/keyed").exists(),
        "state left behind"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains(FORGE_TOKEN), "the forge token was printed");
}

#[test]
fn failed_revocation_is_left_for_gc() {
    let world = world();
    world.fake.fail_deletes_with(Some(500));
    let output = run_pusher(&world, "stranded");

    assert_eq!(
        output.status.code(),
        Some(125),
        "a failed revocation must fail teardown"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("repo {}", world.fake_repo())),
        "{stderr}"
    );
    assert!(stderr.contains("key id"), "{stderr}");
    assert!(stderr.contains("500"), "{stderr}");
    assert!(!stderr.contains(FORGE_TOKEN), "the forge token was printed");
    assert_eq!(
        world.fake.keys().len(),
        1,
        "the key should still be registered"
    );
    let state = world.sandbox.config().join("state/stranded");
    assert!(
        state.join("deploy-keys.json").exists(),
        "the journal was not kept"
    );

    // gc without the token names the variable to set and keeps the key.
    let gc = run(&mut bottle_command(&world.sandbox, HostUser::Root, &["gc"]));
    assert_eq!(gc.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gc.stderr).contains("BOTTLE_E2E_FORGE_TOKEN"));
    assert_eq!(world.fake.keys().len(), 1);

    // With the forge responding again and the token set, gc revokes the key and
    // removes the state of the finished bottle.
    world.fake.fail_deletes_with(None);
    let gc = run(bottle_command(&world.sandbox, HostUser::Root, &["gc"])
        .env("BOTTLE_E2E_FORGE_TOKEN", FORGE_TOKEN));
    assert_eq!(gc.status.code(), Some(0));
    assert!(world.fake.keys().is_empty(), "gc did not revoke the key");
    assert!(
        !state.exists(),
        "gc did not remove the finished bottle's state"
    );
}

#[test]
fn gc_revokes_key_of_killed_launcher() {
    let world = world();
    let marker = "6007";
    // The marker is an argument of the agent's `sleep` alone, not of the launcher.
    let agent = format!("exec sleep {marker}");
    let mut launcher = KillOnDrop(
        bottle_command(
            &world.sandbox,
            HostUser::Root,
            &[
                "run", "pusher", "--label", "killed", "--", "sh", "-c", &agent,
            ],
        )
        .env("BOTTLE_E2E_FORGE_TOKEN", FORGE_TOKEN)
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("start bottle"),
    );
    wait_for(
        "the agent to start",
        std::time::Duration::from_secs(30),
        || !pids_with_arg(marker).is_empty(),
    );
    assert_eq!(world.fake.keys().len(), 1, "the key was not registered");

    // kill -9 gives the launcher no chance to revoke anything.
    launcher.0.kill().expect("kill the launcher");
    launcher.0.wait().expect("reap the launcher");
    let state = world.sandbox.config().join("state/killed");
    assert!(
        state.join("deploy-keys.json").exists(),
        "the journal is gone"
    );
    assert_eq!(world.fake.keys().len(), 1);

    let gc = run(bottle_command(&world.sandbox, HostUser::Root, &["gc"])
        .env("BOTTLE_E2E_FORGE_TOKEN", FORGE_TOKEN));
    assert_eq!(gc.status.code(), Some(0));
    assert!(
        world.fake.keys().is_empty(),
        "gc did not revoke the stranded key"
    );
    assert!(
        !state.exists(),
        "gc did not remove the killed bottle's state"
    );
}
