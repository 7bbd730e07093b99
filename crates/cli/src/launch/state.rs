//! The on-disk footprint of one bottle: its state directory, which is removed after a
//! clean run, and its log directory, which outlives it.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

/// Logs of this many bottles are kept; older ones are removed at launch.
const KEPT_LOG_DIRS: usize = 50;

/// The directories of one bottle.
#[derive(Debug)]
pub struct BottleDirs {
    /// `<config>/state/<slug>`: metadata, the CA certificate, the fresh workspace.
    pub state: PathBuf,
    /// `<config>/logs/<slug>`: the egress audit log.
    pub logs: PathBuf,
}

/// Bottle metadata written to `<state>/meta.json` at launch.
#[derive(Debug, Serialize)]
pub struct Meta<'a> {
    pub slug: &'a str,
    pub backend: &'a str,
    /// The bottle's containers (docker backend).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub containers: &'a [String],
    pub agent: Option<&'a str>,
    pub bottles: &'a [String],
    pub label: Option<&'a str>,
    pub started_unix: u64,
    pub launcher_pid: u32,
}

impl BottleDirs {
    /// Creates the state and log directories of a new bottle, mode 0700. Fails when a
    /// bottle of the same slug exists, so two launches never share a directory.
    pub fn create(config_dir: &Path, slug: &str) -> io::Result<BottleDirs> {
        let state_root = config_dir.join("state");
        let logs_root = config_dir.join("logs");
        for dir in [config_dir, &state_root, &logs_root] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }

        let state = state_root.join(slug);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&state)
            .map_err(|err| {
                if err.kind() == io::ErrorKind::AlreadyExists {
                    io::Error::new(
                        err.kind(),
                        format!(
                            "a bottle named {slug:?} already exists ({}); choose another --label, \
                             or run `bottle gc` if its launcher is gone",
                            state.display()
                        ),
                    )
                } else {
                    err
                }
            })?;

        let logs = logs_root.join(slug);
        if let Err(err) = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&logs)
        {
            let _ = fs::remove_dir_all(&state);
            return Err(err);
        }
        prune_log_dirs(&logs_root, KEPT_LOG_DIRS);
        Ok(BottleDirs { state, logs })
    }

    pub fn write_meta(&self, meta: &Meta<'_>) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(meta).map_err(io::Error::other)?;
        let tmp = self.state.join("meta.json.tmp");
        fs::write(&tmp, json)?;
        fs::rename(tmp, self.state.join("meta.json"))
    }

    /// Creates a fresh, empty workspace inside the state directory.
    pub fn fresh_workspace(&self, owner: Option<u32>) -> io::Result<PathBuf> {
        let workspace = self.state.join("workspace");
        fs::DirBuilder::new().mode(0o700).create(&workspace)?;
        if let Some(uid) = owner {
            std::os::unix::fs::chown(&workspace, Some(uid), Some(uid))?;
        }
        Ok(workspace)
    }

    /// Writes a file the bottle may read (mode 0644), such as the CA certificate.
    pub fn write_public_file(&self, name: &str, contents: &[u8]) -> io::Result<PathBuf> {
        let path = self.state.join(name);
        fs::write(&path, contents)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        Ok(path)
    }

    /// Removes the state directory; the logs stay.
    pub fn remove_state(&self) -> io::Result<()> {
        match fs::remove_dir_all(&self.state) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

/// Removes all but the `keep` most recently modified log directories. Errors are
/// ignored: a log that cannot be pruned now is pruned at a later launch.
fn prune_log_dirs(logs_root: &Path, keep: usize) {
    let Ok(entries) = fs::read_dir(logs_root) else {
        return;
    };
    let mut dirs: Vec<(SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .collect();
    if dirs.len() <= keep {
        return;
    }

    dirs.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, dir) in dirs.into_iter().skip(keep) {
        let _ = fs::remove_dir_all(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_refuses_existing_slug() {
        let config = tempfile::tempdir().expect("tempdir");
        let _first = BottleDirs::create(config.path(), "same").expect("first");
        let err = BottleDirs::create(config.path(), "same").expect_err("second");
        assert!(err.to_string().contains("already exists"), "{err}");
    }

    #[test]
    fn remove_state_keeps_logs() {
        let config = tempfile::tempdir().expect("tempdir");
        let dirs = BottleDirs::create(config.path(), "b1").expect("create");
        dirs.remove_state().expect("remove");
        assert!(!dirs.state.exists());
        assert!(dirs.logs.exists());
    }

    #[test]
    fn prune_keeps_newest() {
        let root = tempfile::tempdir().expect("tempdir");
        for i in 0..5 {
            let dir = root.path().join(format!("d{i}"));
            fs::create_dir(&dir).expect("mkdir");
            let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i);
            fs::File::open(&dir)
                .expect("open")
                .set_modified(time)
                .expect("set mtime");
        }
        prune_log_dirs(root.path(), 2);
        let mut left: Vec<String> = fs::read_dir(root.path())
            .expect("read")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        left.sort();
        assert_eq!(left, ["d3", "d4"]);
    }
}
