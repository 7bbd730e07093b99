//! Tests of what only the docker backend has: its containers and images hold no
//! secret, a failed image build leaves no container, `bottle gc` collects the
//! containers of a killed launcher, and concurrent launches do not collide. They run a
//! real engine and need root.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{
    Backend, FakeApi, HostUser, KillOnDrop, REAL_TOKEN, Sandbox, TOKEN_VAR, bottle_command,
    containers_of, docker, on, pids_with_arg, run, wait_for,
};

/// A value the bottle's `env` copies from the host: the agent may have it, but the
/// engine must not store it.
const HOST_VALUE: &str = "bottle-e2e-host-value-5d1c07";

/// Starts `bottle run scripted` on docker with the agent running `script`, with the
/// bottles `api` and `hostenv`, which copies `HOST_VALUE` into the agent's
/// environment as `COPIED`.
fn start(sandbox: &Sandbox, label: &str, script: &str) -> KillOnDrop {
    sandbox.write(
        "config/bottles/hostenv.md",
        "---\nenv:\n  COPIED: \"${BOTTLE_E2E_HOST_VALUE}\"\n---\n",
    );
    KillOnDrop(
        on(
            Backend::Docker,
            &mut bottle_command(
                sandbox,
                HostUser::Root,
                &[
                    "run", "scripted", "--bottle", "api", "--bottle", "hostenv", "--label", label,
                    "--", "sh", "-c", script,
                ],
            ),
        )
        .env(TOKEN_VAR, REAL_TOKEN)
        .env("BOTTLE_E2E_HOST_VALUE", HOST_VALUE)
        .stdin(Stdio::null())
        .spawn()
        .expect("start bottle"),
    )
}

/// Waits until the launcher exits and returns its exit code.
fn wait_exit(child: &mut KillOnDrop, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            return status.code();
        }
        assert!(Instant::now() < deadline, "the bottle did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Returns the image tags built by `bottle` (all but the base image).
fn built_images() -> Vec<String> {
    docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .lines()
        .filter(|tag| {
            tag.starts_with("bot-bottle/sidecar:") || tag.starts_with("bot-bottle/agent:")
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn inspect_and_history_hold_no_secret() {
    let api = FakeApi::start();
    let sandbox = Sandbox::new();
    sandbox.write_api_bottle(&api);
    let label = "inspect-docker";
    let marker = "6201";
    let script = format!(
        "curl -sS --max-time 20 https://{}/v1/echo > /dev/null; \
         printf %s \"$COPIED\" > /workspace/copied; exec sleep {marker}",
        support::API_HOST
    );
    let mut child = start(&sandbox, label, &script);
    wait_for("the agent to call the API", Duration::from_secs(60), || {
        !pids_with_arg(marker).is_empty()
    });

    // Positive control: the sidecar has the token, because the fake API received it.
    let requests = api.server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.header_values("authorization") == [format!("Bearer {REAL_TOKEN}")]),
        "the API host never received the token: {requests:?}"
    );

    // Positive control: the agent has the value copied from the host.
    let copied = sandbox
        .config()
        .join(format!("state/{label}/workspace/copied"));
    assert_eq!(
        std::fs::read_to_string(&copied).ok().as_deref(),
        Some(HOST_VALUE)
    );

    let names = containers_of(label);
    assert_eq!(names.len(), 3, "{names:?}");
    let agent = format!("bottle-{label}-agent");
    let inspect = docker(&["inspect", &agent]);
    assert!(
        !inspect.contains(REAL_TOKEN),
        "the agent's inspect shows the token"
    );
    assert!(
        !inspect.contains(HOST_VALUE),
        "the agent's inspect shows a value copied from the host"
    );
    assert!(
        !inspect.contains("PRIVATE KEY"),
        "the agent's inspect shows a key"
    );
    assert!(
        !inspect.contains("docker.sock"),
        "the engine socket is mounted"
    );
    // Every container: no token in its configuration (the sidecar's arrives on stdin).
    for name in &names {
        let inspect = docker(&["inspect", name]);
        assert!(
            !inspect.contains(REAL_TOKEN),
            "{name}'s inspect shows the token"
        );
        assert!(
            !inspect.contains("PRIVATE KEY"),
            "{name}'s inspect shows a key"
        );
    }
    // The images this bottle runs; the engine keeps them while containers use them.
    let mut images: Vec<String> = names
        .iter()
        .map(|name| {
            docker(&["inspect", "--format", "{{.Config.Image}}", name])
                .trim()
                .to_owned()
        })
        .collect();
    images.sort();
    images.dedup();
    assert_eq!(images.len(), 2, "the sidecar and agent images: {images:?}");
    for image in images {
        let history = docker(&["history", "--no-trunc", &image]);
        assert!(
            !history.contains(REAL_TOKEN),
            "{image}'s history shows the token"
        );
        assert!(
            !history.contains("PRIVATE KEY"),
            "{image}'s history shows a key"
        );
    }

    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    assert_ne!(wait_exit(&mut child, Duration::from_secs(60)), Some(0));
    assert!(containers_of(label).is_empty(), "containers left behind");
}

#[test]
fn failed_agent_image_build_leaves_no_container() {
    let sandbox = Sandbox::new();
    let dockerfile = sandbox.write(
        "config/bottles/Dockerfile.broken",
        "FROM bot-bottle/base:bookworm\nRUN exit 3\n",
    );
    sandbox.write(
        "config/bottles/custom.md",
        &format!("---\ndockerfile: {}\n---\n", dockerfile.display()),
    );
    sandbox.write("config/agents/custom.md", "---\nbottle: custom\n---\n");
    let label = "broken-image-docker";
    let output = run(on(
        Backend::Docker,
        &mut bottle_command(
            &sandbox,
            HostUser::Root,
            &["run", "custom", "--label", label, "--", "true"],
        ),
    ));

    assert_eq!(output.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bot-bottle/custom:"), "{stderr}");
    assert!(stderr.contains("failed"), "{stderr}");
    assert!(containers_of(label).is_empty(), "containers left behind");
    assert!(!sandbox.config().join(format!("state/{label}")).exists());
}

#[test]
fn missing_base_image_names_the_script() {
    let sandbox = Sandbox::new();
    let output = run(on(
        Backend::Docker,
        &mut bottle_command(&sandbox, HostUser::Root, &["run", "--", "true"]),
    )
    .env("BOT_BOTTLE_DOCKER_BASE", "bot-bottle/no-such-base:1"));

    assert_eq!(output.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("scripts/docker-base"), "{stderr}");
    assert!(stderr.contains("BOT_BOTTLE_DOCKER_BASE"), "{stderr}");
}

#[test]
fn gc_removes_containers_of_killed_launcher() {
    let api = FakeApi::start();
    let sandbox = Sandbox::new();
    sandbox.write_api_bottle(&api);
    let label = "gc-docker";
    let marker = "6202";
    let mut child = start(&sandbox, label, &format!("exec sleep {marker}"));
    wait_for("the agent to start", Duration::from_secs(60), || {
        !pids_with_arg(marker).is_empty()
    });

    // Positive control: gc leaves the containers of a running launcher alone.
    let output = run(&mut bottle_command(&sandbox, HostUser::Root, &["gc"]));
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(containers_of(label).len(), 3, "gc removed a live bottle");

    child.0.kill().expect("SIGKILL the launcher");
    child.0.wait().expect("reap the launcher");
    assert_eq!(containers_of(label).len(), 3, "the containers outlived it");

    let output = run(&mut bottle_command(&sandbox, HostUser::Root, &["gc"]));
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("bottle-{label}-agent")),
        "{stdout}"
    );
    assert!(containers_of(label).is_empty(), "gc left containers");
    assert!(pids_with_arg(marker).is_empty(), "the agent survived gc");
}

#[test]
fn concurrent_launches_succeed() {
    let sandbox = Sandbox::new();
    let children: Vec<_> = (0..2)
        .map(|index| {
            on(
                Backend::Docker,
                &mut bottle_command(
                    &sandbox,
                    HostUser::Root,
                    &["run", "--", "sh", "-c", &format!("exit 1{index}")],
                ),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bottle")
        })
        .collect();
    for (index, child) in children.into_iter().enumerate() {
        let output = child.wait_with_output().expect("wait");
        assert_eq!(
            output.status.code(),
            Some(10 + i32::try_from(index).expect("small")),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn dry_run_shows_backend_and_runtime() {
    let sandbox = Sandbox::new();
    let output = run(on(
        Backend::Docker,
        &mut bottle_command(&sandbox, HostUser::Root, &["run", "--dry-run", "--json"]),
    ));
    assert_eq!(output.status.code(), Some(0));
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON plan");
    assert_eq!(plan["backend"], "docker");
    let runtimes = docker(&["info", "--format", "{{json .Runtimes}}"]);
    let runtime = plan["runtime"].as_str().expect("a runtime");
    if runtimes.contains("\"runsc\"") {
        assert_eq!(runtime, "runsc");
    } else {
        assert!(runtime.starts_with("runc"), "{runtime}");
    }
    assert!(
        !sandbox.config().join("state").exists(),
        "the dry run started a bottle"
    );
}

#[test]
fn gc_removes_sidecar_images_of_other_binaries() {
    let sandbox = Sandbox::new();
    // A launch builds (or reuses) the sidecar image of this binary.
    let output = run(on(
        Backend::Docker,
        &mut bottle_command(&sandbox, HostUser::Root, &["run", "--", "true"]),
    ));
    assert_eq!(output.status.code(), Some(0));
    let current = built_images()
        .into_iter()
        .filter(|tag| tag.starts_with("bot-bottle/sidecar:"))
        .collect::<Vec<_>>();
    assert!(!current.is_empty(), "no sidecar image was built");

    let stale = "bot-bottle/sidecar:000000000000";
    docker(&["tag", "bot-bottle/base:bookworm", stale]);
    let output = run(&mut bottle_command(&sandbox, HostUser::Root, &["gc"]));
    assert_eq!(output.status.code(), Some(0));
    // Another test's gc may remove the tag first, so the check is on the tag, not on
    // this run's output.
    let left = built_images();
    assert!(!left.iter().any(|tag| tag == stale), "{left:?}");

    // The image of the running binary stays, so the next launch needs no build.
    let output = run(on(
        Backend::Docker,
        &mut bottle_command(&sandbox, HostUser::Root, &["run", "--", "true"]),
    ));
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("building image bot-bottle/sidecar"),
        "{stderr}"
    );
}

/// Builds `tag` from the base image with the label of images `bottle` builds.
fn build_labelled(tag: &str, marker: &str) {
    let dockerfile = format!("FROM bot-bottle/base:bookworm\nLABEL test.marker={marker}\n");
    let mut child = Command::new("docker")
        .args([
            "build",
            "-q",
            "--label",
            "bot-bottle.image=test",
            "-t",
            tag,
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run docker build");
    std::io::Write::write_all(
        child.stdin.as_mut().expect("piped stdin"),
        dockerfile.as_bytes(),
    )
    .expect("write the Dockerfile");
    drop(child.stdin.take());
    assert!(child.wait().expect("wait").success(), "docker build {tag}");
}

#[test]
fn gc_removes_untagged_built_images() {
    let sandbox = Sandbox::new();
    // Building one tag twice leaves the first image untagged.
    let tag = "bot-bottle/gc-untagged-test:1";
    build_labelled(tag, "first");
    let first = docker(&["image", "inspect", "--format", "{{.Id}}", tag])
        .trim()
        .to_owned();
    build_labelled(tag, "second");
    let untagged = || {
        docker(&[
            "images",
            "-q",
            "--no-trunc",
            "--filter",
            "dangling=true",
            "--filter",
            "label=bot-bottle.image",
        ])
    };
    assert!(
        untagged().contains(&first),
        "positive control: {first} is untagged"
    );

    let output = run(&mut bottle_command(&sandbox, HostUser::Root, &["gc"]));
    assert_eq!(output.status.code(), Some(0));
    assert!(!untagged().contains(&first), "gc left the untagged image");
    docker(&["rmi", tag]);
}
