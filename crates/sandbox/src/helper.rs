//! The helper process, `bottle __sandbox-init`: it stays in the host's namespaces, creates
//! the bottle's init in new ones, writes the user-namespace maps, forwards signals to the
//! init, and exits with its status.

use std::io::{Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::process::ExitCode;

use crate::init::{self, InitContext};
use crate::protocol;
use crate::step::{Context, StepError, userns_denied_message};
use crate::sys::{self, Forked, SignalSet};
use crate::{CONTROL_FD, SPEC_FD, SandboxSpec};

/// The user and group id of the agent inside the bottle.
pub(crate) const AGENT_ID: u32 = 1000;

/// The host user and group id the agent runs as when the launcher runs as root: the
/// conventional `nobody`. Mapping the agent to host root would let it read root-owned
/// files, such as a bound file that is only readable by root.
pub const ROOT_MODE_HOST_ID: u32 = 65534;

/// Signals the helper and the bottle's init pass on to the agent.
pub(crate) const FORWARDED_SIGNALS: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Returns the host uid and gid that the agent runs as when the current process launches a
/// bottle: its own ids, or [`ROOT_MODE_HOST_ID`] when it runs as root. A launcher running
/// as root uses this to make a fresh workspace writable for the agent.
pub fn agent_host_ids() -> (u32, u32) {
    if root_mode() {
        (ROOT_MODE_HOST_ID, ROOT_MODE_HOST_ID)
    } else {
        (
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
        )
    }
}

/// Checks whether the process runs as a root that can map the agent to
/// [`ROOT_MODE_HOST_ID`], which means uid 0 in a user namespace that maps that id, such as
/// the host's. Uid 0 of a namespace
/// that maps only itself (`unshare --map-root-user`) is treated as a normal user.
fn root_mode() -> bool {
    let maps = |path: &str| {
        std::fs::read_to_string(path).is_ok_and(|map| {
            map.lines().any(|line| {
                let fields: Vec<u64> = line
                    .split_whitespace()
                    .filter_map(|field| field.parse().ok())
                    .collect();
                let id = u64::from(ROOT_MODE_HOST_ID);
                matches!(fields[..], [first, _, count] if first <= id && id < first + count)
            })
        })
    };
    rustix::process::geteuid().is_root() && maps("/proc/self/uid_map") && maps("/proc/self/gid_map")
}

/// Runs the sandbox helper: reads the spec, builds the bottle, and returns the agent's
/// exit status (128 + the signal number when a signal killed it). Set-up failures exit
/// 125 with a message on standard error that starts with `bottle: `.
///
/// Call it before any thread starts, because a multi-threaded process cannot create a
/// user namespace.
pub fn init_main() -> ExitCode {
    // SAFETY: the launcher passes the control socket as CONTROL_FD, and nothing else in this
    // fresh process has claimed that number. `take_inherited` checks that it is open.
    let control = match unsafe { take_inherited(CONTROL_FD) } {
        Ok(fd) => fd,
        Err(error) => {
            StepError::new("receive the control socket", error).report(None);
            return ExitCode::from(125);
        }
    };
    let mut control = Some(control);
    match run(&mut control) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            error.report(control.as_ref().map(AsFd::as_fd));
            ExitCode::from(125)
        }
    }
}

/// Claims an inherited file descriptor and marks it close-on-exec.
///
/// # Safety
/// Nothing else in the process may own `fd`.
unsafe fn take_inherited(fd: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: fcntl(F_GETFD) on any number is harmless; it fails with EBADF when closed.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open (checked above) and the caller guarantees that
    // nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)?;
    Ok(owned)
}

fn run(control: &mut Option<OwnedFd>) -> Result<u8, StepError> {
    let spec = read_spec()?;
    spec.validate()
        .map_err(|error| StepError::new("validate the spec", error))?;
    ensure_single_threaded()?;

    let (host_uid, host_gid) = agent_host_ids();
    // TODO(security): a rootless agent keeps the user's supplementary groups, because an
    // unprivileged writer of gid_map must deny setgroups; they open group-readable files
    // of the bound host directories.
    if root_mode() {
        // Root's supplementary groups (group 0 among them) would otherwise follow the agent
        // into the bottle and open every file readable by those groups.
        rustix::thread::set_thread_groups(&[]).step("drop supplementary groups")?;
    }
    let foreground = sys::stdin_terminal_is_ours();
    let own_pidfd = rustix::process::pidfd_open(
        rustix::process::getpid(),
        rustix::process::PidfdFlags::empty(),
    )
    .step("open a pidfd of the helper")?;
    let (sync_read, sync_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).step("create a pipe")?;

    // Blocked before the clone, so that no signal arrives between the clone and the wait
    // loop. The init inherits the mask, and the agent resets it.
    let mut watched = FORWARDED_SIGNALS.to_vec();
    watched.extend([libc::SIGCHLD, libc::SIGTTOU]);
    let signals = SignalSet::new(&watched);
    signals.block().step("block signals")?;
    sys::default_signal(libc::SIGCHLD);

    let namespaces = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    let init_pid = match sys::clone_with_flags(namespaces) {
        Err(error) => {
            return Err(StepError::new(
                "create the user, mount, pid, network, IPC and UTS namespaces",
                userns_denied_message(&error),
            ));
        }
        Ok(Forked::Child) => {
            drop(sync_write);
            let context = InitContext {
                spec,
                control: control.take().expect("the control socket is still open"),
                sync: sync_read,
                helper: own_pidfd,
                foreground,
                signals,
            };
            // The child must never return into the helper's stack frames.
            #[expect(clippy::exit, reason = "the cloned init ends here")]
            std::process::exit(init::run(context));
        }
        Ok(Forked::Parent(pid)) => pid,
    };
    drop(sync_read);

    if let Err(error) = write_id_maps(init_pid, host_uid, host_gid) {
        let _ = sys::kill(init_pid, libc::SIGKILL);
        let _ = rustix::process::waitpid(
            rustix::process::Pid::from_raw(init_pid),
            rustix::process::WaitOptions::empty(),
        );
        return Err(error);
    }
    if let Some(control) = control.as_ref() {
        protocol::send(
            control.as_fd(),
            &protocol::Report::Init { pid: init_pid },
            &[],
        )
        .step("report the bottle's init to the launcher")?;
    }
    let mut sync_write = std::fs::File::from(sync_write);
    sync_write.write_all(b"1").step("start the bottle's init")?;
    drop(sync_write);
    // From here on the init reports to the launcher.
    drop(control.take());

    let code = supervise(init_pid, &signals);
    if foreground {
        // The agent's process group owned the terminal; give it back to ours, so that the
        // launcher can read from it again. SIGTTOU is blocked, so this cannot stop us.
        let _ = sys::set_foreground_group(sys::process_group());
    }
    Ok(code)
}

/// Reads the spec that the launcher writes to `SPEC_FD` and then closes.
fn read_spec() -> Result<SandboxSpec, StepError> {
    // SAFETY: the launcher passes the spec pipe as SPEC_FD, and nothing else in this
    // process has claimed it.
    let fd = unsafe { take_inherited(SPEC_FD) }.step("receive the spec pipe")?;
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .read_to_end(&mut bytes)
        .step("read the spec")?;
    serde_json::from_slice(&bytes).map_err(|error| StepError::new("decode the spec", error))
}

fn ensure_single_threaded() -> Result<(), StepError> {
    let status = std::fs::read_to_string("/proc/self/status").step("read /proc/self/status")?;
    let threads = status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .map(str::trim);
    if threads != Some("1") {
        return Err(StepError::new(
            "check that the helper is single-threaded",
            format!(
                "the helper runs {} threads, and a multi-threaded process cannot create a user \
                 namespace; call bottle_sandbox::init_main before anything starts a thread",
                threads.unwrap_or("an unknown number of")
            ),
        ));
    }
    Ok(())
}

/// Maps the agent's id inside the bottle to one host id. Only one id is mapped, so files
/// of every other host user, root included, appear as the overflow id and grant the
/// bottle nothing beyond their "other" permission bits.
fn write_id_maps(pid: libc::pid_t, host_uid: u32, host_gid: u32) -> Result<(), StepError> {
    let write = |name: &str, content: String| {
        let path = format!("/proc/{pid}/{name}");
        std::fs::write(&path, content).step(&format!("write {path}"))
    };
    write("setgroups", "deny".to_owned())?;
    write("uid_map", format!("{AGENT_ID} {host_uid} 1\n"))?;
    write("gid_map", format!("{AGENT_ID} {host_gid} 1\n"))?;
    Ok(())
}

/// Forwards signals to the init until it exits, and returns the exit code to use.
fn supervise(init_pid: libc::pid_t, signals: &SignalSet) -> u8 {
    let init = rustix::process::Pid::from_raw(init_pid).expect("clone returns a positive PID");
    loop {
        let signal = match signals.wait() {
            Ok(signal) => signal,
            // sigwaitinfo fails only for an invalid set, so check the init's status instead.
            Err(_) => libc::SIGCHLD,
        };
        if signal != libc::SIGCHLD {
            if FORWARDED_SIGNALS.contains(&signal) {
                let _ = sys::kill(init_pid, signal);
            }
            continue;
        }
        match rustix::process::waitpid(Some(init), rustix::process::WaitOptions::NOHANG) {
            Ok(Some((_, status))) => return exit_code_of(status),
            Ok(None) => continue,
            Err(_) => return 125,
        }
    }
}

/// Converts a wait status by the shell convention: the exit code, or 128 + the signal
/// number.
pub(crate) fn exit_code_of(status: rustix::process::WaitStatus) -> u8 {
    if let Some(code) = status.exit_status() {
        return u8::try_from(code & 0xff).expect("masked to one byte");
    }
    if let Some(signal) = status.terminating_signal() {
        return u8::try_from((128 + signal) & 0xff).expect("masked to one byte");
    }
    125
}
