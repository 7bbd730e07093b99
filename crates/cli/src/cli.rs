//! The command-line surface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run coding agents in sandboxes whose only way out is a sidecar they cannot touch.
#[derive(Debug, Parser)]
#[command(name = "bottle", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Resolve the plan, launch the bottle, attach to the agent and tear down.
    Run(RunArgs),
    /// Show the resolved plan of an agent and the file that set each value.
    Info(InfoArgs),
    /// Validate bottle and agent files and report every invalid one.
    Check(CheckArgs),
    /// Write an example bottle and agent to start from.
    Init,
    /// Print shell completions.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// List running bottles and the state left by crashed ones.
    Ls {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a bottle's audit logs (JSON lines): the egress log, then the git push log.
    Logs {
        /// The bottle's slug, as `bottle ls` shows it.
        slug: String,
        /// Keep printing new lines until the bottle ends.
        #[arg(long)]
        follow: bool,
        /// Print only the egress audit log, without the git push log.
        #[arg(long)]
        egress: bool,
    },
    /// Stop a running bottle: the agent gets SIGTERM, then the bottle is torn down.
    Stop {
        /// The bottle's slug, as `bottle ls` shows it.
        slug: String,
    },
    /// Approve a request held for the operator: the sidecar forwards it.
    Approve {
        /// The held item's id, as `bottle supervise --list` shows it.
        id: String,
    },
    /// Deny a request held for the operator: the agent gets a refusal with the reason.
    Deny {
        /// The held item's id, as `bottle supervise --list` shows it.
        id: String,
        /// Why, shown to the agent in the refusal.
        #[arg(long)]
        reason: String,
    },
    /// Show the requests of every bottle that are held for the operator.
    Supervise {
        /// Print the pending items and exit (the only mode so far).
        #[arg(long)]
        list: bool,
        /// Print the pending items as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke stranded deploy keys and remove the state of bottles whose launcher is gone.
    Gc,
    /// Internal: the egress proxy sidecar of one bottle.
    #[command(name = "__sidecar", hide = true)]
    Sidecar {
        /// Number of listening sockets inherited as fds 3 and up.
        #[arg(
            long,
            required_unless_present = "unix_dir",
            conflicts_with = "unix_dir"
        )]
        listeners: Option<u16>,
        /// Directory in which to create the `proxy.sock` and `gate.sock` listeners
        /// instead of inheriting them (the docker backend).
        #[arg(long, value_name = "DIR")]
        unix_dir: Option<PathBuf>,
    },
    /// Internal: forwards TCP ports on the bottle's loopback to the sidecar's unix
    /// sockets (the docker backend).
    #[command(name = "__bridge", hide = true)]
    Bridge {
        /// `ADDRESS:PORT=SOCKET`: listen on the address and forward to the socket.
        #[arg(long = "listen", value_name = "ADDRESS=SOCKET", required = true)]
        listen: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The agent to run; without it, the embedded default bottle runs a shell.
    pub agent: Option<String>,

    /// Bottle to use instead of the agent's own (repeatable; later ones win).
    #[arg(long = "bottle", value_name = "BOTTLE")]
    pub bottles: Vec<String>,

    /// Isolation backend.
    #[arg(long, value_enum, env = "BOT_BOTTLE_BACKEND", default_value_t = Backend::Native)]
    pub backend: Backend,

    /// Host directory mounted read-write as the workspace (default: a fresh directory
    /// removed with the bottle).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,

    /// Name for the bottle, used as its slug.
    #[arg(long)]
    pub label: Option<String>,

    /// Run the agent's non-interactive mode.
    #[arg(long, requires = "prompt")]
    pub headless: bool,

    /// The prompt for `--headless`.
    #[arg(long, requires = "headless")]
    pub prompt: Option<String>,

    /// Print the plan a launch would use, and exit.
    #[arg(long)]
    pub dry_run: bool,

    /// With `--dry-run`: print the plan as JSON.
    #[arg(long, requires = "dry_run")]
    pub json: bool,

    /// The command to run inside the bottle instead of the agent's own.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// Linux namespaces, seccomp and Landlock; needs no daemon.
    Native,
    /// A Docker container per bottle.
    Docker,
    /// A micro-VM per bottle.
    Vm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The agent whose plan to show.
    pub agent: String,

    /// The backend whose runtime to show.
    #[arg(long, value_enum, env = "BOT_BOTTLE_BACKEND", default_value_t = Backend::Native)]
    pub backend: Backend,

    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Files or directories to check (default: the config directory and the current
    /// repository's agents).
    pub paths: Vec<PathBuf>,
}
