//! One module per subcommand.

mod check;
mod info;
mod plan;

use crate::cli::{Cli, Command};
use crate::exit::Exit;

pub fn dispatch(cli: Cli) -> Exit {
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Info(args) => info::run(&args),
        Command::Run(args) if args.dry_run => plan::dry_run(&args),

        // The launch itself lives in `crate::launch`.
        Command::Run(args) if !args.dry_run => not_implemented(),
        Command::Run(_) | Command::Sidecar { .. } => not_implemented(),
    }
}

fn not_implemented() -> Exit {
    eprintln!("bottle: not implemented yet");
    Exit::Failure
}
