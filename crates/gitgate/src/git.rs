//! Building `git` invocations with an isolated configuration and hardened SSH.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::process::Command;

/// Environment variables that keep the host's git configuration out of every invocation.
const ISOLATED_ENV: [(&str, &str); 5] = [
    ("GIT_CONFIG_NOSYSTEM", "1"),
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("GIT_TERMINAL_PROMPT", "0"),
    ("LC_ALL", "C"),
    ("GIT_ATTR_NOSYSTEM", "1"),
];

/// Options given with `-c` to every command that talks to an upstream.
const UPSTREAM_CONFIG: [&str; 6] = [
    "core.hooksPath=/dev/null",
    "protocol.allow=never",
    "protocol.ssh.allow=always",
    "credential.helper=",
    "core.fsmonitor=false",
    "transfer.credentialsInUrl=die",
];

/// Returns a `git` command with an empty environment except `PATH`, `HOME` and the
/// variables that disable the system and global configuration.
pub(crate) fn local_git(repo_dir: &Path, home: &Path) -> Command {
    let mut command = Command::new("git");
    command.env_clear().current_dir(repo_dir).env("HOME", home);
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command.envs(ISOLATED_ENV);
    command.kill_on_drop(true);
    command
}

/// How to reach one upstream over SSH.
#[derive(Clone, Debug)]
pub(crate) struct SshTarget {
    pub identity: PathBuf,
    pub known_hosts: PathBuf,
    pub connect_timeout: Duration,
}

impl SshTarget {
    /// Returns the value of `GIT_SSH_COMMAND`: no user configuration, no agent, only the given
    /// key, and only the pinned host keys.
    pub fn ssh_command(&self) -> String {
        let timeout = self.connect_timeout.as_secs().max(1);
        [
            "ssh -F /dev/null".to_owned(),
            format!("-i {}", shell_quote(&self.identity.to_string_lossy())),
            "-o IdentitiesOnly=yes -o IdentityAgent=none".to_owned(),
            "-o StrictHostKeyChecking=yes -o CheckHostIP=no -o UpdateHostKeys=no".to_owned(),
            format!(
                "-o UserKnownHostsFile={}",
                shell_quote(&self.known_hosts.to_string_lossy())
            ),
            "-o GlobalKnownHostsFile=/dev/null".to_owned(),
            "-o BatchMode=yes -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no"
                .to_owned(),
            "-o ForwardAgent=no -o ForwardX11=no -o ClearAllForwardings=yes".to_owned(),
            "-o PermitLocalCommand=no -o ControlMaster=no -o ControlPath=none".to_owned(),
            format!("-o ConnectTimeout={timeout} -o ServerAliveInterval=15"),
            "-o ServerAliveCountMax=4".to_owned(),
        ]
        .join(" ")
    }

    /// Returns a `git` command for the upstream: isolated like [`local_git`], with the
    /// hardened SSH command, no hooks and only the `ssh` transport allowed.
    pub fn git(&self, repo_dir: &Path, home: &Path) -> Command {
        let mut command = local_git(repo_dir, home);
        command
            .env("GIT_SSH_COMMAND", self.ssh_command())
            .env("GIT_SSH_VARIANT", "ssh");
        for option in UPSTREAM_CONFIG {
            command.arg("-c").arg(option);
        }
        command
    }
}

/// Quotes a string for `sh`, as git runs `GIT_SSH_COMMAND` through the shell.
pub(crate) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Failure of a bounded command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("timed out after {0} s")]
    Timeout(u64),
}

/// Runs a command with stdin closed and output captured, killing it after `limit`.
pub(crate) async fn run_bounded(mut command: Command, limit: Duration) -> Result<Output, RunError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().map_err(RunError::Spawn)?;
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(result) => result.map_err(RunError::Spawn),
        Err(_) => Err(RunError::Timeout(limit.as_secs())),
    }
}

/// Text that is safe to show on a terminal: control characters other than newline and
/// tab become `?`, and the result is cut to `max` characters.
pub(crate) fn sanitize_text(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for (count, ch) in text.chars().enumerate() {
        if count == max {
            out.push_str(" [...]");
            break;
        }
        let safe = if ch.is_control() && ch != '\n' && ch != '\t' {
            '?'
        } else {
            ch
        };
        out.push(safe);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_escapes_single_quote() {
        assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    }

    #[test]
    fn ssh_command_pins_keys_and_disables_agent() {
        let target = SshTarget {
            identity: "/keys/id ed".into(),
            known_hosts: "/state/known".into(),
            connect_timeout: Duration::from_secs(7),
        };
        let command = target.ssh_command();
        assert!(command.starts_with("ssh -F /dev/null -i '/keys/id ed' "));
        assert!(command.contains("-o StrictHostKeyChecking=yes"));
        assert!(command.contains("-o UserKnownHostsFile='/state/known'"));
        assert!(command.contains("-o IdentityAgent=none"));
        assert!(command.contains("-o BatchMode=yes"));
        assert!(command.contains("-o ConnectTimeout=7"));
    }

    #[test]
    fn sanitize_text_removes_escapes() {
        assert_eq!(sanitize_text(b"a\x1b[31mb\nc", 100), "a?[31mb\nc");
        assert_eq!(sanitize_text(b"abcdef", 3), "abc [...]");
    }
}
