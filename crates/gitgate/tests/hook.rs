//! The pre-receive hook fails closed when the gate cannot vouch for the push.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Client, GateHandle, World};

const ZERO: &str = "0000000000000000000000000000000000000000";
const SOME: &str = "1111111111111111111111111111111111111111";

/// Runs the hook binary with `env` and one ref update on stdin.
fn run_hook(env: &[(&str, &str)]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bottle-gitgate-hook"))
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = format!("{ZERO} {SOME} refs/heads/main\n");
    // A hook that fails early exits before reading its input, so a broken pipe is fine.
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(line.as_bytes());
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn hook_without_gate_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("missing.sock");
    let output = run_hook(&[
        ("BOTTLE_GITGATE_SOCKET", socket.to_str().unwrap()),
        ("BOTTLE_GITGATE_TICKET", "0123"),
        ("GIT_OBJECT_DIRECTORY", dir.path().to_str().unwrap()),
    ]);
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("cannot reach the gate's control socket"),
        "{text}"
    );
}

#[test]
fn hook_without_environment_rejects() {
    let output = run_hook(&[]);
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("BOTTLE_GITGATE_SOCKET is not set"), "{text}");
}

#[test]
fn hook_with_unknown_ticket_rejects() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    // The gate binds its control socket before it serves HTTP, so this proves it exists.
    client.git_ok(&client.home, &["ls-remote", &world.url()]);

    let socket = world.path().join("state/control/pre-receive.sock");
    let objects = world.path().join("state/mirrors/widgets.git/objects");
    let output = run_hook(&[
        ("BOTTLE_GITGATE_SOCKET", socket.to_str().unwrap()),
        ("BOTTLE_GITGATE_TICKET", "not-a-ticket"),
        ("GIT_OBJECT_DIRECTORY", objects.to_str().unwrap()),
    ]);
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("this push is not known to the gate"),
        "{text}"
    );

    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(
        mode & 0o077,
        0,
        "the control socket is private to the gate's user"
    );
}
