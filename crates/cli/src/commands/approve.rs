//! `bottle approve ID`, `bottle deny ID --reason R` and `bottle supervise --list`: the
//! operator's side of the queue of held requests under `<config>/state/<slug>/queue/`.
//!
//! These commands run on the host, outside every bottle, and the queue lives in the
//! config directory that no bottle can see, so an agent cannot approve its own request.

use std::path::PathBuf;

use bottle_manifest::Sources;
use bottle_queue::{Item, Verdict};

use crate::exit::Exit;

/// Approves held item `id`: the sidecar forwards the request.
pub fn approve(id: &str) -> Exit {
    decide(id, Verdict::Approve)
}

/// Denies held item `id`: the agent receives a refusal that includes `reason`.
pub fn deny(id: &str, reason: &str) -> Exit {
    decide(id, Verdict::deny(reason))
}

fn decide(id: &str, verdict: Verdict) -> Exit {
    let Some(config) = config_dir() else {
        return Exit::Failure;
    };
    match bottle_queue::decide(&config, id, verdict) {
        Ok((item, decision)) => {
            let line = item.summary.line();
            match decision.verdict {
                Verdict::Approve => {
                    println!("approved {} in bottle {}: {line}", item.id, item.slug);
                    if item.kind == bottle_queue::Kind::Dlp {
                        println!(
                            "the values it carries may now go to {} without a hold until the \
                             bottle stops",
                            item.summary.host
                        );
                    }
                }
                Verdict::Deny { reason } => println!(
                    "denied {} in bottle {}: {line}; reason: {reason}",
                    item.id, item.slug
                ),
            }
            Exit::Success
        }
        Err(err) => {
            eprintln!("bottle: {err}");
            Exit::Failure
        }
    }
}

/// Prints the pending items of every bottle, as lines or as a JSON array.
pub fn list(json: bool) -> Exit {
    let Some(config) = config_dir() else {
        return Exit::Failure;
    };
    let items = match bottle_queue::pending(&config) {
        Ok(items) => items,
        Err(err) => {
            eprintln!("bottle: {err}");
            return Exit::Failure;
        }
    };
    if json {
        let text = serde_json::to_string_pretty(&items).expect("queue items serialize to JSON");
        println!("{text}");
    } else if items.is_empty() {
        println!("no held requests");
    } else {
        for item in &items {
            println!("{}", describe(item));
        }
    }
    Exit::Success
}

/// One line per item: id, bottle, kind, seconds left and the sanitized summary.
fn describe(item: &Item) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let left = item.expires_unix.saturating_sub(now);
    format!(
        "{}  {}  {}  {left:>4} s left  {}",
        item.id,
        item.slug,
        item.kind,
        item.summary.line()
    )
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
