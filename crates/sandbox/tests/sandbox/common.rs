//! Shared set-up of the sandbox tests: a workspace, a spec, and a runner that collects
//! what a shell script printed inside the bottle.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bottle_sandbox::{BindMount, BottleExit, Launched, Limits, SandboxSpec};

/// Where the probe binary is bound inside every test bottle.
pub const PROBE: &str = "/opt/probe";

/// The helper binary: `SANDBOX_TEST_HELPER` when the rootless run copied it elsewhere,
/// else the one cargo built.
pub fn helper_exe() -> PathBuf {
    std::env::var_os("SANDBOX_TEST_HELPER").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_sandbox-test-helper")),
        PathBuf::from,
    )
}

/// Creates a fresh workspace that the agent's host user can write to.
pub fn workspace() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("bottle-ws-")
        .tempdir()
        .expect("create a workspace");
    let (uid, gid) = bottle_sandbox::agent_host_ids();
    std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the workspace");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod the workspace");
    dir
}

/// Builds a spec that runs `script` with `/bin/sh -c` and binds the probe at [`PROBE`].
pub fn spec(workspace: &Path, script: &str) -> SandboxSpec {
    SandboxSpec {
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec![
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            ("HOME".into(), "/home/agent".into()),
        ],
        workspace: workspace.to_path_buf(),
        hostname: "test-bottle".into(),
        mounts: vec![BindMount {
            source: helper_exe(),
            target: PROBE.into(),
            read_only: true,
        }],
        listen_ports: vec![],
        limits: Limits::default(),
    }
}

/// Launches `spec`, failing the test with the launcher's message, which names what to
/// enable when user namespaces are forbidden.
pub fn launch(spec: &SandboxSpec) -> Launched {
    match bottle_sandbox::launch(&helper_exe(), spec) {
        Ok(launched) => launched,
        Err(error) => panic!("launching a bottle failed: {error}"),
    }
}

/// Runs `script` in a fresh bottle and returns how it ended and what it printed on
/// standard output and error.
pub fn run(script: &str) -> (BottleExit, String) {
    let workspace = workspace();
    run_in(workspace.path(), script)
}

/// Like [`run`], in the given workspace.
pub fn run_in(workspace: &Path, script: &str) -> (BottleExit, String) {
    run_spec(spec(workspace, script))
}

/// Runs a spec whose command is a script, capturing its output in the workspace.
pub fn run_spec(mut spec: SandboxSpec) -> (BottleExit, String) {
    let script = spec.command.last().cloned().unwrap_or_default();
    spec.command = capture(&script);
    let mut launched = launch(&spec);
    let exit = launched.wait().expect("wait for the bottle");
    let text = captured(&spec.workspace);
    let _ = std::fs::remove_file(spec.workspace.join(".bottle-test-output"));
    (exit, text)
}

/// Runs the probe on the host, as the positive control of a probe run in a bottle.
pub fn probe_on_host(args: &[&str]) -> String {
    let output = std::process::Command::new(helper_exe())
        .arg("probe")
        .args(args)
        .output()
        .expect("run the probe on the host");
    assert!(
        output.status.success(),
        "the probe failed on the host: {output:?}"
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8 probe output")
        .trim()
        .to_owned()
}

/// Builds the command that runs `script` with its output captured in the workspace.
pub fn capture(script: &str) -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        format!("exec >/workspace/.bottle-test-output 2>&1\n{script}"),
    ]
}

/// Returns what a command built by [`capture`] printed.
pub fn captured(workspace: &Path) -> String {
    std::fs::read_to_string(workspace.join(".bottle-test-output")).unwrap_or_default()
}

/// Creates a FIFO in the workspace that the agent can write to.
pub fn fifo(workspace: &Path, name: &str) -> PathBuf {
    let path = workspace.join(name);
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: the path is a valid C string.
    let result = unsafe { libc::mkfifo(c_path.as_ptr(), 0o666) };
    assert_eq!(
        result,
        0,
        "mkfifo {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod fifo");
    let (uid, gid) = bottle_sandbox::agent_host_ids();
    std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown the fifo");
    path
}

/// Reads a FIFO until the writer closes it; blocks until the agent has written.
pub fn read_fifo(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("read the fifo")
        .trim()
        .to_owned()
}
