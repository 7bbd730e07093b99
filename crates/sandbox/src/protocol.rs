//! Reports sent from the bottle to the launcher over the control socket.
//!
//! The control socket is an `AF_UNIX` `SOCK_SEQPACKET` pair, so each report is one
//! datagram of JSON. The listener file descriptors travel with the `Ready` report as
//! `SCM_RIGHTS`.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};

/// The maximum size of one report; longer messages are cut before sending.
pub(crate) const MAX_REPORT_BYTES: usize = 16 * 1024;

/// The maximum number of listeners one bottle may request.
pub const MAX_LISTENERS: usize = 32;

/// How much of the file system policy Landlock enforces in the bottle. Landlock is
/// defense in depth: the mount namespace is what hides the host's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LandlockStatus {
    /// Every access right of the policy is enforced.
    FullyEnforced,
    /// The kernel's Landlock ABI lacks some access rights of the policy; the others are
    /// enforced.
    PartiallyEnforced,
    /// The kernel has no Landlock (too old, or not in the `lsm=` list).
    NotEnforced,
}

/// One report from the bottle side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Report {
    /// Sent by the helper: the host pid of the bottle's init, so that the launcher can
    /// kill the bottle and wait until its pid namespace is empty.
    Init { pid: i32 },
    /// Set-up finished; the listeners follow as `SCM_RIGHTS` in port order, and the agent
    /// is started next.
    Ready { landlock: LandlockStatus },
    /// A set-up step failed; the helper exits 125.
    SetupFailed { step: String, message: String },
    /// `execve` of the agent command failed: 127 not found, 126 any other error.
    ExecFailed { code: i32, message: String },
    /// The agent exited with `code`, or was killed by `signal`.
    AgentExited {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

/// Sends `report` with `fds` attached.
pub(crate) fn send(
    socket: BorrowedFd<'_>,
    report: &Report,
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(report).map_err(std::io::Error::other)?;
    bytes.truncate(MAX_REPORT_BYTES);

    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len().max(1)))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(std::io::Error::other(
            "the control message buffer is too small",
        ));
    }
    rustix::net::sendmsg(
        socket,
        &[IoSlice::new(&bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

/// Receives one report and the file descriptors attached to it. Returns `None` at end
/// of stream, which means every process on the bottle side has closed the socket.
pub(crate) fn receive(
    socket: impl AsFd,
    flags: RecvFlags,
) -> std::io::Result<Option<(Report, Vec<OwnedFd>)>> {
    let mut buffer = vec![0u8; MAX_REPORT_BYTES];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_LISTENERS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);

    let message = rustix::net::recvmsg(
        socket,
        &mut [IoSliceMut::new(&mut buffer)],
        &mut control,
        flags | RecvFlags::CMSG_CLOEXEC,
    )?;

    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if message.bytes == 0 && fds.is_empty() {
        return Ok(None);
    }
    if message
        .flags
        .intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC)
    {
        return Err(std::io::Error::other(
            "a report or its file descriptors were truncated",
        ));
    }
    let report = serde_json::from_slice(&buffer[..message.bytes])
        .map_err(|error| std::io::Error::other(format!("undecodable report: {error}")))?;
    Ok(Some((report, fds)))
}
