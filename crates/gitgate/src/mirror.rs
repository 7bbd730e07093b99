//! The bare mirror of one upstream: creation, isolated configuration and refresh.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{GateLimits, GateRepo, validate_host_key};
use crate::error::GateError;
use crate::git::{RunError, SshTarget, local_git, run_bounded, sanitize_text};
use crate::url::UpstreamUrl;

/// One declared repo with its bare mirror under the gate's state directory.
#[derive(Debug)]
pub(crate) struct Mirror {
    pub repo: GateRepo,
    pub dir: PathBuf,
    pub home: PathBuf,
    pub ssh: SshTarget,
    pub upstream_timeout: Duration,
    /// Serializes refreshes and pre-receive steps of this mirror.
    pub lock: tokio::sync::Mutex<()>,
}

/// Paths shared by every mirror of one gate.
#[derive(Debug)]
pub(crate) struct StateLayout {
    pub hooks: PathBuf,
    pub home: PathBuf,
    pub mirrors: PathBuf,
    pub known_hosts: PathBuf,
    pub control: PathBuf,
}

impl StateLayout {
    /// Creates the state directories, each private to the gate's user.
    pub fn create(state_dir: &Path) -> Result<StateLayout, GateError> {
        let layout = StateLayout {
            hooks: state_dir.join("hooks"),
            home: state_dir.join("home"),
            mirrors: state_dir.join("mirrors"),
            known_hosts: state_dir.join("known_hosts"),
            control: state_dir.join("control"),
        };
        let dirs = [
            state_dir,
            &layout.hooks,
            &layout.home,
            &layout.mirrors,
            &layout.known_hosts,
            &layout.control,
        ];
        for dir in dirs {
            fs::create_dir_all(dir).map_err(|source| state_error(dir, source))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|source| state_error(dir, source))?;
        }
        Ok(layout)
    }
}

pub(crate) fn state_error(path: &Path, source: std::io::Error) -> GateError {
    GateError::State {
        path: path.to_owned(),
        source,
    }
}

/// Writes a file readable only by the gate's user, replacing any old one.
pub(crate) fn write_private(path: &Path, contents: &[u8], mode: u32) -> Result<(), GateError> {
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| state_error(path, source))?;
    file.write_all(contents)
        .map_err(|source| state_error(path, source))
}

impl Mirror {
    /// Creates (or reuses) the bare mirror and rewrites its configuration and pinned
    /// known-hosts file.
    pub async fn prepare(
        repo: &GateRepo,
        layout: &StateLayout,
        limits: &GateLimits,
    ) -> Result<Mirror, GateError> {
        let url = UpstreamUrl::parse(&repo.url).map_err(GateError::Config)?;
        let known_hosts = layout.known_hosts.join(&repo.name);
        let mut lines = String::new();
        for key in &repo.host_keys {
            let (kind, blob) = validate_host_key(key).map_err(GateError::Config)?;
            lines.push_str(&format!("{} {kind} {blob}\n", url.known_hosts_name()));
        }
        write_private(&known_hosts, lines.as_bytes(), 0o600)?;

        let dir = layout.mirrors.join(format!("{}.git", repo.name));
        let mirror_error = |reason: String| GateError::Mirror {
            repo: repo.name.clone(),
            reason,
        };
        if !dir.join("HEAD").exists() {
            let mut init = local_git(&layout.mirrors, &layout.home);
            init.args(["init", "--quiet", "--bare", "--initial-branch=main"])
                .arg(&dir);
            let output = run_bounded(init, Duration::from_secs(60))
                .await
                .map_err(|error| mirror_error(error.to_string()))?;
            if !output.status.success() {
                return Err(mirror_error(sanitize_text(&output.stderr, 500)));
            }
        }
        let config = mirror_config(repo, &layout.hooks, limits);
        write_private(&dir.join("config"), config.as_bytes(), 0o600)?;

        Ok(Mirror {
            repo: repo.clone(),
            dir,
            home: layout.home.clone(),
            ssh: SshTarget {
                identity: repo.identity.clone(),
                known_hosts,
                connect_timeout: Duration::from_secs(limits.connect_timeout_secs),
            },
            upstream_timeout: Duration::from_secs(limits.upstream_timeout_secs),
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Fetches every branch and tag of the upstream into the mirror, pruning refs the
    /// upstream no longer has, and points `HEAD` at the upstream's default branch.
    /// The caller must hold `lock`. The error is a message for the agent's git.
    pub async fn refresh(&self) -> Result<(), String> {
        let name = &self.repo.name;
        let fail = |reason: String| {
            format!(
                "git gate: cannot refresh repo '{name}' from {}: {reason}",
                self.repo.url
            )
        };
        self.check_identity().map_err(fail)?;

        // `git fetch` of git 2.47 does not record the upstream's HEAD, so `ls-remote
        // --symref` reads it, with every branch and tag. When those equal the mirror's
        // refs, as after a push the gate forwarded, the fetch and its second SSH
        // connection are skipped.
        // TODO(perf): a push still pays for this connection and for the forward's own;
        // reusing one SSH connection (ControlMaster) would delay a key revocation until
        // the connection closes.
        let mut ls_remote = self.ssh.git(&self.dir, &self.home);
        ls_remote.args(["ls-remote", "--symref", "--", &self.repo.url]);
        let listing = self.run_upstream(ls_remote).await.map_err(fail)?;
        let listing = String::from_utf8_lossy(&listing);
        let default_branch = listing.lines().find_map(|line| {
            line.strip_prefix("ref: ")?
                .strip_suffix("\tHEAD")
                .map(str::to_owned)
        });

        if self.local_refs().await.as_ref() != Some(&upstream_refs(&listing)) {
            let mut fetch = self.ssh.git(&self.dir, &self.home);
            fetch
                .args([
                    "fetch",
                    "--quiet",
                    "--prune",
                    "--no-tags",
                    "--no-write-fetch-head",
                ])
                .args(["--update-head-ok", "--no-auto-gc", "--", &self.repo.url])
                .args(["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]);
            self.run_upstream(fetch).await.map_err(fail)?;
        }

        if let Some(branch) = default_branch.filter(|b| b.starts_with("refs/heads/")) {
            let mut set_head = local_git(&self.dir, &self.home);
            set_head.args(["symbolic-ref", "HEAD", &branch]);
            let output = run_bounded(set_head, Duration::from_secs(60))
                .await
                .map_err(|error| fail(error.to_string()))?;
            if !output.status.success() {
                tracing::warn!(repo = %name, "cannot point the mirror's HEAD at {branch}");
            }
        }
        Ok(())
    }

    /// Returns the mirror's branches and tags as sorted `<id> <name>` lines, or `None` when
    /// git cannot list them.
    async fn local_refs(&self) -> Option<Vec<String>> {
        let mut command = local_git(&self.dir, &self.home);
        command.args([
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "refs/heads/",
            "refs/tags/",
        ]);
        let output = run_bounded(command, Duration::from_secs(60)).await.ok()?;
        if !output.status.success() {
            return None;
        }
        let mut refs: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        refs.sort();
        Some(refs)
    }

    /// Checks that the identity file exists before `ssh` prints a less clear error.
    pub fn check_identity(&self) -> Result<(), String> {
        match fs::metadata(&self.ssh.identity) {
            Ok(meta) if meta.is_file() => Ok(()),
            _ => {
                tracing::error!(
                    repo = %self.repo.name,
                    identity = %self.ssh.identity.display(),
                    "the identity file of this repo is missing"
                );
                Err(
                    "the SSH identity file configured for this repo is missing on the host"
                        .to_owned(),
                )
            }
        }
    }

    /// Runs a command that talks to the upstream and returns its stdout, or a reason
    /// built from its stderr.
    async fn run_upstream(&self, command: tokio::process::Command) -> Result<Vec<u8>, String> {
        let output = match run_bounded(command, self.upstream_timeout).await {
            Ok(output) => output,
            Err(error @ RunError::Timeout(_)) => return Err(format!("the upstream {error}")),
            Err(error) => return Err(error.to_string()),
        };
        if output.status.success() {
            return Ok(output.stdout);
        }
        let reason = upstream_failure_reason(&output.stderr);
        tracing::warn!(repo = %self.repo.name, "upstream command failed: {reason}");
        Err(reason)
    }
}

/// Returns the branches and tags of `ls-remote` output as sorted `<id> <name>` lines, in
/// the form of [`Mirror::local_refs`]. Peeled tags (`^{}`) and `HEAD` are left out.
fn upstream_refs(listing: &str) -> Vec<String> {
    let mut refs: Vec<String> = listing
        .lines()
        .filter_map(|line| {
            let (id, name) = line.split_once('\t')?;
            let wanted = (name.starts_with("refs/heads/") || name.starts_with("refs/tags/"))
                && !name.ends_with("^{}")
                && !id.starts_with("ref: ");
            wanted.then(|| format!("{id} {name}"))
        })
        .collect();
    refs.sort();
    refs
}

/// Turns `ssh` and `git` error output into one line for the agent.
pub(crate) fn upstream_failure_reason(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    if text.contains("Host key verification failed") || text.contains("REMOTE HOST IDENTIFICATION")
    {
        return "the upstream's SSH host key does not match the pinned host key".to_owned();
    }
    if text.contains("Permission denied") {
        return "the upstream rejected the SSH key of the gate (permission denied)".to_owned();
    }
    for marker in [
        "Connection refused",
        "timed out",
        "No route to host",
        "Could not resolve",
    ] {
        if text.contains(marker) {
            return format!("cannot connect to the upstream: {}", marker.to_lowercase());
        }
    }
    let last_lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let tail = last_lines[last_lines.len().saturating_sub(2)..].join(" / ");
    if tail.is_empty() {
        "git failed without a message".to_owned()
    } else {
        sanitize_text(tail.as_bytes(), 300)
    }
}

/// Returns the mirror's whole configuration, so that nothing is inherited from the host.
fn mirror_config(repo: &GateRepo, hooks: &Path, limits: &GateLimits) -> String {
    let hooks = hooks
        .to_string_lossy()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    format!(
        "[core]\n\
         \trepositoryformatversion = 0\n\
         \tfilemode = true\n\
         \tbare = true\n\
         \tlogAllRefUpdates = false\n\
         \thooksPath = \"{hooks}\"\n\
         \tfsmonitor = false\n\
         [receive]\n\
         \tfsckObjects = true\n\
         \tdenyDeletes = {deny_deletes}\n\
         \tdenyNonFastForwards = {deny_force}\n\
         \tmaxInputSize = {max_input}\n\
         \tadvertisePushOptions = false\n\
         \tautogc = false\n\
         \tshallowUpdate = false\n\
         [uploadpack]\n\
         \tallowFilter = true\n\
         [gc]\n\
         \tauto = 0\n",
        deny_deletes = !repo.push.delete,
        deny_force = !repo.push.force,
        max_input = limits.max_input_bytes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_refs_keep_branches_and_tags() {
        let listing = "ref: refs/heads/main\tHEAD\n\
                       1111\tHEAD\n\
                       1111\trefs/heads/main\n\
                       3333\trefs/tags/v1\n\
                       2222\trefs/tags/v1^{}\n\
                       4444\trefs/pull/1/head\n";
        assert_eq!(
            upstream_refs(listing),
            vec!["1111 refs/heads/main", "3333 refs/tags/v1"]
        );
    }

    #[test]
    fn failure_reason_names_host_key_mismatch() {
        let reason =
            upstream_failure_reason(b"Host key verification failed.\r\nfatal: Could not read");
        assert!(reason.contains("host key does not match"));
    }

    #[test]
    fn failure_reason_names_refused_connection() {
        let reason =
            upstream_failure_reason(b"ssh: connect to host 127.0.0.1 port 1: Connection refused");
        assert!(reason.contains("connection refused"));
    }

    #[test]
    fn failure_reason_falls_back_to_last_lines() {
        let reason = upstream_failure_reason(b"one\n\ntwo\nthree\n");
        assert_eq!(reason, "two / three");
    }
}
