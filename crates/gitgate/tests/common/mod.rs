//! Test harness: a real `sshd` on loopback serving an upstream built by a fixture
//! script, the gate on its own runtime, and a git client whose configuration sends the
//! upstream URL to the gate.

#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use bottle_testkit::git::{
    Sshd, build_upstream, fake_github_token, free_port, keygen, run, upstream_ref, upstream_refs,
};

use bottle_gitgate::{GateConfig, GateLimits, GateRepo, GitUser, PushPolicy, insteadof_config};

/// One test's world: an upstream behind sshd, the gate's key, and a scratch directory.
pub struct World {
    pub dir: tempfile::TempDir,
    pub sshd: Sshd,
    pub upstream: PathBuf,
    pub identity: PathBuf,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let identity = dir.path().join("gate_key");
        let public = keygen(&identity);
        let sshd = Sshd::start(dir.path(), &public);
        let upstream = build_upstream(dir.path());
        World {
            dir,
            sshd,
            upstream,
            identity,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        self.sshd.url(&self.upstream)
    }

    /// Returns the declared repo `widgets`, pointing at this world's upstream with the right key.
    pub fn repo(&self) -> GateRepo {
        GateRepo {
            name: "widgets".to_owned(),
            url: self.url(),
            host_keys: vec![self.sshd.host_key.clone()],
            identity: self.identity.clone(),
            push: PushPolicy::default(),
        }
    }

    /// Commits a file to the upstream's main branch without the gate, as another
    /// writer would; returns the commit id.
    pub fn commit_directly(&self, path: &str, message: &str) -> String {
        let writer = Client {
            home: self.path().join("writer"),
        };
        std::fs::create_dir_all(&writer.home).unwrap();
        std::fs::write(
            writer.home.join(".gitconfig"),
            "[user]\n\tname = W\n\temail = w@example.org\n",
        )
        .unwrap();
        let work = writer.home.join("work");
        if !work.exists() {
            let upstream = self.upstream.to_str().unwrap();
            writer.git_ok(&writer.home, &["clone", "--quiet", upstream, "work"]);
        }
        writer.git_ok(&work, &["pull", "--quiet", "--ff-only"]);
        let commit = writer.commit_file(&work, path, "from another writer\n", message);
        writer.git_ok(&work, &["push", "--quiet", "origin", "main"]);
        commit
    }

    pub fn config(&self, state: &str, repo: GateRepo, known_secrets: Vec<String>) -> GateConfig {
        GateConfig {
            slug: "test".to_owned(),
            state_dir: self.path().join(state),
            repos: vec![repo],
            known_secrets,
            hook_program: PathBuf::from(env!("CARGO_BIN_EXE_bottle-gitgate-hook")),
            hook_args: vec![],
            limits: GateLimits {
                upstream_timeout_secs: 60,
                connect_timeout_secs: 10,
                ..GateLimits::default()
            },
            queue_dir: Some(self.path().join("queue")),
            audit_log: Some(self.path().join("logs/git.jsonl")),
        }
    }
}

/// The gate running on its own thread and runtime; stopped on drop.
pub struct GateHandle {
    pub base_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GateHandle {
    pub fn start(config: GateConfig) -> GateHandle {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tokio::select! {
                    result = bottle_gitgate::serve(config, listener) => {
                        panic!("the gate stopped: {result:?}");
                    }
                    _ = stopped => {}
                }
            });
        });
        GateHandle {
            base_url,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for GateHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A git client with its own home and a global configuration that rewrites the
/// upstream URL to the gate. It cannot use SSH itself, so every operation that works
/// went through the gate.
pub struct Client {
    pub home: PathBuf,
}

impl Client {
    pub fn new(world: &World, name: &str, gate: &GateHandle, repos: &[GateRepo]) -> Client {
        let home = world.path().join(name);
        std::fs::create_dir_all(&home).unwrap();
        let client = Client { home };
        client.point_at(gate, repos);
        client
    }

    /// Rewrites the client's configuration for another gate.
    pub fn point_at(&self, gate: &GateHandle, repos: &[GateRepo]) {
        let user = GitUser {
            name: Some("Agent".into()),
            email: Some("agent@example.org".into()),
        };
        let mut config = insteadof_config(repos, &gate.base_url, Some(&user));
        config.push_str("[protocol \"ssh\"]\n\tallow = never\n[init]\n\tdefaultBranch = main\n");
        std::fs::write(self.home.join(".gitconfig"), config).unwrap();
    }

    pub fn command(&self, cwd: &Path) -> Command {
        let mut command = Command::new("git");
        command
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap())
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", self.home.join(".gitconfig"))
            .env("GIT_SSH_COMMAND", "false")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C");
        command
    }

    /// Runs git and returns its output whether it failed or not.
    pub fn git(&self, cwd: &Path, args: &[&str]) -> Output {
        self.command(cwd).args(args).output().unwrap()
    }

    /// Runs git and panics with its output unless it succeeds.
    pub fn git_ok(&self, cwd: &Path, args: &[&str]) -> String {
        let output = self.git(cwd, args);
        assert!(
            output.status.success(),
            "git {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Clones the upstream by its ordinary URL into `<home>/<dir>`.
    pub fn clone(&self, url: &str, dir: &str) -> PathBuf {
        self.git_ok(&self.home, &["clone", "--quiet", url, dir]);
        self.home.join(dir)
    }

    /// Writes a file and commits it; returns the new commit id.
    pub fn commit_file(&self, work: &Path, path: &str, contents: &str, message: &str) -> String {
        let file = work.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, contents).unwrap();
        self.git_ok(work, &["add", "--", path]);
        self.git_ok(work, &["commit", "--quiet", "-m", message]);
        self.head(work)
    }

    pub fn head(&self, work: &Path) -> String {
        self.git_ok(work, &["rev-parse", "HEAD"]).trim().to_owned()
    }
}

/// Lists every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
