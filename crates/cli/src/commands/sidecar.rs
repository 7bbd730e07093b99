//! `bottle __sidecar`: the egress proxy of one bottle, started by the launcher.
//!
//! The configuration, which holds the token values and the CA key, arrives on
//! standard input so that it never appears in argv, the environment or a file. The
//! listening sockets, created inside the bottle's network namespace, arrive as
//! inherited file descriptors 3 and up. On the docker backend the sidecar creates unix
//! sockets in a directory instead, which the bottle's bridge forwards to.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::launch::SidecarSpec;

use crate::exit::Exit;

/// Upper bound on the configuration read from standard input.
const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// The first inherited listener's file descriptor.
const FIRST_LISTENER_FD: i32 = 3;

/// The proxy's socket in the `--unix-dir` directory.
pub const PROXY_SOCKET: &str = "proxy.sock";

/// The git gate's socket in the `--unix-dir` directory.
pub const GATE_SOCKET: &str = "gate.sock";

/// Where the sidecar's listeners come from.
enum Listeners {
    /// This many TCP listeners inherited as fds 3 and up.
    Inherited(u16),
    /// Unix listeners to create in this directory.
    UnixDir(PathBuf),
}

pub fn run(listener_count: Option<u16>, unix_dir: Option<&Path>) -> Exit {
    let listeners = match (listener_count, unix_dir) {
        (_, Some(dir)) => Listeners::UnixDir(dir.to_path_buf()),
        (Some(count), None) => Listeners::Inherited(count),
        (None, None) => {
            eprintln!("bottle: sidecar: give --listeners or --unix-dir");
            return Exit::Failure;
        }
    };
    match serve(listeners) {
        Ok(()) => Exit::Success,
        Err(err) => {
            eprintln!("bottle: sidecar: {err:#}");
            Exit::Failure
        }
    }
}

fn serve(listeners: Listeners) -> Result<()> {
    // The proxy and the gate decide what is worth printing, following the bottle's
    // `egress.log` level; their lines go to the launcher's stderr.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .with_max_level(tracing::Level::INFO)
        .try_init();

    let mut input = Vec::new();
    std::io::stdin()
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut input)
        .context("cannot read the configuration")?;
    if input.len() as u64 > MAX_CONFIG_BYTES {
        bail!("the configuration is larger than {MAX_CONFIG_BYTES} bytes");
    }
    let spec: SidecarSpec = serde_json::from_slice(&input).context("invalid configuration")?;
    input.fill(0);

    spec.proxy.validate().context("invalid egress policy")?;
    if let Some(gate) = &spec.gate {
        gate.validate().context("invalid git-gate configuration")?;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bottle-sidecar")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let (proxy, gate) = match listeners {
            Listeners::Inherited(count) => {
                let expected = 1 + u16::from(spec.gate.is_some());
                if count != expected {
                    bail!("received {count} listeners, expected {expected}");
                }
                let proxy_listener = tcp_listener(FIRST_LISTENER_FD)?;
                let proxy = tokio::spawn(bottle_proxy::serve(spec.proxy, proxy_listener));
                let gate = match spec.gate {
                    Some(config) => {
                        let listener = tcp_listener(FIRST_LISTENER_FD + 1)?;
                        Some(tokio::spawn(bottle_gitgate::serve(config, listener)))
                    }
                    None => None,
                };
                (proxy, gate)
            }
            Listeners::UnixDir(dir) => {
                let proxy_listener = unix_listener(&dir.join(PROXY_SOCKET))?;
                let proxy = tokio::spawn(bottle_proxy::serve(spec.proxy, proxy_listener));
                let gate = match spec.gate {
                    Some(config) => {
                        let listener = unix_listener(&dir.join(GATE_SOCKET))?;
                        Some(tokio::spawn(bottle_gitgate::serve(config, listener)))
                    }
                    None => None,
                };
                (proxy, gate)
            }
        };

        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "{}", crate::launch::READY_LINE);
        let _ = stdout.flush();

        // Either component ending ends the sidecar, and with it the bottle.
        match gate {
            None => proxy.await.context("the egress proxy panicked")?.context("the egress proxy failed"),
            Some(gate) => tokio::select! {
                result = proxy => result.context("the egress proxy panicked")?.context("the egress proxy failed"),
                result = gate => result.context("the git gate panicked")?.context("the git gate failed"),
            },
        }
    })
}

/// Takes an inherited listener for the async runtime.
fn tcp_listener(fd: i32) -> Result<tokio::net::TcpListener> {
    let listener = take_listener(fd)?;
    tokio::net::TcpListener::from_std(listener).context("invalid listener")
}

/// Creates a unix listener that any user may connect to: the bridge, which runs as
/// another user, reaches it through a bind mount of the socket file. The directory
/// holding it is private to the launcher.
fn unix_listener(path: &Path) -> Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;

    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(err).with_context(|| format!("cannot remove the stale {}", path.display()));
        }
        _ => {}
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("cannot open {} to the bridge", path.display()))?;
    Ok(listener)
}

/// Takes an inherited listener and makes it non-blocking for the async runtime.
fn take_listener(fd: i32) -> Result<std::net::TcpListener> {
    let listener = bottle_sandbox::take_inherited_listener(fd).context("invalid listener")?;
    listener.set_nonblocking(true).context("invalid listener")?;
    Ok(listener)
}
