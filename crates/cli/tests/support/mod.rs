//! Shared set-up for tests that launch real bottles: a config directory, a fake API
//! host with its own test CA, and a way to run `bottle` as root or as an unprivileged
//! user.

#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bottle_testkit::{RecordingServer, TestCa};

/// The host name the fake API serves; it never resolves, because the route's
/// `connect` sends the proxy to the test server on loopback.
pub const API_HOST: &str = "api.allowed.example";

/// The real token the sidecar injects; the bottle must never hold it.
pub const REAL_TOKEN: &str = "bottle-e2e-real-token-7f3a9c";

/// The host variable that contains the token.
pub const TOKEN_VAR: &str = "BOTTLE_E2E_API_TOKEN";

/// The unprivileged host user of the rootless tests, created by `scripts/test`.
pub const ROOTLESS_USER: &str = "bottle-test";

/// A fake internet for one test: a recording HTTPS server and its test CA, on a
/// runtime that keeps serving while the test blocks on `bottle`.
pub struct FakeApi {
    pub runtime: tokio::runtime::Runtime,
    pub server: RecordingServer,
    pub ca: TestCa,
}

impl FakeApi {
    pub fn start() -> FakeApi {
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        let ca = TestCa::new("bottle e2e test CA");
        let server = runtime.block_on(RecordingServer::start(&ca, &[API_HOST]));
        FakeApi {
            runtime,
            server,
            ca,
        }
    }
}

/// A temporary directory tree for one test, readable by the rootless user: the config
/// directory, a workspace and the test CA file.
pub struct Sandbox {
    pub root: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let root = tempfile::Builder::new()
            .prefix("bottle-e2e-")
            .tempdir()
            .expect("tempdir");
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let sandbox = Sandbox { root };
        for dir in ["config/bottles", "config/agents", "workspace"] {
            fs::create_dir_all(sandbox.path(dir)).expect("mkdir");
        }
        sandbox
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.path().join(relative)
    }

    pub fn config(&self) -> PathBuf {
        self.path("config")
    }

    pub fn workspace(&self) -> PathBuf {
        self.path("workspace")
    }

    pub fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, contents).expect("write");
        path
    }

    /// Writes the bottle `api` with one route to the fake API, injecting the token.
    pub fn write_api_bottle(&self, api: &FakeApi) {
        let ca_path = self.path("test-ca.pem");
        api.ca.write_cert_pem(&ca_path).expect("write test CA");
        let bottle = format!(
            "---\negress:\n  routes:\n    - host: {API_HOST}\n      connect: \"{}\"\n      \
             upstream_ca: {}\n      auth: {{token_ref: {TOKEN_VAR}}}\n---\nThe e2e bottle.\n",
            api.server.https_addr(),
            ca_path.display()
        );
        self.write("config/bottles/api.md", &bottle);
        self.write("config/agents/scripted.md", "---\nbottle: api\n---\n");
    }

    /// Hands the whole tree to `user`, for the rootless tests.
    pub fn chown_to(&self, user: &str) {
        let status = Command::new("chown")
            .args(["-R", user])
            .arg(self.root.path())
            .status()
            .expect("run chown");
        assert!(status.success(), "chown -R {user} failed");
    }
}

/// Who runs `bottle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostUser {
    Root,
    Rootless,
}

/// Path of the `bottle` binary built for this test run.
pub fn bottle_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bottle"))
}

/// Copies the binary where an unprivileged user can execute it: the target directory
/// may sit under a home directory that only root can enter.
pub fn world_executable_copy(dir: &Path) -> PathBuf {
    let copy = dir.join("bottle");
    if !copy.exists() {
        fs::copy(bottle_exe(), &copy).expect("copy bottle");
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    copy
}

/// Fails with what to run when the rootless user is missing.
pub fn require_rootless_user() {
    let found = Command::new("id")
        .arg(ROOTLESS_USER)
        .output()
        .expect("run id");
    assert!(
        found.status.success(),
        "user {ROOTLESS_USER} is missing; create it with `useradd --create-home {ROOTLESS_USER}` \
         (scripts/test does this when run as root)"
    );
}

/// Builds the command that runs `bottle ARGS` as `user` with the sandbox's config.
pub fn bottle_command(sandbox: &Sandbox, user: HostUser, args: &[&str]) -> Command {
    let mut command = match user {
        HostUser::Root => Command::new(bottle_exe()),
        HostUser::Rootless => {
            require_rootless_user();
            let exe = world_executable_copy(sandbox.root.path());
            let mut command = Command::new("setpriv");
            command
                .args([
                    "--reuid",
                    ROOTLESS_USER,
                    "--regid",
                    ROOTLESS_USER,
                    "--init-groups",
                ])
                .arg("--")
                .arg(exe);
            command
        }
    };
    command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("BOT_BOTTLE_HOME", sandbox.config())
        .current_dir(sandbox.root.path());
    command
}

pub fn run(command: &mut Command) -> Output {
    let output = command.output().expect("run bottle");
    eprintln!(
        "--- bottle stderr ---\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Returns the pids of processes whose argv contains `needle` as one argument. Give the
/// marker to the agent inside `sh -c "exec ..."`, so that the launcher's own argv, which
/// contains the script as a single argument, does not match.
pub fn pids_with_arg(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == needle.as_bytes())
        {
            pids.push(pid);
        }
    }
    pids
}

/// A running `bottle` that is killed when the test ends, even when it panics, so that a
/// failing test leaves no bottle behind for the next one to trip over.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Returns every file under `dir` whose contents include `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if kind.is_file() {
            let contents = fs::read(&path).unwrap_or_default();
            if contents
                .windows(needle.len())
                .any(|window| window == needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// Waits until `check` holds, polling with a growing interval, and fails with `what`.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(interval);
        interval = (interval * 2).min(Duration::from_millis(500));
    }
}

/// The backend a test launches bottles on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Native,
    Docker,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Native => "native",
            Backend::Docker => "docker",
        }
    }
}

/// Selects the backend of a `bottle run` command, and for docker fails unless the
/// engine answers and the base image exists.
pub fn on(backend: Backend, command: &mut Command) -> &mut Command {
    if backend == Backend::Docker {
        require_docker();
    }
    command.env("BOT_BOTTLE_BACKEND", backend.name())
}

/// Fails with what to run when the Docker engine or the base image is missing.
pub fn require_docker() {
    let info = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output();
    assert!(
        info.as_ref().is_ok_and(|output| output.status.success()),
        "the docker backend's tests need a running Docker engine; run scripts/test, which \
         installs docker.io and starts dockerd ({info:?})"
    );
    let base = Command::new("docker")
        .args(["image", "inspect", "bot-bottle/base:bookworm"])
        .output()
        .expect("run docker image inspect");
    assert!(
        base.status.success(),
        "the base image bot-bottle/base:bookworm is missing; run scripts/docker-base (scripts/test \
         does)"
    );
}

/// Runs `docker ARGS` and returns its stdout, failing the test when it fails.
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Names of the containers carrying the label `bot-bottle.slug=SLUG`.
pub fn containers_of(slug: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=bot-bottle.slug={slug}"),
        "--format",
        "{{.Names}}",
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}
