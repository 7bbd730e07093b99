//! `bottle gc`: revoke stranded deploy keys and remove the state of bottles whose
//! launcher is gone.

use std::path::Path;

use bottle_manifest::Sources;

use crate::exit::Exit;

pub fn run() -> Exit {
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(err) => {
            eprintln!("bottle: cannot read the current directory: {err}");
            return Exit::Failure;
        }
    };
    let sources = match Sources::discover(&cwd) {
        Ok(sources) => sources,
        Err(err) => {
            eprintln!("bottle: {err}");
            return Exit::Failure;
        }
    };
    let state_root = sources.config_dir.join("state");
    if !state_root.exists() {
        println!("nothing to collect");
        return Exit::Success;
    }

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("bottle: cannot start the async runtime: {err}");
            return Exit::Failure;
        }
    };
    let report = runtime.block_on(bottle_forge::gc(&state_root, &bottle_forge::env_token));
    for entry in &report.revoked {
        let key_id = entry
            .key_id
            .map_or_else(|| "unknown".to_owned(), |id| id.to_string());
        println!("revoked deploy key {key_id} of repo {}", entry.repo);
    }
    let keys_clean = match crate::launch::check_revocation(&report, "bottle gc") {
        Ok(()) => true,
        Err(err) => {
            eprintln!("bottle: {err:#}");
            false
        }
    };

    let removed = remove_orphans(&state_root);
    if report.revoked.is_empty() && removed == 0 && keys_clean {
        println!("nothing to collect");
    }
    if keys_clean {
        Exit::Success
    } else {
        Exit::Failure
    }
}

/// Removes the state directories of bottles whose launcher no longer runs and whose
/// journal contains no deploy key. Returns how many were removed.
fn remove_orphans(state_root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(state_root) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let dir = entry.path();
        let slug = entry.file_name().to_string_lossy().into_owned();
        if launcher_alive(&dir) {
            continue;
        }
        let journal = bottle_forge::Journal::in_dir(&dir);
        if journal.entries().is_ok_and(|entries| !entries.is_empty()) {
            continue;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                println!("removed the state of bottle {slug}, whose launcher is gone");
                removed += 1;
            }
            Err(err) => eprintln!("bottle: cannot remove {}: {err}", dir.display()),
        }
    }
    removed
}

/// Returns whether the launcher recorded in `<dir>/meta.json` still runs. A directory
/// without readable metadata counts as alive, so that a launch still being set up is
/// never removed.
fn launcher_alive(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join("meta.json")) else {
        return true;
    };
    let Ok(meta) = serde_json::from_str::<serde_json::Value>(&text) else {
        return true;
    };
    let Some(pid) = meta.get("launcher_pid").and_then(serde_json::Value::as_u64) else {
        return true;
    };
    // NOTE: a reused pid keeps an orphan until that process exits too.
    Path::new(&format!("/proc/{pid}")).exists()
}
