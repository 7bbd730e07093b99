//! Exit codes, command lookup, environment, signals and set-up failures.

use std::os::unix::fs::PermissionsExt;

use bottle_sandbox::{BottleExit, SandboxError};

use crate::common;

#[test]
fn exit_code_passes_through() {
    let workspace = common::workspace();
    let mut launched = common::launch(&common::spec(workspace.path(), "exit 7"));
    let exit = launched.wait().expect("wait for the bottle");
    assert_eq!(exit, BottleExit::Exited(7));
    assert_eq!(exit.exit_code(), 7);
    let status = launched
        .child
        .try_wait()
        .expect("helper status")
        .expect("the helper exited");
    assert_eq!(status.code(), Some(7), "the helper's own exit status");
}

#[test]
fn agent_exit_125_is_not_setup_failure() {
    let (exit, _) = common::run("exit 125");
    assert_eq!(exit, BottleExit::Exited(125));
}

#[test]
fn missing_command_exits_127() {
    for program in ["bottle-no-such-command", "/usr/bin/bottle-no-such-command"] {
        let workspace = common::workspace();
        let mut spec = common::spec(workspace.path(), "");
        spec.command = vec![program.into()];
        let mut launched = common::launch(&spec);
        let exit = launched.wait().expect("wait for the bottle");
        assert!(
            matches!(&exit, BottleExit::ExecFailed { code: 127, message } if message.contains(program)),
            "{program}: {exit:?}"
        );
        let status = launched.child.try_wait().expect("status").expect("exited");
        assert_eq!(status.code(), Some(127), "{program}");
    }
}

#[test]
fn non_executable_file_exits_126() {
    let workspace = common::workspace();
    let file = workspace.path().join("not-executable");
    std::fs::write(&file, "#!/bin/sh\nexit 0\n").expect("write the file");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut spec = common::spec(workspace.path(), "");
    spec.command = vec!["/workspace/not-executable".into()];
    let mut launched = common::launch(&spec);
    let exit = launched.wait().expect("wait for the bottle");
    assert!(
        matches!(exit, BottleExit::ExecFailed { code: 126, .. }),
        "{exit:?}"
    );
    let status = launched.child.try_wait().expect("status").expect("exited");
    assert_eq!(status.code(), Some(126));
}

#[test]
fn command_found_through_spec_path() {
    let workspace = common::workspace();
    let mut spec = common::spec(workspace.path(), "");
    spec.command = vec!["true".into()];
    let mut launched = common::launch(&spec);
    assert_eq!(launched.wait().expect("wait"), BottleExit::Exited(0));
}

#[test]
fn environment_is_only_the_spec() {
    let workspace = common::workspace();
    let mut spec = common::spec(workspace.path(), "env");
    spec.env
        .push(("BOTTLE_MARKER".into(), "marker-value".into()));
    let (exit, output) = common::run_spec(spec.clone());
    assert_eq!(exit, BottleExit::Exited(0), "{output}");
    assert!(output.contains("BOTTLE_MARKER=marker-value"), "{output}");

    // Positive control: the test process has variables that the spec does not set.
    let shell_set = ["PWD", "SHLVL", "_", "OLDPWD"];
    let host_only: Vec<String> = std::env::vars()
        .map(|(name, _)| name)
        .filter(|name| {
            !spec.env.iter().any(|(n, _)| n == name) && !shell_set.contains(&name.as_str())
        })
        .collect();
    assert!(
        !host_only.is_empty(),
        "the test process has no variable of its own to check"
    );
    for name in host_only {
        assert!(
            !output
                .lines()
                .any(|line| line.starts_with(&format!("{name}="))),
            "{name} leaked"
        );
    }
}

#[test]
fn sigterm_reaches_agent() {
    let workspace = common::workspace();
    let ready = common::fifo(workspace.path(), "ready");
    let script = "trap 'echo got-term; exit 3' TERM\n\
                  sleep 1000 & echo ready > /workspace/ready\n\
                  wait $!";
    let mut spec = common::spec(workspace.path(), script);
    spec.command = common::capture(script);
    let mut launched = common::launch(&spec);
    assert_eq!(common::read_fifo(&ready), "ready");
    launched
        .signal(libc::SIGTERM)
        .expect("send SIGTERM to the helper");
    let exit = launched.wait().expect("wait for the bottle");
    assert_eq!(exit, BottleExit::Exited(3));
    assert_eq!(common::captured(workspace.path()).trim(), "got-term");
}

#[test]
fn missing_workspace_fails_setup() {
    let workspace = common::workspace();
    let missing = workspace.path().join("does-not-exist");
    let spec = common::spec(&missing, "true");
    match bottle_sandbox::launch(&common::helper_exe(), &spec) {
        Err(SandboxError::Setup { step, message }) => {
            assert!(step.contains("open the workspace"), "{step}: {message}");
            assert!(step.contains("does-not-exist"), "{step}");
        }
        other => panic!("expected a set-up failure, got {other:?}"),
    }
}

#[test]
fn missing_mount_source_fails_setup() {
    let workspace = common::workspace();
    let mut spec = common::spec(workspace.path(), "true");
    spec.mounts.push(bottle_sandbox::BindMount {
        source: "/nonexistent-bottle-source".into(),
        target: "/etc/bottle/ca.pem".into(),
        read_only: true,
    });
    match bottle_sandbox::launch(&common::helper_exe(), &spec) {
        Err(SandboxError::Setup { step, .. }) => {
            assert!(step.contains("/nonexistent-bottle-source"), "{step}");
        }
        other => panic!("expected a set-up failure, got {other:?}"),
    }
}

#[test]
fn invalid_spec_rejected_before_start() {
    let workspace = common::workspace();
    let mut spec = common::spec(workspace.path(), "true");
    spec.hostname = "bad/name".into();
    let result = bottle_sandbox::launch(&common::helper_exe(), &spec);
    assert!(
        matches!(result, Err(SandboxError::InvalidSpec(_))),
        "{result:?}"
    );
}

#[test]
fn forbidden_user_namespaces_explained() {
    // A wrapper runs the helper in a user namespace whose limit of nested user namespaces
    // is 0, as `sysctl user.max_user_namespaces=0` would on the host.
    let dir = tempfile::Builder::new()
        .prefix("bottle-userns-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let wrapper = dir.path().join("helper-without-userns");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec unshare --user --map-root-user sh -c \
             'echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" \"$@\"' '{}' \"$@\"\n",
            common::helper_exe().display()
        ),
    )
    .expect("write the wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let workspace = common::workspace();
    let spec = common::spec(workspace.path(), "true");
    match bottle_sandbox::launch(&wrapper, &spec) {
        Err(SandboxError::Setup { step, message }) => {
            assert!(step.contains("namespaces"), "{step}");
            assert!(
                message.contains("user namespaces are not permitted"),
                "{message}"
            );
            assert!(
                message.contains("user.max_user_namespaces"),
                "the fix: {message}"
            );
        }
        other => panic!("expected a set-up failure, got {other:?}"),
    }
}
