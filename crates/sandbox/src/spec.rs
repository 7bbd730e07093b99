//! The description of one bottle that the launcher sends to the helper.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::SandboxError;

/// Everything the helper needs to build one bottle. It contains no credential: the
/// launcher sends it over a pipe, and the agent may read every value in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// The agent's argv. Empty starts an interactive shell: `/bin/bash -l` when the bottle
    /// has bash, else `/bin/sh`.
    pub command: Vec<String>,
    /// The agent's whole environment. Nothing of the helper's environment is added.
    pub env: Vec<(String, String)>,
    /// Host directory mounted read-write at `/workspace`, the agent's working directory.
    pub workspace: PathBuf,
    /// Host name inside the bottle's UTS namespace.
    pub hostname: String,
    /// Extra bind mounts, attached after the system mounts in the order given.
    pub mounts: Vec<BindMount>,
    /// TCP ports to listen on at 127.0.0.1 inside the bottle's network namespace. Port 0
    /// lets the kernel choose one.
    pub listen_ports: Vec<u16>,
    /// Resource limits of the agent and everything it starts.
    pub limits: Limits,
}

/// One bind mount of a host file or directory into the bottle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    /// Host path of the file or directory; the agent's host user must be able to read it.
    pub source: PathBuf,
    /// Absolute path inside the bottle. Missing parent directories are created on the
    /// bottle's root file system.
    pub target: PathBuf,
    /// Mount read-only.
    pub read_only: bool,
}

/// Resource limits (`setrlimit`), applied to the bottle's init and inherited by the agent.
/// Core dumps are always disabled. `None` leaves the limit the launcher had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `RLIMIT_NOFILE`: open file descriptors per process. Clamped to the launcher's hard
    /// limit, because an unprivileged process cannot raise it.
    pub open_files: Option<u64>,
    /// `RLIMIT_NPROC`: processes and threads of the agent's user. The kernel counts them per
    /// user namespace, so this bounds the tasks of one bottle.
    pub processes: Option<u64>,
    /// `RLIMIT_AS`: bytes of virtual address space per process. Off by default, because
    /// runtimes such as V8, the JVM and Go reserve far more address space than they use.
    pub address_space: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        // TODO(resources): memory and CPU need a cgroup; rlimits cannot bound a bottle's
        // total memory.
        Self {
            open_files: Some(65_536),
            processes: Some(4_096),
            address_space: None,
        }
    }
}

impl SandboxSpec {
    /// Checks the values that the helper would otherwise reject halfway through set-up.
    pub fn validate(&self) -> Result<(), SandboxError> {
        let invalid = |reason: String| Err(SandboxError::InvalidSpec(reason));

        if self.hostname.is_empty() || self.hostname.len() > 64 {
            return invalid(format!(
                "hostname {:?} must be 1 to 64 bytes long",
                self.hostname
            ));
        }
        if self
            .hostname
            .bytes()
            .any(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
        {
            return invalid(format!(
                "hostname {:?} may contain only ASCII letters, digits, '-' and '.'",
                self.hostname
            ));
        }
        if !self.workspace.is_absolute() {
            return invalid(format!(
                "workspace {} must be an absolute path",
                self.workspace.display()
            ));
        }
        for (name, value) in &self.env {
            if name.is_empty() || name.contains('=') || name.contains('\0') || value.contains('\0')
            {
                return invalid(format!("environment variable name {name:?} is invalid"));
            }
        }
        if self.command.iter().any(|arg| arg.contains('\0')) {
            return invalid("the command contains a NUL byte".to_owned());
        }
        if self.command.first().is_some_and(String::is_empty) {
            return invalid("the command's program name is empty".to_owned());
        }
        for mount in &self.mounts {
            if !mount.source.is_absolute() {
                return invalid(format!(
                    "mount source {} must be an absolute path",
                    mount.source.display()
                ));
            }
            if !is_clean_absolute(&mount.target) || mount.target == Path::new("/") {
                return invalid(format!(
                    "mount target {} must be an absolute path below / without `..` or `.`",
                    mount.target.display()
                ));
            }
        }
        Ok(())
    }
}

/// Checks that `path` is absolute and made of normal components only.
fn is_clean_absolute(path: &Path) -> bool {
    let mut components = path.components();
    components.next() == Some(Component::RootDir)
        && components.all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SandboxSpec {
        SandboxSpec {
            command: vec!["true".into()],
            env: vec![("PATH".into(), "/usr/bin".into())],
            workspace: "/tmp/ws".into(),
            hostname: "agent-x1y2z".into(),
            mounts: vec![],
            listen_ports: vec![3128],
            limits: Limits::default(),
        }
    }

    #[test]
    fn valid_spec_passes() {
        assert!(spec().validate().is_ok());
    }

    #[test]
    fn mount_target_with_dotdot_rejected() {
        let mut s = spec();
        s.mounts.push(BindMount {
            source: "/etc/hosts".into(),
            target: "/etc/../root/x".into(),
            read_only: true,
        });
        assert!(s.validate().is_err());
    }

    #[test]
    fn relative_mount_target_rejected() {
        let mut s = spec();
        s.mounts.push(BindMount {
            source: "/etc/hosts".into(),
            target: "etc/hosts".into(),
            read_only: true,
        });
        assert!(s.validate().is_err());
    }

    #[test]
    fn hostname_with_slash_rejected() {
        let mut s = spec();
        s.hostname = "a/b".into();
        assert!(s.validate().is_err());
    }

    #[test]
    fn env_name_with_equals_rejected() {
        let mut s = spec();
        s.env.push(("A=B".into(), "c".into()));
        assert!(s.validate().is_err());
    }
}
