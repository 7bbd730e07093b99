//! What the agent can see and change: users, processes, files, devices, limits.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bottle_sandbox::{BindMount, BottleExit, LandlockStatus};

use crate::common;

#[test]
fn agent_is_uid_1000() {
    let (exit, output) = common::run("id -u; id -g; id -un; echo $HOME");
    assert_eq!(exit, BottleExit::Exited(0), "{output}");
    assert_eq!(
        output.lines().collect::<Vec<_>>(),
        ["1000", "1000", "agent", "/home/agent"]
    );
}

#[test]
fn workspace_writable_by_agent_user() {
    let workspace = common::workspace();
    let (exit, output) = common::run_in(workspace.path(), "pwd; echo written > /workspace/file");
    assert_eq!(exit, BottleExit::Exited(0), "{output}");
    assert_eq!(output.trim(), "/workspace");
    let file = workspace.path().join("file");
    assert_eq!(
        std::fs::read_to_string(&file).expect("read the file"),
        "written\n"
    );
    let owner = std::fs::metadata(&file).expect("stat the file").uid();
    assert_eq!(
        owner,
        bottle_sandbox::agent_host_ids().0,
        "host owner of the agent's file"
    );
    assert_ne!(owner, 0, "the agent never writes as host root");
}

#[test]
fn host_processes_are_hidden() {
    let (exit, output) = common::run("echo $$; ls /proc | grep -c '^[0-9]'");
    assert_eq!(exit, BottleExit::Exited(0), "{output}");
    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(
        lines[0], "2",
        "the agent is the second process of its namespace"
    );
    let inside: usize = lines[1].parse().expect("a count");
    // init, sh, ls and grep; the positive control shows the host has more.
    assert!(inside <= 5, "{inside} processes visible in the bottle");
    let host = std::fs::read_dir("/proc")
        .expect("list /proc")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        })
        .count();
    assert!(
        host > 5,
        "positive control: the host shows {host} processes"
    );
}

#[test]
fn host_paths_are_hidden() {
    // A planted "config dir" outside every mounted path, readable by anyone on the host.
    let config = tempfile::Builder::new()
        .prefix("bottle-config-")
        .tempdir()
        .expect("tempdir");
    let secret = config.path().join(".bot-bottle").join("secret");
    std::fs::create_dir_all(secret.parent().expect("parent")).expect("create the config dir");
    std::fs::write(&secret, "CANARY").expect("plant the secret");

    let mut paths = vec![
        secret.display().to_string(),
        "/root".to_owned(),
        "/etc/shadow".to_owned(),
        "/etc/gshadow".to_owned(),
        "/etc/sudoers".to_owned(),
        "/etc/ssh".to_owned(),
        "/etc/resolv.conf".to_owned(),
        "/run".to_owned(),
        "/var".to_owned(),
        "/sys".to_owned(),
        "/dev/kvm".to_owned(),
        "/work".to_owned(),
    ];
    for entry in std::fs::read_dir("/home").into_iter().flatten().flatten() {
        paths.push(entry.path().display().to_string());
    }
    for path in &paths {
        if path != "/etc/sudoers" && path != "/etc/ssh" && path != "/dev/kvm" {
            assert!(
                Path::new(path).exists(),
                "positive control: {path} exists on the host"
            );
        }
    }
    let script: String = paths
        .iter()
        .map(|path| format!("test -e '{path}' && echo 'visible {path}'\n"))
        .chain(["ls /home\n".to_owned()])
        .collect();
    let (exit, output) = common::run(&script);
    assert_eq!(exit, BottleExit::Exited(0), "{output}");
    assert_eq!(
        output.trim(),
        "agent",
        "only the agent's home should be listed: {output}"
    );
}

#[test]
fn system_directories_are_read_only() {
    let script = "for p in /usr/bottle-x /etc/bottle-x /bottle-x /bin/bottle-x /opt/probe; do \
                    touch $p 2>/dev/null && echo \"wrote $p\"; done\n\
                  for p in /tmp/x /home/agent/x /workspace/x /dev/shm/x; do \
                    touch $p || echo \"cannot write $p\"; done\n\
                  echo done";
    let (exit, output) = common::run(script);
    assert_eq!(exit, BottleExit::Exited(0), "{output}");
    assert_eq!(output.trim(), "done", "{output}");
}

#[test]
fn capabilities_and_filters_are_set() {
    let (exit, output) = common::run("cat /proc/self/status");
    assert_eq!(exit, BottleExit::Exited(0), "{output}");
    for expected in [
        "CapInh:\t0000000000000000",
        "CapPrm:\t0000000000000000",
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "CapAmb:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
    ] {
        assert!(
            output.lines().any(|line| line == expected),
            "missing {expected:?} in {output}"
        );
    }
}

#[test]
fn resource_limits_are_set() {
    let (exit, output) = common::run("cat /proc/self/limits");
    assert_eq!(exit, BottleExit::Exited(0), "{output}");
    let limit = |name: &str| {
        output
            .lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in {output}"))
            .split_whitespace()
            .rev()
            .skip(1)
            .take(2)
            .collect::<Vec<_>>()
    };
    assert_eq!(limit("Max core file size"), ["0", "0"]);
    assert_eq!(limit("Max processes"), ["4096", "4096"]);
}

#[test]
fn hostname_is_set() {
    let (exit, output) = common::run("cat /proc/sys/kernel/hostname /etc/hostname");
    assert_eq!(exit, BottleExit::Exited(0), "{output}");
    assert_eq!(
        output.lines().collect::<Vec<_>>(),
        ["test-bottle", "test-bottle"]
    );
}

#[test]
fn curated_etc_and_dev() {
    let (exit, output) =
        common::run("grep '^agent:' /etc/passwd; test -d /etc/ssl/certs && echo certs; ls /dev");
    assert_eq!(exit, BottleExit::Exited(0), "{output}");
    assert!(
        output.contains("agent:x:1000:1000:agent:/home/agent:"),
        "{output}"
    );
    assert!(output.contains("certs"), "{output}");
    for device in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm",
    ] {
        assert!(
            output.lines().any(|line| line == device),
            "/dev/{device} missing: {output}"
        );
    }
}

#[test]
fn extra_mounts_are_bound() {
    let workspace = common::workspace();
    let files = tempfile::Builder::new()
        .prefix("bottle-mounts-")
        .tempdir()
        .expect("tempdir");
    let certificate = files.path().join("ca.pem");
    std::fs::write(&certificate, "TEST CERTIFICATE\n").expect("write the certificate");
    let shared = files.path().join("shared");
    std::fs::create_dir(&shared).expect("create the shared dir");
    let (uid, gid) = bottle_sandbox::agent_host_ids();
    std::os::unix::fs::chown(&shared, Some(uid), Some(gid)).expect("chown");

    let mut spec = common::spec(
        workspace.path(),
        "cat /etc/bottle/ca.pem\n\
         { echo x > /etc/bottle/ca.pem; } 2>/dev/null && echo 'wrote the certificate'\n\
         echo y > /srv/shared/file && echo 'wrote shared'",
    );
    spec.mounts.push(BindMount {
        source: certificate.clone(),
        target: "/etc/bottle/ca.pem".into(),
        read_only: true,
    });
    spec.mounts.push(BindMount {
        source: shared.clone(),
        target: "/srv/shared".into(),
        read_only: false,
    });
    let (exit, output) = common::run_spec(spec);
    assert_eq!(exit, BottleExit::Exited(0), "{output}");
    assert_eq!(
        output.lines().collect::<Vec<_>>(),
        ["TEST CERTIFICATE", "wrote shared"]
    );
    assert_eq!(
        std::fs::read_to_string(shared.join("file")).expect("read"),
        "y\n"
    );
    assert_eq!(
        std::fs::read_to_string(&certificate).expect("read"),
        "TEST CERTIFICATE\n"
    );
}

#[test]
fn landlock_fully_enforced_on_this_kernel() {
    let workspace = common::workspace();
    let mut launched = common::launch(&common::spec(workspace.path(), "true"));
    assert_eq!(
        launched.landlock,
        LandlockStatus::FullyEnforced,
        "this kernel should support Landlock ABI 6; check that `landlock` is in the lsm= list"
    );
    assert_eq!(launched.wait().expect("wait"), BottleExit::Exited(0));
}
