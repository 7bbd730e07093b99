//! Tests of the schema, the merge rules and the loader, through the crate's internals.

mod agent_keys;
mod bottle_keys;
mod hostile;
mod loader;
mod merge;
mod route_keys;

use std::path::{Path, PathBuf};

use crate::agent::PartialAgent;
use crate::bottle::PartialBottle;
use crate::error::Error;
use crate::file::{parse_agent, parse_bottle};
use crate::sources::Sources;

/// Parses bottle front matter, panicking with the diagnostics if it is invalid.
pub(crate) fn bottle(yaml: &str) -> PartialBottle {
    match parse_bottle(Path::new("b.md"), &format!("---\n{yaml}---\n")) {
        Ok(bottle) => bottle,
        Err(error) => panic!("expected a valid bottle, got:\n{error}"),
    }
}

/// Parses bottle front matter that must be invalid, returning each diagnostic.
pub(crate) fn bottle_errors(yaml: &str) -> Vec<String> {
    match parse_bottle(Path::new("b.md"), &format!("---\n{yaml}---\n")) {
        Ok(bottle) => panic!("expected an invalid bottle, got {bottle:?}"),
        Err(error) => lines(&error),
    }
}

pub(crate) fn agent(yaml: &str, body: &str) -> PartialAgent {
    match parse_agent(Path::new("a.md"), &format!("---\n{yaml}---\n{body}")) {
        Ok(agent) => agent,
        Err(error) => panic!("expected a valid agent, got:\n{error}"),
    }
}

pub(crate) fn agent_errors(yaml: &str) -> Vec<String> {
    match parse_agent(Path::new("a.md"), &format!("---\n{yaml}---\n")) {
        Ok(agent) => panic!("expected an invalid agent, got {agent:?}"),
        Err(error) => lines(&error),
    }
}

pub(crate) fn lines(error: &Error) -> Vec<String> {
    error.to_string().lines().map(str::to_string).collect()
}

/// A temporary config directory and git repository.
pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    pub sources: Sources,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let config_dir = dir.path().join("config");
        let repo_root = dir.path().join("repo");
        std::fs::create_dir_all(config_dir.join("bottles")).expect("create bottles");
        std::fs::create_dir_all(config_dir.join("agents")).expect("create agents");
        std::fs::create_dir_all(repo_root.join(".git")).expect("create .git");
        std::fs::create_dir_all(repo_root.join(".bot-bottle/agents")).expect("create repo agents");
        Fixture {
            _dir: dir,
            sources: Sources {
                config_dir,
                repo_root: Some(repo_root),
            },
        }
    }

    pub fn bottle(&self, name: &str, yaml: &str) -> PathBuf {
        write(
            self.sources.bottles_dir().join(format!("{name}.md")),
            &format!("---\n{yaml}---\n"),
        )
    }

    pub fn agent(&self, name: &str, yaml: &str, body: &str) -> PathBuf {
        write(
            self.sources.agents_dir().join(format!("{name}.md")),
            &format!("---\n{yaml}---\n{body}"),
        )
    }

    pub fn repo_agent(&self, name: &str, yaml: &str, body: &str) -> PathBuf {
        let dir = self
            .sources
            .repo_agents_dir()
            .expect("the fixture has a repository");
        write(
            dir.join(format!("{name}.md")),
            &format!("---\n{yaml}---\n{body}"),
        )
    }
}

fn write(path: PathBuf, text: &str) -> PathBuf {
    std::fs::write(&path, text).expect("write a fixture file");
    path
}
