//! `bottle __bridge`: the docker backend's forwarder inside the bottle.
//!
//! It runs in the container that owns the bottle's network namespace, which has only a
//! loopback interface. Each `--listen ADDRESS:PORT=SOCKET` opens a TCP listener on the
//! loopback address and copies every accepted connection both ways to a new connection
//! to the sidecar's unix socket. The agent, which shares this namespace, reaches the
//! proxy and the gate at the same addresses as on the native backend, and sees no
//! socket of the sidecar.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};

use crate::exit::Exit;

pub fn run(listen: &[String]) -> Exit {
    match serve(listen) {
        Ok(()) => Exit::Success,
        Err(err) => {
            eprintln!("bottle: bridge: {err:#}");
            Exit::Failure
        }
    }
}

/// Parses `ADDRESS:PORT=SOCKET`.
fn parse(spec: &str) -> Result<(SocketAddr, PathBuf)> {
    let (address, socket) = spec
        .split_once('=')
        .ok_or_else(|| anyhow!("invalid --listen {spec:?}: expected ADDRESS:PORT=SOCKET"))?;
    let address: SocketAddr = address
        .parse()
        .with_context(|| format!("invalid --listen {spec:?}: bad address {address:?}"))?;
    Ok((address, PathBuf::from(socket)))
}

fn serve(listen: &[String]) -> Result<()> {
    let pairs = listen
        .iter()
        .map(|spec| parse(spec))
        .collect::<Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for (address, socket) in pairs {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address}"))?;
            tasks.spawn(forward(listener, socket));
        }
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "{}", crate::launch::READY_LINE);
        let _ = stdout.flush();

        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("cannot handle SIGTERM")?;
        tokio::select! {
            _ = terminate.recv() => Ok(()),
            Some(result) = tasks.join_next() => {
                result.context("a forwarder panicked")?
            }
        }
    })
}

/// Accepts connections on `listener` and forwards each to `socket`.
async fn forward(listener: tokio::net::TcpListener, socket: PathBuf) -> Result<()> {
    loop {
        let (mut client, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) if is_per_connection(&err) => continue,
            Err(err) => {
                // Descriptor exhaustion by the agent: wait for connections to close.
                if matches!(err.raw_os_error(), Some(23 | 24)) {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
                return Err(err).context("cannot accept a connection");
            }
        };
        let socket = socket.clone();
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            match tokio::net::UnixStream::connect(&socket).await {
                Ok(mut upstream) => {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                Err(err) => {
                    eprintln!("bottle: bridge: cannot reach {}: {err}", socket.display());
                }
            }
        });
    }
}

fn is_per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_splits_address_and_socket() {
        let (address, socket) = parse("127.0.0.1:3128=/run/bottle-sock/proxy.sock").expect("ok");
        assert_eq!(address.to_string(), "127.0.0.1:3128");
        assert_eq!(socket, PathBuf::from("/run/bottle-sock/proxy.sock"));
        assert!(parse("127.0.0.1:3128").is_err());
        assert!(parse("localhost:3128=/x").is_err());
    }
}
