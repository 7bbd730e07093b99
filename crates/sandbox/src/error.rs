//! Errors of the launcher side of the sandbox.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

/// A failure to start a bottle, or to talk to its helper.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The spec has a value the helper cannot use; the message names it.
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),

    /// The helper executable could not be started.
    #[error("failed to start the sandbox helper {}: {source}", exe.display())]
    Spawn {
        /// The executable that was started with `__sandbox-init`.
        exe: PathBuf,
        /// The error from `execve` or `fork`.
        source: io::Error,
    },

    /// A system call of the launcher side failed; `step` names it.
    #[error("failed to {step}: {source}")]
    Io {
        /// The launcher's step, as a verb phrase.
        step: &'static str,
        /// The underlying error.
        source: io::Error,
    },

    /// The helper reported that a set-up step failed before the agent started. The
    /// message names what to change when the cause is on the host, such as user
    /// namespaces that the kernel forbids.
    #[error("sandbox set-up failed to {step}: {message}")]
    Setup {
        /// The step that failed, as a verb phrase ("mount /proc").
        step: String,
        /// The error and, where known, the fix.
        message: String,
    },

    /// The helper exited without reporting success or failure.
    #[error("the sandbox helper exited ({status}) before it reported the bottle ready")]
    HelperExited {
        /// The helper's exit status.
        status: ExitStatus,
    },

    /// The helper sent a report the launcher could not decode.
    #[error("invalid report from the sandbox helper: {0}")]
    Protocol(String),

    /// A file descriptor given to [`take_inherited_listener`](crate::take_inherited_listener)
    /// is not a listening TCP socket.
    #[error("file descriptor {fd} is not an inherited listening TCP socket: {reason}")]
    InvalidInheritedFd {
        /// The file descriptor number.
        fd: i32,
        /// The reason for the rejection.
        reason: String,
    },
}

impl SandboxError {
    pub(crate) fn io(step: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Io { step, source }
    }
}
