//! Git fixtures on real parts: a private `sshd` on loopback, key pairs made with
//! `ssh-keygen`, and upstream repositories built by a fixture script with real git.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

const SSHD: &str = "/usr/sbin/sshd";

/// How long start-up of `sshd` may take before the harness gives up loudly.
const SSHD_READY_LIMIT: Duration = Duration::from_secs(30);

/// Runs a command and panics with its output if it fails.
pub fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Generates an ed25519 key pair at `path` and returns the public key's
/// `<type> <base64>` part.
pub fn keygen(path: &Path) -> String {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "gate-test", "-f"])
        .arg(path));
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("read the public key");
    public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn current_user() -> String {
    let output = run(Command::new("id").arg("-un"));
    String::from_utf8(output.stdout)
        .expect("test set-up")
        .trim()
        .to_owned()
}

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("test set-up")
        .local_addr()
        .expect("test set-up")
        .port()
}

/// A private `sshd` on 127.0.0.1 with its own host key and one authorized client key.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    pub port: u16,
    /// The host key's `<type> <base64>`.
    pub host_key: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Sshd {
    pub fn start(dir: &Path, authorized_key: &str) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server (apt-get install openssh-server)"
        );
        if is_root() {
            // sshd refuses to start as root without its privilege separation directory.
            std::fs::create_dir_all("/run/sshd").expect("test set-up");
        }
        let sshd_dir = dir.join("sshd");
        std::fs::create_dir_all(&sshd_dir).expect("test set-up");
        let host_key = keygen(&sshd_dir.join("host_ed25519"));
        std::fs::write(
            sshd_dir.join("authorized_keys"),
            format!("{authorized_key}\n"),
        )
        .expect("test set-up");

        let mut last_log = Vec::new();
        for _ in 0..5 {
            let port = free_port();
            let config = sshd_dir.join("sshd_config");
            std::fs::write(&config, sshd_config(&sshd_dir, port)).expect("test set-up");
            let mut child = Command::new(SSHD)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start sshd");
            let log = Arc::new(Mutex::new(Vec::new()));
            let (ready_tx, ready_rx) = mpsc::channel();
            let stderr = child.stderr.take().expect("test set-up");
            let sink = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("Server listening on 127.0.0.1") {
                        let _ = ready_tx.send(true);
                    }
                    sink.lock().expect("test set-up").push(line);
                }
                let _ = ready_tx.send(false);
            });
            match ready_rx.recv_timeout(SSHD_READY_LIMIT) {
                Ok(true) => {
                    return Sshd {
                        child,
                        port,
                        host_key,
                        log,
                    };
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_log = log.lock().expect("test set-up").clone();
                }
            }
        }
        panic!("sshd did not start; its log:\n{}", last_log.join("\n"));
    }

    /// Returns the upstream URL of a repository path on this server.
    pub fn url(&self, path: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            current_user(),
            self.port,
            path.display()
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    current_user() == "root"
}

fn sshd_config(dir: &Path, port: u16) -> String {
    format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {dir}/host_ed25519\n\
         AuthorizedKeysFile {dir}/authorized_keys\n\
         StrictModes no\n\
         PidFile none\n\
         UsePAM no\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         AllowTcpForwarding no\n\
         X11Forwarding no\n\
         LogLevel VERBOSE\n",
        dir = dir.display()
    )
}

/// Runs the fixture script that builds `<dir>/upstream.git` and returns its path.
pub fn build_upstream(dir: &Path) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upstream.sh");
    run(Command::new("bash").arg(script).arg(dir));
    dir.join("upstream.git")
}

/// Reads a ref of a bare repository directly, without the gate; `None` if it is absent.
pub fn upstream_ref(repo: &Path, name: &str) -> Option<String> {
    let output = Command::new("git")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .arg("--git-dir")
        .arg(repo)
        .args(["rev-parse", "--verify", "--quiet", name])
        .output()
        .expect("test set-up");
    output.status.success().then(|| {
        String::from_utf8(output.stdout)
            .expect("test set-up")
            .trim()
            .to_owned()
    })
}

/// Lists every ref of a bare repository.
pub fn upstream_refs(repo: &Path) -> String {
    let output = run(Command::new("git")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .arg("--git-dir")
        .arg(repo)
        .args(["for-each-ref", "--format=%(objectname) %(refname)"]));
    String::from_utf8(output.stdout).expect("test set-up")
}

/// A GitHub personal access token in the documented format, assembled at run time so the
/// source contains no token literal.
pub fn fake_github_token() -> String {
    let body: String = ["Xk7pQ2", "mN9vR4", "sT1wY8", "zA3bC6", "dE0fG5", "hJ2kL9"].concat();
    format!("ghp_{body}")
}

/// Returns the authorized-keys file of the [`Sshd`] started with `dir`. Replacing it (with
/// a rename) changes which client keys the server accepts from the next connection on.
pub fn sshd_authorized_keys(dir: &Path) -> PathBuf {
    dir.join("sshd").join("authorized_keys")
}

/// Runs `git ARGS` on a bare repository directly, without the gate, and returns its
/// standard output. Panics with git's output when it fails.
pub fn upstream_git(repo: &Path, args: &[&str]) -> String {
    let output = run(Command::new("git")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .arg("--git-dir")
        .arg(repo)
        .args(args));
    String::from_utf8(output.stdout).expect("git prints UTF-8 here")
}

/// Returns whether a bare repository contains the object `id`, read directly, without the
/// gate.
pub fn upstream_has_object(repo: &Path, id: &str) -> bool {
    Command::new("git")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .arg("--git-dir")
        .arg(repo)
        .args(["cat-file", "-e", id])
        .output()
        .expect("test set-up")
        .status
        .success()
}
