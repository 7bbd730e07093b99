//! Serves the git gate on a loopback port from a JSON configuration, for
//! `scripts/bench-push`: `serve CONFIG.json 127.0.0.1:PORT`. The configuration is a
//! serialized `GateConfig`; its `hook_program` is normally the `bottle-gitgate-hook`
//! binary built next to this example. Logs go to stderr at `info` level.

use std::path::PathBuf;
use std::process::ExitCode;

use bottle_gitgate::GateConfig;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let (Some(config), Some(address)) = (args.next(), args.next()) else {
        eprintln!("usage: serve CONFIG.json 127.0.0.1:PORT");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(PathBuf::from(&config)) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("serve: cannot read {config}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let config: GateConfig = match serde_json::from_str(&text) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("serve: invalid configuration {config}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&address).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("serve: cannot listen on {address}: {error}");
                return ExitCode::FAILURE;
            }
        };
        match bottle_gitgate::serve(config, listener).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("serve: {error}");
                ExitCode::FAILURE
            }
        }
    })
}
