//! `bottle gc`: revoke stranded deploy keys, and remove the containers and the state of
//! bottles whose launcher is gone.

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
    // Containers go first: their state directory names the launcher that owns them.
    let (containers_removed, containers_clean) = runtime.block_on(remove_orphan_containers());
    if !state_root.exists() {
        if containers_removed == 0 {
            println!("nothing to collect");
        }
        return if containers_clean {
            Exit::Success
        } else {
            Exit::Failure
        };
    }

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
    if report.revoked.is_empty() && removed == 0 && containers_removed == 0 && keys_clean {
        println!("nothing to collect");
    }
    if keys_clean && containers_clean {
        Exit::Success
    } else {
        Exit::Failure
    }
}

/// Removes the containers of docker bottles whose launcher no longer runs (their state
/// directory, a label of each container, is gone or names a dead launcher), then the
/// sidecar images of other `bottle` binaries that no container uses. Returns how many
/// containers and images were removed and whether every removal worked. Without a
/// reachable engine there is nothing to collect.
async fn remove_orphan_containers() -> (usize, bool) {
    let Ok(engine) = bottle_docker::Engine::connect().await else {
        return (0, true);
    };
    let containers = match engine.bottle_containers(None).await {
        Ok(containers) => containers,
        Err(err) => {
            eprintln!("bottle: {err}");
            return (0, false);
        }
    };
    let mut removed = 0;
    let mut clean = true;
    for container in containers {
        let orphan = match &container.state_dir {
            Some(dir) => !dir.exists() || !launcher_alive(dir),
            // Without the label the owner is unknown; such a container is left alone.
            None => false,
        };
        if !orphan {
            continue;
        }
        match engine.remove(&container.name).await {
            Ok(()) => {
                println!(
                    "removed container {} of bottle {}, whose launcher is gone",
                    container.name, container.slug
                );
                removed += 1;
            }
            Err(err) => {
                eprintln!("bottle: {err}");
                clean = false;
            }
        }
    }
    // Each `bottle` binary has its own sidecar image; those of other binaries that no
    // container uses are garbage.
    match crate::launch::remove_stale_sidecar_images(&engine).await {
        Ok(tags) => {
            for tag in &tags {
                println!("removed image {tag}, which no bottle uses");
            }
            removed += tags.len();
        }
        Err(err) => {
            eprintln!("bottle: {err:#}");
            clean = false;
        }
    }
    (removed, clean)
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
