//! Where bottle and agent files are read from: the trust boundary.
//!
//! Bottles carry credentials, routes and remotes, so they are read only from the
//! user's config directory. Agents are read from the config directory and from the
//! current repository's `.bot-bottle/agents`; the user's own agent wins a name clash.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::names::is_plain_name;

/// The environment variable that overrides the config directory.
pub const CONFIG_DIR_ENV: &str = "BOT_BOTTLE_HOME";

/// The directories files are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// The config directory: `$BOT_BOTTLE_HOME`, or `~/.bot-bottle`.
    pub config_dir: PathBuf,
    /// The top level of the current git repository, if any.
    pub repo_root: Option<PathBuf>,
}

/// Where an agent's file was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLocation {
    /// The file that defines the agent.
    pub file: PathBuf,
    /// Whether the file is in the repository rather than the config directory.
    pub from_repository: bool,
    /// The repository's file of the same name, hidden by the user's own file.
    pub shadowed: Option<PathBuf>,
}

impl Sources {
    /// Finds the config directory from the environment and the repository around `cwd`.
    pub fn discover(cwd: &Path) -> Result<Sources, Error> {
        let config_dir = match std::env::var_os(CONFIG_DIR_ENV).filter(|value| !value.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => {
                let home = std::env::var_os("HOME").filter(|value| !value.is_empty());
                PathBuf::from(home.ok_or(Error::NoConfigDir)?).join(".bot-bottle")
            }
        };
        Ok(Sources {
            config_dir,
            repo_root: find_repo_root(cwd),
        })
    }

    /// The directory of bottle files.
    pub fn bottles_dir(&self) -> PathBuf {
        self.config_dir.join("bottles")
    }

    /// The directory of the user's agent files.
    pub fn agents_dir(&self) -> PathBuf {
        self.config_dir.join("agents")
    }

    /// The directory of the repository's agent files, if there is a repository.
    pub fn repo_agents_dir(&self) -> Option<PathBuf> {
        self.repo_root
            .as_ref()
            .map(|root| root.join(".bot-bottle").join("agents"))
    }

    /// The file that defines bottle `name`.
    pub fn bottle_file(&self, name: &str) -> Result<PathBuf, Error> {
        check_name("bottle", name)?;
        Ok(self.bottles_dir().join(format!("{name}.md")))
    }

    /// Finds the file of agent `name`: the user's own, else the repository's.
    pub fn find_agent(&self, name: &str) -> Result<AgentLocation, Error> {
        check_name("agent", name)?;
        let file_name = format!("{name}.md");
        let user_file = self.agents_dir().join(&file_name);
        let repo_file = self.repo_agents_dir().map(|dir| dir.join(&file_name));
        let repo_file = repo_file.filter(|file| file.is_file());

        if user_file.is_file() {
            return Ok(AgentLocation {
                file: user_file,
                from_repository: false,
                shadowed: repo_file,
            });
        }
        if let Some(file) = repo_file {
            self.check_inside_repository(&file)?;
            return Ok(AgentLocation {
                file,
                from_repository: true,
                shadowed: None,
            });
        }
        let mut looked_in = vec![user_file];
        looked_in.extend(self.repo_agents_dir().map(|dir| dir.join(&file_name)));
        Err(Error::AgentNotFound {
            name: name.to_string(),
            looked_in,
        })
    }

    /// Rejects a repository agent file that resolves (through symlinks) outside the
    /// repository, so a repository cannot make the loader read arbitrary host files.
    pub fn check_inside_repository(&self, file: &Path) -> Result<(), Error> {
        let Some(root) = &self.repo_root else {
            return Ok(());
        };
        let read_error = |source| Error::Read {
            file: file.to_path_buf(),
            source,
        };
        let real_root = root.canonicalize().map_err(read_error)?;
        let real_file = file.canonicalize().map_err(read_error)?;
        if real_file.starts_with(&real_root) {
            return Ok(());
        }
        Err(Error::Read {
            file: file.to_path_buf(),
            source: std::io::Error::other(format!(
                "the file links outside the repository, to {}",
                real_file.display()
            )),
        })
    }
}

/// Returns the top level of the git repository that holds `start`: the nearest
/// ancestor with a `.git` directory or file (a worktree or submodule).
pub fn find_repo_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(".git").exists())
        .map(Path::to_path_buf)
}

fn check_name(kind: &'static str, name: &str) -> Result<(), Error> {
    if is_plain_name(name) {
        return Ok(());
    }
    Err(Error::InvalidName {
        kind,
        name: name.escape_default().to_string(),
    })
}
