//! `bottle`: run a coding agent in an ephemeral sandbox whose only way out is a
//! sidecar it cannot touch.
//!
//! This binary only wires the crates together. Two hidden subcommands are the
//! processes a launch starts: `__sandbox-init` sets up the namespaces and must run
//! before any thread or async runtime exists (unsharing a user namespace fails in a
//! multi-threaded process), and `__sidecar` is the egress proxy outside the bottle.

mod cli;
mod commands;
mod exit;
mod launch;

use std::process::ExitCode;

use clap::Parser;

/// The first argument that selects the git gate's pre-receive hook.
pub const PRE_RECEIVE_ARG: &str = "__pre-receive";

fn main() -> ExitCode {
    // The sandbox helper is dispatched before clap and before anything can start a
    // thread, so that its `unshare` runs in a single-threaded process.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == bottle_sandbox::INIT_ARG)
    {
        return bottle_sandbox::init_main();
    }

    // git runs the gate's pre-receive hook, which hands the push to the sidecar.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == PRE_RECEIVE_ARG)
    {
        return bottle_gitgate::pre_receive_main();
    }

    let cli = cli::Cli::parse();
    commands::dispatch(cli).into()
}
