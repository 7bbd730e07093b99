//! Waiting on the two children of a launch: the sandbox helper and the sidecar.
//!
//! Each child is watched through a pidfd, so the launcher learns at once when either
//! exits without reaping the other. The sidecar dying stops the bottle; the bottle
//! ending stops the sidecar.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::{Child, ChildStdout, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use bottle_sandbox::BottleExit;

use crate::exit::Exit;

/// How long the sidecar may take to report that it is serving.
const SIDECAR_READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a stopped child may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The line the sidecar prints on its standard output once it serves.
pub const READY_LINE: &str = "ready";

/// A running sidecar.
#[derive(Debug)]
pub struct Sidecar {
    pub child: Child,
}

/// The end of a bottle: its own exit, or the sidecar's.
#[derive(Debug)]
pub enum Outcome {
    /// The bottle exited; the value is what `bottle run` exits with.
    Bottle(BottleExit),
    /// The sidecar exited first, and the bottle was killed.
    SidecarDied(ExitStatus),
}

/// Waits until the sidecar prints its ready line, or fails when it exits or takes
/// longer than the timeout.
pub fn wait_ready(mut stdout: ChildStdout) -> Result<()> {
    let deadline = Instant::now() + SIDECAR_READY_TIMEOUT;
    let mut received = Vec::new();
    let mut buffer = [0u8; 64];

    while !received.ends_with(b"\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "the sidecar did not report ready within {} s",
                SIDECAR_READY_TIMEOUT.as_secs()
            );
        }
        let mut fds = [PollFd::new(&stdout, PollFlags::IN)];
        poll(&mut fds, Some(&timespec(left))).context("cannot wait for the sidecar")?;
        if fds[0].revents().is_empty() {
            continue;
        }
        let read = stdout
            .read(&mut buffer)
            .context("cannot read from the sidecar")?;
        if read == 0 {
            bail!("the sidecar exited before it was ready; its error is above");
        }
        received.extend_from_slice(&buffer[..read]);
        if received.len() > 256 {
            bail!("the sidecar sent an unexpected start-up message");
        }
    }

    if received.trim_ascii() != READY_LINE.as_bytes() {
        bail!("the sidecar sent an unexpected start-up message");
    }
    Ok(())
}

/// Waits for the bottle or the sidecar to exit, then stops the other.
///
/// The first SIGINT is left to the agent, which shares the terminal's process group and
/// decides what it means. A second SIGINT, a SIGTERM or a SIGHUP stops the bottle: the
/// agent gets SIGTERM, and the whole bottle is killed if it is still running after the
/// grace period. The launcher then tears down as usual.
pub fn wait(
    mut bottle: bottle_sandbox::Launched,
    mut sidecar: Sidecar,
    signals: &Signals,
) -> Result<Outcome> {
    let interrupt_read = &signals.interrupt;
    let terminate_read = &signals.terminate;
    let bottle_fd = pidfd(&bottle.child)?;
    let sidecar_fd = pidfd(&sidecar.child)?;
    let mut interrupts = 0;
    let mut kill_at: Option<Instant> = None;

    let outcome = loop {
        let mut fds = [
            PollFd::new(&bottle_fd, PollFlags::IN),
            PollFd::new(&sidecar_fd, PollFlags::IN),
            PollFd::new(interrupt_read, PollFlags::IN),
            PollFd::new(terminate_read, PollFlags::IN),
        ];
        let timeout = kill_at.map(|at| timespec(at.saturating_duration_since(Instant::now())));
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(err) => return Err(err).context("cannot wait for the bottle"),
        }
        let bottle_done = !fds[0].revents().is_empty();
        let sidecar_done = !fds[1].revents().is_empty();
        let interrupted = !fds[2].revents().is_empty();
        let terminated = !fds[3].revents().is_empty();

        if bottle_done {
            let exit = bottle.wait().context("cannot reap the sandbox helper")?;
            stop(&mut sidecar.child, &sidecar_fd);
            break Outcome::Bottle(exit);
        }
        if sidecar_done {
            let status = sidecar.child.wait().context("cannot reap the sidecar")?;
            bottle.kill();
            break Outcome::SidecarDied(status);
        }
        if kill_at.is_some_and(|at| Instant::now() >= at) {
            eprintln!(
                "bottle: the agent did not stop within {} s; killing the bottle",
                STOP_GRACE.as_secs()
            );
            bottle.kill();
            let exit = bottle.wait().context("cannot reap the sandbox helper")?;
            stop(&mut sidecar.child, &sidecar_fd);
            break Outcome::Bottle(exit);
        }

        if interrupted {
            interrupts += drain(interrupt_read);
        }
        let stop_requested = interrupts >= 2 || (terminated && drain(terminate_read) > 0);
        if stop_requested && kill_at.is_none() {
            eprintln!("bottle: stopping the bottle");
            let _ = pidfd_send_signal(&bottle_fd, Signal::TERM);
            kill_at = Some(Instant::now() + STOP_GRACE);
        }
    };
    Ok(outcome)
}

/// The launcher's handlers for SIGINT, SIGTERM and SIGHUP, installed before anything is
/// started so that a signal during the launch still leads to an orderly teardown. Each
/// signal writes a byte to one of two pipes; dropping this removes the handlers.
#[derive(Debug)]
pub struct Signals {
    interrupt: std::os::unix::net::UnixStream,
    terminate: std::os::unix::net::UnixStream,
    ids: Vec<signal_hook::SigId>,
}

impl Signals {
    pub fn install() -> Result<Signals> {
        let (interrupt, interrupt_write) =
            std::os::unix::net::UnixStream::pair().context("cannot create the signal pipe")?;
        let (terminate, terminate_write) =
            std::os::unix::net::UnixStream::pair().context("cannot create the signal pipe")?;
        let mut ids = vec![
            signal_hook::low_level::pipe::register(SIGINT, interrupt_write)
                .context("cannot install signal handlers")?,
        ];
        for signal in [SIGTERM, SIGHUP] {
            let write = terminate_write
                .try_clone()
                .context("cannot create the signal pipe")?;
            ids.push(
                signal_hook::low_level::pipe::register(signal, write)
                    .context("cannot install signal handlers")?,
            );
        }
        for pipe in [&interrupt, &terminate] {
            pipe.set_nonblocking(true)
                .context("cannot create the signal pipe")?;
        }
        Ok(Signals {
            interrupt,
            terminate,
            ids,
        })
    }
}

impl Signals {
    /// Returns copies of the interrupt (SIGINT) and terminate (SIGTERM, SIGHUP) pipes,
    /// for a launcher that waits on them in an async runtime.
    pub fn pipes(
        &self,
    ) -> Result<(
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
    )> {
        Ok((
            self.interrupt
                .try_clone()
                .context("cannot copy the signal pipe")?,
            self.terminate
                .try_clone()
                .context("cannot copy the signal pipe")?,
        ))
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Kills a child and reaps it; used when a launch fails half-way.
pub fn kill_and_reap(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Asks a child to stop with SIGTERM and kills it after the grace period.
fn stop(child: &mut Child, child_fd: &OwnedFd) {
    if pidfd_send_signal(child_fd, Signal::TERM).is_err() {
        let _ = child.wait();
        return;
    }
    let mut fds = [PollFd::new(child_fd, PollFlags::IN)];
    let exited = poll(&mut fds, Some(&timespec(STOP_GRACE))).is_ok_and(|ready| ready > 0);
    if !exited {
        let _ = pidfd_send_signal(child_fd, Signal::KILL);
    }
    let _ = child.wait();
}

/// Empties a non-blocking signal pipe, which receives one byte per signal, and returns
/// how many signals arrived.
fn drain(mut pipe: &std::os::unix::net::UnixStream) -> usize {
    let mut buffer = [0u8; 32];
    let mut count = 0;
    while let Ok(read) = pipe.read(&mut buffer) {
        if read == 0 {
            break;
        }
        count += read;
    }
    count
}

fn pidfd(child: &Child) -> Result<OwnedFd> {
    let pid = Pid::from_child(child);
    pidfd_open(pid, PidfdFlags::empty())
        .with_context(|| format!("cannot open a pidfd for process {}", child.id()))
}

/// Maps how the bottle ended to the exit status of `bottle run`, printing why when
/// the agent did not simply exit.
pub fn exit_of(ended: &BottleExit) -> Exit {
    match ended {
        // The bottle prints why a command could not be executed.
        BottleExit::Exited(_) | BottleExit::Signaled(_) | BottleExit::ExecFailed { .. } => {}
        BottleExit::SetupFailed { step, message } => {
            eprintln!("bottle: sandbox set-up failed: cannot {step}: {message}");
            return Exit::Launcher;
        }
        BottleExit::HelperEnded(status) => {
            eprintln!("bottle: the sandbox helper ended without a report ({status})");
            return Exit::Launcher;
        }
    }
    let code = ended.exit_code();
    Exit::Agent(u8::try_from(code & 0xff).expect("masked to a byte"))
}

fn timespec(duration: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(duration.as_secs()).expect("timeouts are small"),
        tv_nsec: i64::from(duration.subsec_nanos()),
    }
}
