//! Failures of set-up steps inside the helper, and how they are reported.

use std::fmt::Display;
use std::io;
use std::os::fd::BorrowedFd;

use crate::protocol::{self, Report};

/// A set-up step that failed, with the error and, where known, the fix.
#[derive(Debug)]
pub(crate) struct StepError {
    /// The step, as a verb phrase ("mount /proc").
    pub(crate) step: String,
    pub(crate) message: String,
}

impl StepError {
    pub(crate) fn new(step: impl Into<String>, message: impl Display) -> Self {
        Self {
            step: step.into(),
            message: message.to_string(),
        }
    }

    /// Writes the failure on standard error and sends it to the launcher. Both are best
    /// effort, because the helper exits 125 either way.
    pub(crate) fn report(&self, control: Option<BorrowedFd<'_>>) {
        eprintln!(
            "bottle: sandbox set-up failed to {}: {}",
            self.step, self.message
        );
        if let Some(control) = control {
            let report = Report::SetupFailed {
                step: self.step.clone(),
                message: self.message.clone(),
            };
            let _ = protocol::send(control, &report, &[]);
        }
    }
}

/// Adds the step name to an `io::Result`, and the host-side fix when the error is a
/// permission error that a user-namespace restriction explains.
pub(crate) trait Context<T> {
    fn step(self, step: &str) -> Result<T, StepError>;
}

impl<T> Context<T> for Result<T, rustix::io::Errno> {
    fn step(self, step: &str) -> Result<T, StepError> {
        self.map_err(io::Error::from).step(step)
    }
}

impl<T> Context<T> for io::Result<T> {
    fn step(self, step: &str) -> Result<T, StepError> {
        self.map_err(|error| {
            let mut message = error.to_string();
            if error.raw_os_error() == Some(libc::EPERM)
                && let Some(hint) = userns_restriction_hint()
            {
                message = format!("{message}; {hint}");
            }
            StepError::new(step, message)
        })
    }
}

/// Explains a user namespace that was created without the usual capabilities, or not at
/// all. Returns `None` when no known restriction is active.
pub(crate) fn userns_restriction_hint() -> Option<String> {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_owned())
    };
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1")
        && !rustix::process::geteuid().is_root()
    {
        return Some(
            "AppArmor restricts unprivileged user namespaces \
             (kernel.apparmor_restrict_unprivileged_userns=1): run \
             `sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0`, or install an \
             AppArmor profile that allows `userns` for the bottle binary"
                .to_owned(),
        );
    }
    None
}

/// Builds the message for a failed `clone(CLONE_NEWUSER | ...)`, with the fix.
pub(crate) fn userns_denied_message(error: &io::Error) -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_owned())
    };
    let mut fixes = Vec::new();
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        fixes.push("`sudo sysctl kernel.unprivileged_userns_clone=1`");
    }
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        fixes.push("`sudo sysctl user.max_user_namespaces=15000`");
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        fixes.push(
            "`sudo sysctl kernel.apparmor_restrict_unprivileged_userns=0` or an AppArmor \
             profile that allows `userns` for the bottle binary",
        );
    }
    let fix = if fixes.is_empty() {
        "enable unprivileged user namespaces (kernel.unprivileged_userns_clone=1, \
         user.max_user_namespaces > 0, and on Ubuntu \
         kernel.apparmor_restrict_unprivileged_userns=0); inside a container, allow the \
         unshare and clone system calls with namespace flags"
            .to_owned()
    } else {
        format!("run {}", fixes.join(" and "))
    };
    format!("user namespaces are not permitted by this kernel ({error}): {fix}")
}

pub(crate) fn report_and_forget(control: BorrowedFd<'_>, report: &Report) {
    let _ = protocol::send(control, report, &[]);
}
