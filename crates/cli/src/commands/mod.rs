//! One module per subcommand.

mod approve;
mod bridge;
mod check;
mod gc;
mod info;
mod init;
mod lifecycle;
mod plan;
mod run;
pub mod sidecar;

use crate::cli::{Cli, Command};
use crate::exit::Exit;

pub fn dispatch(cli: Cli) -> Exit {
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Info(args) => info::run(&args),
        Command::Run(args) if args.dry_run => plan::dry_run(&args),

        Command::Run(args) => run::run(&args),
        Command::Approve { id } => approve::approve(&id),
        Command::Deny { id, reason } => approve::deny(&id, &reason),
        // TODO(supervise): the interactive view is not built; both forms print the list.
        Command::Supervise { json, .. } => approve::list(json),
        Command::Gc => gc::run(),
        Command::Init => init::init(),
        Command::Completions { shell } => init::completions(shell),
        Command::Ls { json } => lifecycle::ls(json),
        Command::Logs {
            slug,
            follow,
            egress,
        } => lifecycle::logs(&slug, follow, egress),
        Command::Stop { slug } => lifecycle::stop(&slug),
        Command::Sidecar {
            listeners,
            unix_dir,
        } => sidecar::run(listeners, unix_dir.as_deref()),
        Command::Bridge { listen } => bridge::run(&listen),
    }
}
