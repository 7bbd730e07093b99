//! `bottle ls`, `bottle logs` and `bottle stop` against a real running bottle.

mod support;

use std::process::Stdio;
use std::time::Duration;

use support::{HostUser, KillOnDrop, Sandbox, bottle_command, pids_with_arg, run, wait_for};

#[test]
fn ls_logs_and_stop_running_bottle() {
    let sandbox = Sandbox::new();
    let marker = "6006";
    let mut child = KillOnDrop(
        bottle_command(
            &sandbox,
            HostUser::Root,
            &[
                "run",
                "--label",
                "lifecycle",
                "--",
                "sh",
                "-c",
                &format!("curl -s http://evil.example/; sleep {marker}"),
            ],
        )
        .stdin(Stdio::null())
        .spawn()
        .expect("start bottle"),
    );
    wait_for("the agent to start", Duration::from_secs(30), || {
        !pids_with_arg(marker).is_empty()
    });

    let listed = run(&mut bottle_command(
        &sandbox,
        HostUser::Root,
        &["ls", "--json"],
    ));
    assert_eq!(listed.status.code(), Some(0));
    let bottles: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    let entry = bottles
        .as_array()
        .expect("a list")
        .iter()
        .find(|bottle| bottle["slug"] == "lifecycle")
        .expect("the running bottle is listed");
    assert_eq!(entry["state"], "running");
    assert_eq!(entry["backend"], "native");

    let logs = run(&mut bottle_command(
        &sandbox,
        HostUser::Root,
        &["logs", "lifecycle"],
    ));
    assert_eq!(logs.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&logs.stdout).contains("evil.example"));

    let stopped = run(&mut bottle_command(
        &sandbox,
        HostUser::Root,
        &["stop", "lifecycle"],
    ));
    assert_eq!(stopped.status.code(), Some(0));
    wait_for(
        "bottle stop to end the bottle",
        Duration::from_secs(30),
        || child.0.try_wait().expect("wait").is_some(),
    );
    assert!(
        pids_with_arg(marker).is_empty(),
        "the agent outlived bottle stop"
    );
    assert!(
        !sandbox.config().join("state/lifecycle").exists(),
        "state left behind"
    );

    let again = run(&mut bottle_command(
        &sandbox,
        HostUser::Root,
        &["stop", "lifecycle"],
    ));
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no bottle named lifecycle"));
}

#[test]
fn logs_and_stop_reject_path_names() {
    let sandbox = Sandbox::new();
    for command in ["logs", "stop"] {
        let output = run(&mut bottle_command(
            &sandbox,
            HostUser::Root,
            &[command, "../state"],
        ));
        assert_eq!(output.status.code(), Some(2), "{command}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("invalid bottle name"));
    }
}

#[test]
fn init_writes_examples_that_load() {
    let sandbox = Sandbox::new();
    std::fs::remove_dir_all(sandbox.config()).expect("start without a config directory");

    let output = run(&mut bottle_command(&sandbox, HostUser::Root, &["init"]));
    assert_eq!(output.status.code(), Some(0));
    assert!(sandbox.config().join("bottles/example.md").exists());
    assert!(sandbox.config().join("agents/example.md").exists());

    let checked = run(&mut bottle_command(&sandbox, HostUser::Root, &["check"]));
    assert_eq!(
        checked.status.code(),
        Some(0),
        "the examples do not pass bottle check"
    );

    // A second init never overwrites the user's files and names the fix. With one of
    // the two files gone, it writes neither.
    let edited = "---\negress: {routes: []}\n---\nMine.\n";
    std::fs::write(sandbox.config().join("bottles/example.md"), edited).expect("edit");
    std::fs::remove_file(sandbox.config().join("agents/example.md")).expect("remove");
    let again = run(&mut bottle_command(&sandbox, HostUser::Root, &["init"]));
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("bottles/example.md exists"), "{stderr}");
    assert!(stderr.contains("rename or remove it"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(sandbox.config().join("bottles/example.md")).expect("read"),
        edited
    );
    assert!(!sandbox.config().join("agents/example.md").exists());
}

#[test]
fn completions_for_bash() {
    let sandbox = Sandbox::new();
    let output = run(&mut bottle_command(
        &sandbox,
        HostUser::Root,
        &["completions", "bash"],
    ));
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stdout).contains("_bottle"));
}
