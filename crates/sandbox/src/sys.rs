//! Thin wrappers over the system calls that rustix does not cover. Every `unsafe` block
//! of the helper lives here or next to a `pre_exec` hook.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The result of a `fork`-like call, seen from one side.
pub(crate) enum Forked {
    /// This is the new process.
    Child,
    /// This is the original process; the value is the new process's PID.
    Parent(libc::pid_t),
}

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// Creates a child process in new namespaces, like `fork` plus `unshare`. The child
/// continues from this call with a copy of the caller's memory.
pub(crate) fn clone_with_flags(flags: libc::c_int) -> io::Result<Forked> {
    // The raw system call with a null stack behaves like fork(2) with extra flags. Both
    // x86_64 and aarch64 take the flags first; the other arguments are unused when zero.
    let clone_flags =
        libc::c_ulong::try_from(flags | libc::SIGCHLD).expect("clone flags are non-negative");
    // SAFETY: the helper is single-threaded (checked by the caller), so the child's copy
    // of memory holds no lock that another thread owned, and it may keep running Rust code.
    let pid =
        unsafe { libc::syscall(libc::SYS_clone, clone_flags, 0usize, 0usize, 0usize, 0usize) };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(
            libc::pid_t::try_from(pid).expect("the kernel returns PIDs that fit pid_t"),
        )),
    }
}

/// `fork(2)`.
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: callers are single-threaded, so the child may keep running Rust code.
    match check(unsafe { libc::fork() })? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// `mount_setattr(2)` on the mount that `fd` refers to: sets `attributes`
/// (`MOUNT_ATTR_*`), on the whole tree below it when `recursive`.
pub(crate) fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    attributes: u64,
) -> io::Result<()> {
    let mut attr = libc::mount_attr {
        attr_set: attributes,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: the path is a valid C string, and `attr` is a live `mount_attr` whose size is
    // passed with it.
    let result = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &raw mut attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sets `IFF_UP` on the interface `name` of the current network namespace.
pub(crate) fn set_interface_up(name: &CStr) -> io::Result<()> {
    let socket = rustix::net::socket_with(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?;
    // SAFETY: `ifreq` is plain old data, and all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.to_bytes();
    if bytes.len() >= request.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (slot, byte) in request.ifr_name.iter_mut().zip(bytes) {
        *slot = libc::c_char::from_ne_bytes([*byte]);
    }
    // SAFETY: SIOCGIFFLAGS reads and writes one `ifreq`, which lives for the call.
    check(unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &raw mut request) })?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    let flags = unsafe { request.ifr_ifru.ifru_flags };
    request.ifr_ifru.ifru_flags =
        flags | libc::c_short::try_from(libc::IFF_UP).expect("IFF_UP fits a short");
    // SAFETY: as above, for SIOCSIFFLAGS.
    check(unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &raw mut request) })?;
    Ok(())
}

/// A set of signals.
#[derive(Clone, Copy)]
pub(crate) struct SignalSet(libc::sigset_t);

impl SignalSet {
    pub(crate) fn new(signals: &[libc::c_int]) -> Self {
        // SAFETY: sigemptyset initializes the set. sigaddset fails only for an invalid signal
        // number, which leaves the set unchanged.
        unsafe {
            let mut set = std::mem::zeroed();
            libc::sigemptyset(&raw mut set);
            for &signal in signals {
                libc::sigaddset(&raw mut set, signal);
            }
            Self(set)
        }
    }

    /// Blocks the signals of this set in the calling thread.
    pub(crate) fn block(&self) -> io::Result<()> {
        // SAFETY: the set is initialized; the old mask is not requested.
        let result =
            unsafe { libc::sigprocmask(libc::SIG_BLOCK, &raw const self.0, std::ptr::null_mut()) };
        check(result).map(drop)
    }

    /// Waits for one signal of this set, which must be blocked, and returns its number.
    pub(crate) fn wait(&self) -> io::Result<libc::c_int> {
        loop {
            // SAFETY: the set is initialized and `info` is not requested.
            let signal = unsafe { libc::sigwaitinfo(&raw const self.0, std::ptr::null_mut()) };
            match check(signal) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

/// Unblocks every signal and resets every handled or ignored signal to its default action,
/// so that the agent starts with the signal state of a fresh process.
pub(crate) fn reset_signals() -> io::Result<()> {
    for signal in 1..libc::SIGRTMIN() {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is a valid disposition for every catchable signal.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
    let empty = SignalSet::new(&[]);
    // SAFETY: the set is initialized; the old mask is not requested.
    let result =
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &raw const empty.0, std::ptr::null_mut()) };
    check(result).map(drop)
}

/// Resets the disposition of `signal` to its default action. A `SIGCHLD` ignored by an
/// ancestor stays ignored across `execve`, and would make the kernel reap children
/// before `waitpid` can report them.
pub(crate) fn default_signal(signal: libc::c_int) {
    // SAFETY: SIG_DFL is a valid disposition for every catchable signal.
    unsafe { libc::signal(signal, libc::SIG_DFL) };
}

/// Sends `signal` to process `pid`.
pub(crate) fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill has no memory effects.
    check(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// Makes process group `pgid` the foreground group of the terminal on standard input.
/// The caller blocks `SIGTTOU`, so that a background caller is not stopped.
pub(crate) fn set_foreground_group(pgid: libc::pid_t) -> io::Result<()> {
    // SAFETY: tcsetpgrp has no memory effects.
    check(unsafe { libc::tcsetpgrp(libc::STDIN_FILENO, pgid) }).map(drop)
}

/// Checks whether standard input is a terminal whose foreground process group is the
/// caller's.
pub(crate) fn stdin_terminal_is_ours() -> bool {
    // SAFETY: isatty, tcgetpgrp and getpgrp have no memory effects.
    unsafe {
        libc::isatty(libc::STDIN_FILENO) == 1
            && libc::tcgetpgrp(libc::STDIN_FILENO) == libc::getpgrp()
    }
}

/// `getpgrp(2)`.
pub(crate) fn process_group() -> libc::pid_t {
    // SAFETY: getpgrp has no memory effects, and POSIX defines no error for it.
    unsafe { libc::getpgrp() }
}

/// Marks every file descriptor from `first` up as close-on-exec.
pub(crate) fn set_cloexec_from(first: libc::c_uint) -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor flags.
    check(unsafe {
        libc::close_range(
            first,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_int,
        )
    })
    .map(drop)
}

/// Drops `capability` from the bounding set. Returns `Ok(false)` when the kernel does
/// not know that capability number.
pub(crate) fn drop_bounding_capability(capability: libc::c_ulong) -> io::Result<bool> {
    // SAFETY: PR_CAPBSET_DROP takes the capability number and no pointer.
    let result = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0) };
    match check(result) {
        Ok(_) => Ok(true),
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        Err(error) => Err(error),
    }
}

/// `execve(2)`. Returns only on failure.
pub(crate) fn execve(program: &CStr, argv: &[CString], env: &[CString]) -> io::Error {
    let mut argv_pointers: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_pointers.push(std::ptr::null());
    let mut env_pointers: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_pointers.push(std::ptr::null());
    // SAFETY: all three arguments are NUL-terminated strings or null-terminated arrays of
    // them that live until the call returns.
    unsafe {
        libc::execve(
            program.as_ptr(),
            argv_pointers.as_ptr(),
            env_pointers.as_ptr(),
        )
    };
    io::Error::last_os_error()
}

/// Ends the process at once, without running destructors or flushing buffers that a
/// forked copy of the parent's memory may hold.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}
