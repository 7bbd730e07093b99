//! `bottle check`: validating files one by one, so one broken file hides no other.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Error;
use crate::file::{parse_agent, parse_bottle, read_text};
use crate::names::is_plain_name;
use crate::plan::AgentSummary;
use crate::resolve::Resolver;
use crate::sources::Sources;

/// Whether a file is a bottle or an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// A bottle file.
    Bottle,
    /// An agent file.
    Agent,
}

/// The outcome of checking one file.
#[derive(Debug)]
pub struct Checked {
    /// The file.
    pub file: PathBuf,
    /// What it was checked as.
    pub kind: FileKind,
    /// The problem, or `None` when the file is valid.
    pub error: Option<Error>,
}

/// Checks every bottle and agent in the config directory and the repository's agents.
pub fn check_all(sources: &Sources) -> Vec<Checked> {
    let mut files = Vec::new();
    files.extend(
        markdown_files(&sources.bottles_dir())
            .into_iter()
            .map(|f| (f, FileKind::Bottle)),
    );
    files.extend(
        markdown_files(&sources.agents_dir())
            .into_iter()
            .map(|f| (f, FileKind::Agent)),
    );
    if let Some(dir) = sources.repo_agents_dir() {
        files.extend(
            markdown_files(&dir)
                .into_iter()
                .map(|f| (f, FileKind::Agent)),
        );
    }
    files
        .into_iter()
        .map(|(file, kind)| check_one(sources, file, kind))
        .collect()
}

/// Checks files and directories given on the command line. A file whose parent
/// directory is named `bottles` is a bottle, any other an agent. A directory that
/// holds `bottles`, `agents` or `.bot-bottle/agents` is checked as a config directory
/// or repository; any other directory's `*.md` files are checked by its own name.
pub fn check_paths(sources: &Sources, paths: &[PathBuf]) -> Vec<Checked> {
    let mut results = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = false;
            for (sub, kind) in [
                ("bottles", FileKind::Bottle),
                ("agents", FileKind::Agent),
                (".bot-bottle/agents", FileKind::Agent),
            ] {
                let dir = path.join(sub);
                if dir.is_dir() {
                    found = true;
                    for file in markdown_files(&dir) {
                        results.push(check_one(sources, file, kind));
                    }
                }
            }
            if !found {
                let kind = kind_of_dir(path);
                for file in markdown_files(path) {
                    results.push(check_one(sources, file, kind));
                }
            }
        } else {
            // The kind comes from the parent directory's name, so a relative path such as
            // `./x.md` run inside `bottles/` is resolved first.
            let resolved = path.canonicalize().unwrap_or_else(|_| path.clone());
            let kind = resolved.parent().map_or(FileKind::Agent, kind_of_dir);
            results.push(check_one(sources, path.clone(), kind));
        }
    }
    results
}

fn kind_of_dir(dir: &Path) -> FileKind {
    if dir.file_name().is_some_and(|name| name == "bottles") {
        FileKind::Bottle
    } else {
        FileKind::Agent
    }
}

fn check_one(sources: &Sources, file: PathBuf, kind: FileKind) -> Checked {
    let error = check_file(sources, &file, kind).err();
    Checked { file, kind, error }
}

/// Checks one file, including the bottles it names or extends.
pub fn check_file(sources: &Sources, file: &Path, kind: FileKind) -> Result<(), Error> {
    let name = file
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or_default()
        .to_string();
    if !is_plain_name(&name) {
        let kind = match kind {
            FileKind::Bottle => "bottle",
            FileKind::Agent => "agent",
        };
        return Err(Error::InvalidName {
            kind,
            name: name.escape_default().to_string(),
        });
    }
    let from_repository = sources
        .repo_agents_dir()
        .is_some_and(|dir| file.parent() == Some(dir.as_path()));
    if from_repository {
        sources.check_inside_repository(file)?;
    }

    let text = read_text(file)?;
    let mut resolver = Resolver::new(sources);
    match kind {
        FileKind::Bottle => {
            let partial = parse_bottle(file, &text)?;
            resolver.plan_for_bottle_file(&name, file, partial)?;
        }
        FileKind::Agent => {
            let partial = parse_agent(file, &text)?;
            let summary = AgentSummary {
                name,
                file: file.to_path_buf(),
                from_repository,
                shadowed: None,
            };
            resolver.plan_for_agent(summary, partial, &[])?;
        }
    }
    Ok(())
}

/// Lists the `*.md` files of a directory, sorted; none if it cannot be read.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md") && path.is_file())
        .collect();
    files.sort();
    files
}
