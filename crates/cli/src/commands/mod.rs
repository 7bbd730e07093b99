//! One module per subcommand.

use crate::cli::{Cli, Command};
use crate::exit::Exit;

pub fn dispatch(cli: Cli) -> Exit {
    match cli.command {
        Command::Run(_) | Command::Info(_) | Command::Check(_) | Command::Sidecar => {
            eprintln!("bottle: not implemented yet");
            Exit::Failure
        }
    }
}
