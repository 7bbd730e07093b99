//! The rootless path: when the tests run as root, the whole suite runs again as the
//! unprivileged user `bottle-test`, which has no privilege but its own user id.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const USER: &str = "bottle-test";

fn ensure_user() {
    let exists = Command::new("id")
        .arg("-u")
        .arg(USER)
        .output()
        .is_ok_and(|o| o.status.success());
    if exists {
        return;
    }
    let status = Command::new("useradd")
        .args(["--system", "--no-create-home", "--home-dir", "/nonexistent"])
        .args(["--shell", "/usr/sbin/nologin", USER])
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "creating the user {USER} failed; create it with `sudo useradd --system {USER}`"
    );
}

fn copy_executable(from: &Path, dir: &Path) -> std::path::PathBuf {
    let to = dir.join(from.file_name().expect("a file name"));
    std::fs::copy(from, &to).expect("copy the executable");
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    to
}

#[test]
fn suite_passes_rootless() {
    if !rustix::process::geteuid().is_root() {
        // This run is itself the rootless path: every other test in it covers it.
        assert_ne!(
            bottle_sandbox::agent_host_ids().0,
            bottle_sandbox::ROOT_MODE_HOST_ID
        );
        return;
    }
    ensure_user();
    // The build directory may not be readable by other users, so run copies.
    let dir = tempfile::Builder::new()
        .prefix("bottle-rootless-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let tests = copy_executable(&std::env::current_exe().expect("own path"), dir.path());
    let helper = copy_executable(&crate::common::helper_exe(), dir.path());

    let output = Command::new("setpriv")
        .args([
            &format!("--reuid={USER}"),
            &format!("--regid={USER}"),
            "--clear-groups",
            "--",
        ])
        .arg(&tests)
        .args(["--skip", "suite_passes_rootless"])
        .env("SANDBOX_TEST_HELPER", &helper)
        .current_dir(dir.path())
        .output()
        .expect("run setpriv (util-linux) to start the suite as bottle-test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the rootless run failed:\n{text}");
    let passed = text
        .lines()
        .find_map(|line| line.strip_prefix("test result: ok. "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse::<u32>().ok())
        .unwrap_or(0);
    assert!(
        passed >= 20,
        "the rootless run passed only {passed} tests:\n{text}"
    );
}
