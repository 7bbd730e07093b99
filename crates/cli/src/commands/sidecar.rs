//! `bottle __sidecar`: the egress proxy of one bottle, started by the launcher.
//!
//! The configuration, which holds the token values and the CA key, arrives on
//! standard input so that it never appears in argv, the environment or a file. The
//! listening sockets, created inside the bottle's network namespace, arrive as
//! inherited file descriptors 3 and up.

use std::io::{IsTerminal, Read, Write};

use anyhow::{Context, Result, bail};

use crate::launch::SidecarSpec;

use crate::exit::Exit;

/// Upper bound on the configuration read from standard input.
const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// The first inherited listener's file descriptor.
const FIRST_LISTENER_FD: i32 = 3;

pub fn run(listener_count: u16) -> Exit {
    match serve(listener_count) {
        Ok(()) => Exit::Success,
        Err(err) => {
            eprintln!("bottle: sidecar: {err:#}");
            Exit::Failure
        }
    }
}

fn serve(listener_count: u16) -> Result<()> {
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

    let expected = 1 + u16::from(spec.gate.is_some());
    if listener_count != expected {
        bail!("received {listener_count} listeners, expected {expected}");
    }
    spec.proxy.validate().context("invalid egress policy")?;
    if let Some(gate) = &spec.gate {
        gate.validate().context("invalid git-gate configuration")?;
    }
    let proxy_listener = take_listener(FIRST_LISTENER_FD)?;
    let gate_listener = match spec.gate {
        Some(_) => Some(take_listener(FIRST_LISTENER_FD + 1)?),
        None => None,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bottle-sidecar")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let proxy_listener =
            tokio::net::TcpListener::from_std(proxy_listener).context("invalid listener")?;
        let proxy = tokio::spawn(bottle_proxy::serve(spec.proxy, proxy_listener));
        let gate = match (spec.gate, gate_listener) {
            (Some(config), Some(listener)) => {
                let listener =
                    tokio::net::TcpListener::from_std(listener).context("invalid listener")?;
                Some(tokio::spawn(bottle_gitgate::serve(config, listener)))
            }
            _ => None,
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

/// Takes an inherited listener and makes it non-blocking for the async runtime.
fn take_listener(fd: i32) -> Result<std::net::TcpListener> {
    let listener = bottle_sandbox::take_inherited_listener(fd).context("invalid listener")?;
    listener.set_nonblocking(true).context("invalid listener")?;
    Ok(listener)
}
