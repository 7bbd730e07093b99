//! Process exit codes, kept stable because scripts depend on them.

use std::process::ExitCode;

/// The exit status of a `bottle` command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The command succeeded.
    Success,
    /// The command failed (any command but `run`).
    Failure,
    /// The command line was invalid.
    Usage,
    /// `run`: the agent's own exit code, passed through.
    Agent(u8),
    /// `run`: `bottle` itself failed (invalid files, launch or teardown failure).
    Launcher,
    /// `run`: the command exists but cannot be executed.
    CannotExecute,
    /// `run`: the command was not found.
    NotFound,
}

impl Exit {
    /// Returns the numeric code the process exits with.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Agent(code) => code,
            Exit::Launcher => 125,
            Exit::CannotExecute => 126,
            Exit::NotFound => 127,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}
