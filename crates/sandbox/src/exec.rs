//! The agent process: it takes the terminal, resets its signal state, and executes the
//! command with the spec's environment only.

use std::ffi::CString;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use crate::protocol::Report;
use crate::step::{StepError, report_and_forget};
use crate::{SandboxSpec, sys};

/// The search path for a command name when the spec's environment has no `PATH`, as
/// `execvp` uses.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Runs in the forked agent process; never returns.
pub(crate) fn run_agent(spec: &SandboxSpec, control: BorrowedFd<'_>, foreground: bool) -> ! {
    if let Err(error) = prepare(foreground) {
        error.report(Some(control));
        sys::exit_now(125);
    }
    let (code, message) = exec_command(spec);
    eprintln!("bottle: {message}");
    report_and_forget(control, &Report::ExecFailed { code, message });
    sys::exit_now(code)
}

fn prepare(foreground: bool) -> Result<(), StepError> {
    use crate::step::Context;

    rustix::process::setpgid(None, None).step("create the agent's process group")?;
    if foreground {
        // SIGTTOU is still blocked here, so the call succeeds from a background group.
        sys::set_foreground_group(rustix::process::getpid().as_raw_nonzero().get())
            .step("give the terminal to the agent")?;
    }
    sys::reset_signals().step("reset the signal mask")?;
    rustix::process::chdir("/workspace").step("enter /workspace")?;
    // The control socket and any descriptor inherited by accident close at exec.
    sys::set_cloexec_from(3).step("mark descriptors close-on-exec")?;
    Ok(())
}

/// Executes the command and returns the exit code and message for a failure: 127 when
/// the program is not found, 126 when it exists but cannot be executed.
fn exec_command(spec: &SandboxSpec) -> (i32, String) {
    let argv: Vec<String> = if spec.command.is_empty() {
        if Path::new("/bin/bash").exists() {
            vec!["/bin/bash".into(), "-l".into()]
        } else {
            vec!["/bin/sh".into()]
        }
    } else {
        spec.command.clone()
    };
    let program = argv[0].clone();
    let to_c = |s: String| CString::new(s).expect("the spec was checked for NUL bytes");
    let argv_c: Vec<CString> = argv.into_iter().map(to_c).collect();
    let env_c: Vec<CString> = spec
        .env
        .iter()
        .map(|(name, value)| to_c(format!("{name}={value}")))
        .collect();

    let candidates: Vec<PathBuf> = if program.contains('/') {
        vec![PathBuf::from(&program)]
    } else {
        let search = spec
            .env
            .iter()
            .rev()
            .find(|(name, _)| name == "PATH")
            .map_or(DEFAULT_PATH, |(_, value)| value.as_str());
        search
            .split(':')
            .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(&program))
            .collect()
    };

    let mut denied = None;
    for candidate in candidates {
        let path = CString::new(candidate.into_os_string().into_encoded_bytes())
            .expect("built from NUL-free strings");
        let error = sys::execve(&path, &argv_c, &env_c);
        match error.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR) => continue,
            Some(libc::EACCES) => denied = Some(error),
            _ => return (126, format!("{program}: cannot execute: {error}")),
        }
    }
    match denied {
        Some(error) => (126, format!("{program}: cannot execute: {error}")),
        None => (127, format!("{program}: command not found")),
    }
}
