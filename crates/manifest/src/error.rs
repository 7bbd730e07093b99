//! Errors of loading and resolving bottle and agent files.

use std::fmt;
use std::path::PathBuf;

/// One problem in one file: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file that contains the problem.
    pub file: PathBuf,
    /// The line in the file (1-based), when the problem has one.
    pub line: Option<u64>,
    /// The key path, such as `egress.routes[0].host`, when the problem is in a value.
    pub key: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(formatter, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(formatter, ": {key}")?;
        }
        write!(formatter, ": {}", self.message)
    }
}

/// An error of loading or resolving bottle and agent files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("{}: cannot read the file: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A file is larger than the loader reads.
    #[error("{}: the file is larger than {max} bytes", file.display())]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// The limit in bytes.
        max: u64,
    },

    /// A file is invalid; every problem found in it is listed.
    #[error("{}", DiagnosticList(diagnostics))]
    Invalid {
        /// The problems, in file order.
        diagnostics: Vec<Diagnostic>,
    },

    /// A bottle name (in `extends`, an agent's `bottle`, or `--bottle`) has no file.
    #[error(
        "bottle `{name}` not found: {} does not exist (needed by {})",
        file.display(),
        Chain(chain)
    )]
    BottleNotFound {
        /// The missing bottle.
        name: String,
        /// The file that would define it.
        file: PathBuf,
        /// Who asked for it, outermost first.
        chain: Vec<String>,
    },

    /// No agent file has this name.
    #[error("agent `{name}` not found; looked for {}", Paths(looked_in))]
    AgentNotFound {
        /// The missing agent.
        name: String,
        /// The files that would define it.
        looked_in: Vec<PathBuf>,
    },

    /// Bottles extend each other in a loop.
    #[error("bottle `{name}` extends itself: {}", Chain(chain))]
    Cycle {
        /// The bottle that closes the loop.
        name: String,
        /// The chain of names that leads back to it.
        chain: Vec<String>,
    },

    /// `extends` chains are nested too deeply.
    #[error("`extends` is nested more than {max} levels deep: {}", Chain(chain))]
    TooDeep {
        /// The limit.
        max: usize,
        /// The chain that exceeded it.
        chain: Vec<String>,
    },

    /// A bottle or agent name is not a plain name.
    #[error(
        "invalid {kind} name `{name}`: a name starts with a letter or digit and holds only \
         letters, digits, `.`, `_` and `-`"
    )]
    InvalidName {
        /// `bottle` or `agent`.
        kind: &'static str,
        /// The name as given, with control characters escaped.
        name: String,
    },

    /// Neither `$BOT_BOTTLE_HOME` nor `$HOME` is set.
    #[error("cannot find the config directory: set BOT_BOTTLE_HOME or HOME")]
    NoConfigDir,
}

impl Error {
    /// Returns the diagnostics of an [`Error::Invalid`], or one built from this error.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            Error::Invalid { diagnostics } => diagnostics.clone(),
            Error::Read { file, source } => {
                vec![file_diagnostic(
                    file,
                    format!("cannot read the file: {source}"),
                )]
            }
            Error::TooLarge { file, max } => {
                vec![file_diagnostic(
                    file,
                    format!("the file is larger than {max} bytes"),
                )]
            }
            _ => Vec::new(),
        }
    }
}

fn file_diagnostic(file: &std::path::Path, message: String) -> Diagnostic {
    Diagnostic {
        file: file.to_path_buf(),
        line: None,
        key: None,
        message,
    }
}

struct DiagnosticList<'a>(&'a [Diagnostic]);

impl fmt::Display for DiagnosticList<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(formatter)?;
            }
            write!(formatter, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// Formats a chain of requesters as `agent reviewer -> bottle a -> bottle b`.
struct Chain<'a>(&'a [String]);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0.join(" -> "))
    }
}

struct Paths<'a>(&'a [PathBuf]);

impl fmt::Display for Paths<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths: Vec<String> = self
            .0
            .iter()
            .map(|path| path.display().to_string())
            .collect();
        formatter.write_str(&paths.join(" and "))
    }
}
