//! The bottle's pid 1: it finishes the set-up inside the new namespaces, starts the agent,
//! reaps zombies, forwards signals to the agent, and exits with the agent's status. When
//! it exits, the kernel kills every other process of the pid namespace.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::{AsFd, OwnedFd};

use rustix::process::{Pid, WaitOptions};

use crate::helper::{AGENT_ID, FORWARDED_SIGNALS, exit_code_of};
use crate::protocol::{self, Report};
use crate::step::{Context, StepError, report_and_forget};
use crate::sys::{self, Forked, SignalSet};
use crate::{SandboxSpec, exec, mounts, restrict};

/// The state the helper hands to the init through the copy of its memory.
pub(crate) struct InitContext {
    pub(crate) spec: SandboxSpec,
    pub(crate) control: OwnedFd,
    /// Read end of the pipe on which the helper reports that the id maps are written.
    pub(crate) sync: OwnedFd,
    /// A pidfd of the helper, to detect that it died before `PR_SET_PDEATHSIG` was set.
    pub(crate) helper: OwnedFd,
    /// Whether the agent should take the terminal's foreground.
    pub(crate) foreground: bool,
    /// The blocked signals the init waits for.
    pub(crate) signals: SignalSet,
}

/// Runs the init and returns its exit code.
pub(crate) fn run(context: InitContext) -> i32 {
    match set_up(&context) {
        Ok(agent) => supervise(&context, agent),
        Err(error) => {
            error.report(Some(context.control.as_fd()));
            125
        }
    }
}

fn set_up(context: &InitContext) -> Result<libc::pid_t, StepError> {
    let mut byte = [0u8; 1];
    let read = std::fs::File::from(context.sync.try_clone().step("wait for the helper")?)
        .read(&mut byte)
        .step("wait for the helper")?;
    if read == 0 {
        return Err(StepError::new("wait for the helper", "the helper exited"));
    }

    let sources = mounts::open_sources(&context.spec)?;
    become_agent()?;
    // Set after the id change, which clears the parent-death signal.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .step("set the parent-death signal")?;
    if helper_has_exited(&context.helper) {
        return Err(StepError::new("start the init", "the helper exited"));
    }
    // Leave the launcher's process group, so that signals sent to that group reach the
    // agent only once, through the helper.
    rustix::process::setpgid(None, None).step("create a process group")?;

    mounts::build_root(&context.spec, sources)?;
    rustix::system::sethostname(context.spec.hostname.as_bytes()).step("set the host name")?;
    sys::set_interface_up(c"lo").step("bring up the loopback interface")?;
    let listeners = context
        .spec
        .listen_ports
        .iter()
        .map(|&port| {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port))
                .step(&format!("listen on 127.0.0.1:{port}"))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let landlock = restrict::apply(&context.spec)?;

    let fds: Vec<_> = listeners.iter().map(AsFd::as_fd).collect();
    protocol::send(context.control.as_fd(), &Report::Ready { landlock }, &fds)
        .step("send the listeners to the launcher")?;
    drop(fds);
    drop(listeners);

    match sys::fork().step("start the agent process")? {
        Forked::Child => {
            exec::run_agent(&context.spec, context.control.as_fd(), context.foreground)
        }
        Forked::Parent(pid) => Ok(pid),
    }
}

/// Switches to the agent's ids. The init keeps its capabilities in the bottle's user
/// namespace, because no id inside maps to root, so the kernel's root-to-user transition
/// that clears them never applies.
fn become_agent() -> Result<(), StepError> {
    let gid = rustix::process::Gid::from_raw(AGENT_ID);
    let uid = rustix::process::Uid::from_raw(AGENT_ID);
    rustix::thread::set_thread_res_gid(gid, gid, gid).step("switch to the agent's group")?;
    rustix::thread::set_thread_res_uid(uid, uid, uid).step("switch to the agent's user")?;
    Ok(())
}

fn helper_has_exited(pidfd: &OwnedFd) -> bool {
    let mut poll = [libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(pidfd),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: `poll` points to one initialized pollfd, and the length is one.
    let ready = unsafe { libc::poll(poll.as_mut_ptr(), 1, 0) };
    ready != 0
}

/// Waits for signals: forwards the forwarded ones to the agent, and on `SIGCHLD` reaps
/// every exited child until the agent is among them.
// TODO(tty): a stopped agent (Ctrl-Z) is not reported, because waitpid runs without
// WUNTRACED, so the terminal stays with the stopped process group.
fn supervise(context: &InitContext, agent: libc::pid_t) -> i32 {
    loop {
        let signal = context.signals.wait().unwrap_or(libc::SIGCHLD);
        if FORWARDED_SIGNALS.contains(&signal) {
            let _ = sys::kill(agent, signal);
            continue;
        }
        if signal != libc::SIGCHLD {
            continue;
        }
        loop {
            // `wait`, not `waitpid(None)`: the latter is pid 0, the caller's process group only.
            match rustix::process::wait(WaitOptions::NOHANG) {
                Ok(Some((pid, status))) if pid == Pid::from_raw(agent).expect("positive") => {
                    let report = Report::AgentExited {
                        code: status.exit_status(),
                        signal: status.terminating_signal(),
                    };
                    report_and_forget(context.control.as_fd(), &report);
                    return i32::from(exit_code_of(status));
                }
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(_) => return 125,
            }
        }
    }
}
