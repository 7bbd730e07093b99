//! `bottle __sidecar`: the egress proxy of one bottle, started by the launcher.
//!
//! The configuration, which holds the token values and the CA key, arrives on
//! standard input so that it never appears in argv, the environment or a file. The
//! listening sockets, created inside the bottle's network namespace, arrive as
//! inherited file descriptors 3 and up.

use std::io::{Read, Write};

use anyhow::{Context, Result, bail};

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
    let mut input = Vec::new();
    std::io::stdin()
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut input)
        .context("cannot read the configuration")?;
    if input.len() as u64 > MAX_CONFIG_BYTES {
        bail!("the configuration is larger than {MAX_CONFIG_BYTES} bytes");
    }
    let config: bottle_proxy::SidecarConfig =
        serde_json::from_slice(&input).context("invalid configuration")?;
    input.fill(0);

    let mut listeners = Vec::new();
    for index in 0..i32::from(listener_count) {
        let listener = bottle_sandbox::take_inherited_listener(FIRST_LISTENER_FD + index)
            .context("invalid listener")?;
        listeners.push(listener);
    }

    bottle_proxy::run_sidecar(config, listeners, || {
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "{}", crate::launch::READY_LINE);
        let _ = stdout.flush();
    })
    .context("the egress proxy failed")
}
