//! The native backend's sandbox: Linux namespaces, a private root file system, seccomp,
//! Landlock and resource limits, set up by a small single-threaded helper process.
//!
//! # Processes
//!
//! The launcher calls [`launch`], which starts `bottle __sandbox-init` (the helper) with an
//! empty environment, the control socket as descriptor 3 and the spec pipe as descriptor
//! 4. Standard input, output and error stay the user's terminal.
//!
//! 1. The helper stays in the host's namespaces. It clones the bottle's init into new
//!    user, mount, pid, network, IPC and UTS namespaces, and writes the init's
//!    `uid_map`/`gid_map` (`setgroups` denied) from outside.
//! 2. The init (pid 1 of the bottle) switches to uid and gid 1000, builds the root file
//!    system and pivots into it, sets the host name, and brings up `lo`. It then opens the
//!    requested listeners on 127.0.0.1, restricts itself, and sends `Ready` with the
//!    listeners (`SCM_RIGHTS`) to the launcher. A socket keeps the network namespace it was created
//!    in, so the sidecar can serve the bottle from outside.
//! 3. The init forks the agent, which takes the terminal's foreground when the launcher
//!    had it, and executes the command with `spec.env` only, in `/workspace`. The init
//!    then reaps zombies, forwards `SIGINT`, `SIGTERM`, `SIGHUP`, `SIGQUIT`, `SIGUSR1`
//!    and `SIGUSR2` to the agent, and exits with its status, which kills the rest of the
//!    pid namespace. The init dies with the helper (`PR_SET_PDEATHSIG`), and the helper
//!    with the launcher's thread.
//!
//! The helper exits with the agent's status (128 + the signal number for a signal), 126
//! when the command cannot be executed, 127 when it is not found, and 125 with a message
//! starting with `bottle: ` on standard error when set-up fails. Because an agent may
//! exit 125 itself, [`Launched::wait`] tells the cases apart from the reports on the
//! control socket.
//!
//! # Users
//!
//! Only one id is mapped: the agent is uid and gid 1000 (`agent`) inside. Run by a
//! normal user, 1000 maps to that user's own ids, so no setuid helper is needed. Run as
//! root (uid 0 of a user namespace that maps 65534, such as the host's), 1000 maps to [`ROOT_MODE_HOST_ID`] (65534, `nobody`) and root's supplementary
//! groups are dropped, so the agent can read no root-owned file; a launcher running as
//! root must make the workspace writable for that id ([`agent_host_ids`]). Every other
//! host id appears as the overflow id inside. In the rootless case the agent keeps the
//! user's supplementary groups, because an unprivileged process cannot drop them once
//! `setgroups` is denied; they only matter for files of the bound directories.
//!
//! # File system
//!
//! A tmpfs root, read-only after set-up, with read-only binds of `/usr`, `/bin`, `/sbin`
//! and `/lib*` (symbolic links stay links), a curated `/etc` without `shadow`, `gshadow`,
//! `sudoers`, `ssh` or `resolv.conf`, the workspace read-write at `/workspace`, tmpfs at
//! `/home/agent`, `/tmp` and `/dev/shm`, a fresh `/proc`, and a `/dev` with `null`,
//! `zero`, `full`, `random`, `urandom`, `tty` and a private `devpts`. The spec's extra
//! binds come last. Nothing else of the host is visible.
//!
//! # Restrictions
//!
//! Before the agent starts, the init sets the rlimits, `PR_SET_NO_NEW_PRIVS`, Landlock,
//! an empty capability set (bounding and ambient included) and the seccomp filter; the
//! agent inherits all of them. The mount namespace is the file system boundary, and
//! Landlock (ABI 6 policy, best effort) is defense in depth: a kernel without Landlock
//! does not stop the launch, and [`Launched::landlock`] reports what is enforced. The
//! seccomp filter rejects with `EPERM` the non-IP socket families (netlink, packet,
//! vsock and the rest), raw and other non-stream, non-datagram IP sockets, `ptrace`,
//! `bpf`, `perf_event_open`, the key-management calls, `userfaultfd`, `io_uring`,
//! namespace creation and `setns`, every mount call, `chroot`, module loading, `kexec`,
//! `reboot`, `swapon`, `acct`, `quotactl`, `open_by_handle_at`, `TIOCSTI` and
//! `TIOCLINUX` on terminals, and non-default personalities; `clone3` fails with
//! `ENOSYS` so that libc falls back to `clone`.

// The helper makes system calls that no safe wrapper covers (clone with namespace flags,
// mount_setattr, signal masks, pre_exec hooks). Each unsafe block carries a SAFETY comment.
#![allow(unsafe_code)]

mod error;
mod exec;
mod helper;
mod init;
mod launch;
mod mounts;
mod protocol;
mod restrict;
mod seccomp;
mod spec;
mod step;
mod sys;

pub use error::SandboxError;
pub use helper::{ROOT_MODE_HOST_ID, agent_host_ids, init_main};
pub use launch::{
    BottleExit, Launched, die_with_parent, kill_with_parent, launch, pass_fds,
    take_inherited_listener,
};
pub use protocol::{LandlockStatus, MAX_LISTENERS};
pub use spec::{BindMount, Limits, SandboxSpec};

pub(crate) use launch::{CONTROL_FD, SPEC_FD};

/// The first argument that selects the sandbox helper in the `bottle` binary.
pub const INIT_ARG: &str = "__sandbox-init";
