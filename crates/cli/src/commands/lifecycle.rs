//! `bottle ls`, `bottle logs` and `bottle stop`: the bottles recorded under
//! `<config>/state/`, their audit logs, and stopping one.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bottle_manifest::Sources;
use serde::{Deserialize, Serialize};

use crate::exit::Exit;

/// One bottle as `bottle ls` shows it.
#[derive(Debug, Serialize, Deserialize)]
struct Listed {
    slug: String,
    label: Option<String>,
    backend: String,
    agent: Option<String>,
    started_unix: u64,
    launcher_pid: u32,
    /// `running` while the launcher runs, `orphaned` after it died (`bottle gc`
    /// removes those).
    #[serde(default)]
    state: String,
}

/// Finds the config directory, printing why when it cannot.
fn config_dir() -> Option<PathBuf> {
    let found = std::env::current_dir()
        .map_err(|err| format!("cannot read the current directory: {err}"))
        .and_then(|cwd| Sources::discover(&cwd).map_err(|err| err.to_string()));
    match found {
        Ok(sources) => Some(sources.config_dir),
        Err(message) => {
            eprintln!("bottle: {message}");
            None
        }
    }
}

/// Reads every bottle's metadata, sorted by start time.
fn bottles(config: &Path) -> Vec<Listed> {
    let Ok(entries) = std::fs::read_dir(config.join("state")) else {
        return Vec::new();
    };
    let mut listed: Vec<Listed> = entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("meta.json")).ok())
        .filter_map(|text| serde_json::from_str::<Listed>(&text).ok())
        .map(|mut bottle| {
            let alive = Path::new(&format!("/proc/{}", bottle.launcher_pid)).exists();
            bottle.state = if alive { "running" } else { "orphaned" }.to_owned();
            bottle
        })
        .collect();
    listed.sort_by_key(|bottle| bottle.started_unix);
    listed
}

pub fn ls(json: bool) -> Exit {
    let Some(config) = config_dir() else {
        return Exit::Failure;
    };
    let listed = bottles(&config);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&listed).expect("a listing serializes")
        );
        return Exit::Success;
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    println!(
        "{:<24} {:<8} {:<16} {:>8}  STATE",
        "SLUG", "BACKEND", "AGENT", "AGE"
    );
    for bottle in &listed {
        println!(
            "{:<24} {:<8} {:<16} {:>8}  {}",
            bottle.slug,
            bottle.backend,
            bottle.agent.as_deref().unwrap_or("-"),
            format_age(now.saturating_sub(bottle.started_unix)),
            bottle.state
        );
    }
    Exit::Success
}

fn format_age(seconds: u64) -> String {
    match seconds {
        0..60 => format!("{seconds}s"),
        60..3600 => format!("{}m", seconds / 60),
        _ => format!("{}h", seconds / 3600),
    }
}

/// Checks that a slug names one directory and nothing else.
fn valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 64
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The audit logs `bottle logs` prints, in this order: the egress proxy's decisions and
/// the git gate's push decisions.
const AUDIT_LOGS: [&str; 2] = ["egress.jsonl", "git.jsonl"];

/// Prints a bottle's audit logs: `egress.jsonl`, then `git.jsonl` when the bottle has a
/// git gate (only the first with `egress_only`). With `follow`, prints the lines appended
/// to either while the bottle runs; every line carries its `time`, by which lines of the
/// two logs can be ordered.
pub fn logs(slug: &str, follow: bool, egress_only: bool) -> Exit {
    if !valid_slug(slug) {
        eprintln!("bottle: invalid bottle name {slug:?}; `bottle ls` lists the bottles");
        return Exit::Usage;
    }
    let Some(config) = config_dir() else {
        return Exit::Failure;
    };
    let dir = config.join("logs").join(slug);
    let count = if egress_only { 1 } else { AUDIT_LOGS.len() };
    let mut files: Vec<(PathBuf, Option<std::fs::File>)> = AUDIT_LOGS[..count]
        .iter()
        .map(|name| {
            let path = dir.join(name);
            let file = std::fs::File::open(&path).ok();
            (path, file)
        })
        .collect();
    if files.iter().all(|(_, file)| file.is_none()) {
        eprintln!(
            "bottle: no audit log for bottle {slug} in {}; `bottle ls` lists the running \
             bottles",
            dir.display()
        );
        return Exit::Failure;
    }

    let state = config.join("state").join(slug);
    let mut stdout = std::io::stdout();
    let mut buffer = Vec::new();
    loop {
        for (path, file) in &mut files {
            if file.is_none() {
                // The gate creates its log at start-up, which may come after ours.
                *file = std::fs::File::open(&*path).ok();
            }
            let Some(file) = file else {
                continue;
            };
            buffer.clear();
            if let Err(err) = file.read_to_end(&mut buffer) {
                eprintln!("bottle: cannot read {}: {err}", path.display());
                return Exit::Failure;
            }
            if stdout
                .write_all(&buffer)
                .and_then(|()| stdout.flush())
                .is_err()
            {
                // The reader went away, as with `bottle logs x | head`.
                return Exit::Success;
            }
        }
        if !follow || !state.exists() {
            return Exit::Success;
        }
        // The next read goes on from the current position, so it returns only the
        // lines appended in the meantime.
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn stop(slug: &str) -> Exit {
    if !valid_slug(slug) {
        eprintln!("bottle: invalid bottle name {slug:?}; `bottle ls` lists the bottles");
        return Exit::Usage;
    }
    let Some(config) = config_dir() else {
        return Exit::Failure;
    };
    let Some(bottle) = bottles(&config)
        .into_iter()
        .find(|bottle| bottle.slug == slug)
    else {
        eprintln!("bottle: no bottle named {slug}; `bottle ls` lists the bottles");
        return Exit::Failure;
    };
    if bottle.state != "running" {
        eprintln!("bottle: bottle {slug} is not running; `bottle gc` removes what it left");
        return Exit::Failure;
    }

    // The launcher stops the agent on SIGTERM, kills the bottle if the agent does not
    // exit within its grace period, and tears everything down.
    let pid = rustix::process::Pid::from_raw(i32::try_from(bottle.launcher_pid).unwrap_or(0));
    match pid.map(|pid| rustix::process::kill_process(pid, rustix::process::Signal::TERM)) {
        Some(Ok(())) => {
            println!("stopping bottle {slug}");
            Exit::Success
        }
        Some(Err(err)) => {
            eprintln!("bottle: cannot signal the launcher of bottle {slug}: {err}");
            Exit::Failure
        }
        None => {
            eprintln!("bottle: the metadata of bottle {slug} has an invalid launcher pid");
            Exit::Failure
        }
    }
}
