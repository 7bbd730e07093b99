//! The launcher's side: start the helper, send the spec, receive the listeners, and learn
//! how the bottle ended.

use std::io::Write;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};

use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType};
use rustix::process::PidfdFlags;

use crate::protocol::{self, MAX_LISTENERS, Report};
use crate::{INIT_ARG, LandlockStatus, SandboxError, SandboxSpec};

/// The helper's file descriptor of the control socket.
pub(crate) const CONTROL_FD: i32 = 3;
/// The helper's file descriptor of the pipe that carries the spec.
pub(crate) const SPEC_FD: i32 = 4;

/// The maximum number of descriptors [`pass_fds`] can place.
const MAX_PASSED_FDS: usize = 64;

/// A running bottle.
#[derive(Debug)]
#[non_exhaustive]
pub struct Launched {
    /// The helper process. Its exit status is the agent's; [`Launched::wait`] also
    /// distinguishes set-up failures.
    pub child: Child,
    /// The listeners opened inside the bottle's network namespace, in the order of
    /// `SandboxSpec::listen_ports`. Connections the agent makes to 127.0.0.1 on those
    /// ports arrive here.
    pub listeners: Vec<TcpListener>,
    /// How much of the Landlock policy the kernel enforces.
    pub landlock: LandlockStatus,
    control: OwnedFd,
    /// A pidfd of the bottle's init (pid 1 of its pid namespace).
    init: Option<OwnedFd>,
}

/// The outcome of a bottle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BottleExit {
    /// The agent exited with this code.
    Exited(i32),
    /// A signal killed the agent.
    Signaled(i32),
    /// The agent command could not be executed: `code` is 127 when it was not found and
    /// 126 otherwise.
    ExecFailed {
        /// 126 or 127.
        code: i32,
        /// The program and the error.
        message: String,
    },
    /// A set-up step failed after the listeners were sent (such as starting the agent
    /// process).
    SetupFailed {
        /// The step, as a verb phrase.
        step: String,
        /// The error.
        message: String,
    },
    /// The helper ended without a report from the bottle, for example because it was
    /// killed.
    HelperEnded(ExitStatus),
}

impl BottleExit {
    /// The exit code `bottle run` should use: the agent's code, 128 + a signal number,
    /// 126 or 127 for a command that could not run, and 125 for a set-up failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Exited(code) => *code,
            Self::Signaled(signal) => 128 + signal,
            Self::ExecFailed { code, .. } => *code,
            Self::SetupFailed { .. } => 125,
            Self::HelperEnded(status) => {
                use std::os::unix::process::ExitStatusExt;
                status
                    .code()
                    .or(status.signal().map(|signal| 128 + signal))
                    .unwrap_or(125)
            }
        }
    }
}

impl Launched {
    /// Waits for the helper to exit and returns how the bottle ended.
    pub fn wait(&mut self) -> Result<BottleExit, SandboxError> {
        let status = self
            .child
            .wait()
            .map_err(SandboxError::io("wait for the sandbox helper"))?;
        let mut outcome = None;
        // Every process of the bottle side has exited or is dying with the helper, so the
        // socket reaches end of stream after the buffered reports.
        while let Some((report, _fds)) = protocol::receive(&self.control, RecvFlags::empty())
            .map_err(|error| SandboxError::Protocol(error.to_string()))?
        {
            let exit = match report {
                Report::Ready { .. } | Report::Init { .. } => continue,
                Report::SetupFailed { step, message } => BottleExit::SetupFailed { step, message },
                Report::ExecFailed { code, message } => BottleExit::ExecFailed { code, message },
                Report::AgentExited {
                    code: Some(code), ..
                } => BottleExit::Exited(code),
                Report::AgentExited {
                    signal: Some(signal),
                    ..
                } => BottleExit::Signaled(signal),
                Report::AgentExited { .. } => {
                    return Err(SandboxError::Protocol(
                        "an exit report without a status".into(),
                    ));
                }
            };
            outcome.get_or_insert(exit);
        }
        Ok(outcome.unwrap_or(BottleExit::HelperEnded(status)))
    }

    /// Kills every process of the bottle and returns once they are all gone.
    ///
    /// When the init of a pid namespace exits, the kernel kills every other process in
    /// the namespace and waits for them before the init itself is reported as exited,
    /// so a readable pidfd of the init means the namespace is empty.
    pub fn kill(&mut self) {
        if let Some(init) = &self.init
            && rustix::process::pidfd_send_signal(init, rustix::process::Signal::KILL).is_ok()
        {
            let mut fds = [rustix::event::PollFd::new(
                init,
                rustix::event::PollFlags::IN,
            )];
            while let Err(rustix::io::Errno::INTR) = rustix::event::poll(&mut fds, None) {}
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` to the helper, which forwards `SIGINT`, `SIGTERM`, `SIGHUP`,
    /// `SIGQUIT`, `SIGUSR1` and `SIGUSR2` to the agent. `SIGKILL` kills the whole bottle.
    pub fn signal(&self, signal: i32) -> std::io::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).expect("PIDs fit pid_t");
        crate::sys::kill(pid, signal)
    }
}

/// Starts `exe __sandbox-init`, sends it `spec`, and returns once the bottle has reported
/// its listeners, which means that every set-up step succeeded and the agent is starting.
///
/// The helper inherits the launcher's standard input, output and error, so an interactive
/// agent gets the terminal. Its environment is cleared: nothing of the launcher's
/// environment reaches the bottle but `spec.env`. The helper is killed when the thread
/// that called `launch` exits (`PR_SET_PDEATHSIG`), so call it from the launcher's main
/// thread.
pub fn launch(exe: &Path, spec: &SandboxSpec) -> Result<Launched, SandboxError> {
    spec.validate()?;
    if spec.listen_ports.len() > MAX_LISTENERS {
        return Err(SandboxError::InvalidSpec(format!(
            "{} listeners requested, at most {MAX_LISTENERS} are supported",
            spec.listen_ports.len()
        )));
    }
    let spec_json = serde_json::to_vec(spec).map_err(|error| {
        SandboxError::InvalidSpec(format!("the spec cannot be encoded: {error}"))
    })?;

    let (control, helper_control) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|error| SandboxError::io("create the control socket")(error.into()))?;
    let (spec_read, spec_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|error| SandboxError::io("create the spec pipe")(error.into()))?;

    let mut command = Command::new(exe);
    command.arg(INIT_ARG).env_clear();
    pass_fds(&mut command, vec![helper_control, spec_read]);
    kill_with_parent(&mut command);
    let spawned = command.spawn();
    // Dropping the command closes the launcher's copies of the helper's descriptors, so
    // that end of stream on the control socket means the bottle side is gone.
    drop(command);
    let mut child = spawned.map_err(|source| SandboxError::Spawn {
        exe: exe.to_path_buf(),
        source,
    })?;

    // A write error means the helper already exited, and its report or status gives the
    // reason.
    let _ = std::fs::File::from(spec_write).write_all(&spec_json);

    // The helper reports the init's pid before the init reports anything, since the
    // init starts only after the helper's report is sent.
    let mut received = protocol::receive(&control, RecvFlags::empty());
    let mut init = None;
    if let Ok(Some((Report::Init { pid }, _))) = &received {
        // The init cannot have been reaped yet: its parent, the helper, waits for a
        // report from it first. So the pid still names the bottle's init.
        init = rustix::process::Pid::from_raw(*pid)
            .and_then(|pid| rustix::process::pidfd_open(pid, PidfdFlags::empty()).ok());
        received = protocol::receive(&control, RecvFlags::empty());
    }
    let fail = |child: &mut Child, error: SandboxError| {
        let _ = child.kill();
        let _ = child.wait();
        Err(error)
    };
    match received {
        Ok(Some((Report::Ready { landlock }, fds))) => {
            if fds.len() != spec.listen_ports.len() {
                let error = SandboxError::Protocol(format!(
                    "received {} listeners for {} ports",
                    fds.len(),
                    spec.listen_ports.len()
                ));
                return fail(&mut child, error);
            }
            let listeners = fds.into_iter().map(TcpListener::from).collect();
            Ok(Launched {
                child,
                listeners,
                landlock,
                control,
                init,
            })
        }
        Ok(Some((Report::SetupFailed { step, message }, _))) => {
            let _ = child.wait();
            Err(SandboxError::Setup { step, message })
        }
        Ok(Some((other, _))) => fail(
            &mut child,
            SandboxError::Protocol(format!("unexpected first report {other:?}")),
        ),
        Ok(None) => {
            let status = child
                .wait()
                .map_err(SandboxError::io("wait for the sandbox helper"))?;
            Err(SandboxError::HelperExited { status })
        }
        Err(error) => fail(&mut child, SandboxError::Protocol(error.to_string())),
    }
}

/// Makes `fds` the file descriptors 3, 4, ... of the process `command` starts, in order.
/// Every other descriptor the launcher opened through the standard library stays
/// close-on-exec. Use it to hand the bottle's listeners to the sidecar.
///
/// # Panics
/// When given more than 64 descriptors.
pub fn pass_fds(command: &mut Command, fds: Vec<OwnedFd>) {
    assert!(
        fds.len() <= MAX_PASSED_FDS,
        "pass_fds places at most {MAX_PASSED_FDS} descriptors"
    );
    // SAFETY: the hook runs between fork and exec, and calls only fcntl and dup2, which are
    // async-signal-safe; it allocates nothing.
    unsafe {
        command.pre_exec(move || place_fds(&fds));
    }
}

fn place_fds(fds: &[OwnedFd]) -> std::io::Result<()> {
    let first = 3;
    let count = libc::c_int::try_from(fds.len()).expect("at most MAX_PASSED_FDS");
    let mut copies = [-1; MAX_PASSED_FDS];
    // Copy every source above the target range first, so that placing one descriptor
    // cannot overwrite a source that is still to be placed.
    for (copy, fd) in copies.iter_mut().zip(fds) {
        // SAFETY: F_DUPFD_CLOEXEC on an open descriptor has no memory effects.
        *copy = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, first + count) };
        if *copy == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    for (target, copy) in (first..).zip(&copies[..fds.len()]) {
        // SAFETY: dup2 on open descriptors has no memory effects; the new descriptor
        // does not have FD_CLOEXEC, so it survives exec.
        if unsafe { libc::dup2(*copy, target) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Makes the process `command` starts receive `SIGKILL` when the calling thread exits,
/// and refuses to start it when the caller is already gone.
pub fn kill_with_parent(command: &mut Command) {
    let parent = rustix::process::getpid();
    // SAFETY: the hook calls only prctl and getppid, which are async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent.as_raw_nonzero().get() {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Sets `PR_SET_PDEATHSIG(SIGKILL)` on the calling process, so that it dies with the
/// thread that started it. Prefer [`kill_with_parent`] on the `Command`, which also
/// covers the time before the child runs this.
pub fn die_with_parent() -> Result<(), SandboxError> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(|error| SandboxError::io("set the parent-death signal")(error.into()))?;
    if rustix::process::getppid().is_none_or(|pid| pid.is_init()) {
        return Err(SandboxError::io("set the parent-death signal")(
            std::io::Error::other("the parent process already exited"),
        ));
    }
    Ok(())
}

/// Claims the listening TCP socket inherited as file descriptor `fd` (see [`pass_fds`])
/// and marks it close-on-exec. Call it once per descriptor, early, before anything else in
/// the process could own that number.
pub fn take_inherited_listener(fd: i32) -> Result<TcpListener, SandboxError> {
    let invalid = |reason: &str| SandboxError::InvalidInheritedFd {
        fd,
        reason: reason.to_owned(),
    };
    if fd < 3 {
        return Err(invalid(
            "descriptors 0 to 2 are standard input, output and error",
        ));
    }
    // SAFETY: F_GETFD on any number is harmless; it fails with EBADF when closed.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(invalid("it is not open"));
    }
    // SAFETY: the descriptor is open (checked above), and the borrow ends in this function.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    check_listener(borrowed).map_err(|reason| invalid(&reason))?;
    rustix::io::fcntl_setfd(borrowed, rustix::io::FdFlags::CLOEXEC)
        .map_err(|error| invalid(&error.to_string()))?;
    // SAFETY: the descriptor is open, and the caller hands it over. The function contract
    // requires one claim per descriptor.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(TcpListener::from(owned))
}

fn check_listener(fd: BorrowedFd<'_>) -> Result<(), String> {
    use rustix::net::sockopt;
    let socket_type = sockopt::socket_type(fd).map_err(|_| "it is not a socket".to_owned())?;
    let domain = sockopt::socket_domain(fd).map_err(|error| error.to_string())?;
    let listening = sockopt::socket_acceptconn(fd).map_err(|error| error.to_string())?;
    if socket_type != SocketType::STREAM
        || !(domain == AddressFamily::INET || domain == AddressFamily::INET6)
    {
        return Err("it is not a TCP socket".to_owned());
    }
    if !listening {
        return Err("it is not listening".to_owned());
    }
    Ok(())
}
