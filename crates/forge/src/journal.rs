//! The journal of provisioned deploy keys: one JSON file per bottle, replaced atomically.
//!
//! An entry is written before the key is registered and completed with the forge's key id
//! right after, so a crash at any point leaves a record that `gc` can act on. An entry is
//! removed only once the forge confirmed the key is gone.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ForgeError;
use crate::forge::Provider;

/// Name of the journal file inside a bottle's state directory.
pub const JOURNAL_FILE: &str = "deploy-keys.json";

/// Version of the journal's format.
const FORMAT_VERSION: u32 = 1;

/// One provisioned deploy key. It contains no secret: the token is named by its host
/// variable and the private key by its path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalEntry {
    pub provider: Provider,
    pub api_url: String,
    /// Repository path on the forge, `owner/name`.
    pub repo: String,
    /// Host variable that contains the forge token.
    pub token_env: String,
    /// Title of the key on the forge; it contains the bottle's slug.
    pub title: String,
    /// The public key's authorized-keys line.
    pub public_key: String,
    /// The forge's key id; `None` while registration has not returned one, in which case
    /// revocation looks the key up by its public key.
    pub key_id: Option<u64>,
    /// The private half on the host.
    pub private_key: PathBuf,
}

impl JournalEntry {
    /// Returns whether two entries describe the same key slot: forge, repo and title.
    fn same_key(&self, other: &JournalEntry) -> bool {
        self.api_url == other.api_url && self.repo == other.repo && self.title == other.title
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalFile {
    version: u32,
    keys: Vec<JournalEntry>,
}

/// The journal file of one bottle.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// Returns the journal in `bottle_state_dir`; the file is created on the first record.
    pub fn in_dir(bottle_state_dir: &Path) -> Journal {
        Journal {
            path: bottle_state_dir.join(JOURNAL_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every entry; a missing file has none.
    pub fn entries(&self) -> Result<Vec<JournalEntry>, ForgeError> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(self.error(format!("cannot read: {error}"))),
        };
        let file: JournalFile = serde_json::from_slice(&bytes)
            .map_err(|error| self.error(format!("invalid JSON: {error}")))?;
        if file.version != FORMAT_VERSION {
            return Err(self.error(format!("unsupported version {}", file.version)));
        }
        Ok(file.keys)
    }

    /// Adds `entry`, or replaces the entry for the same forge, repo and title.
    pub fn record(&self, entry: &JournalEntry) -> Result<(), ForgeError> {
        let _lock = self.lock()?;
        let mut keys = self.entries()?;
        match keys.iter_mut().find(|old| old.same_key(entry)) {
            Some(old) => *old = entry.clone(),
            None => keys.push(entry.clone()),
        }
        self.write(keys)
    }

    /// Removes the entry for the same forge, repo and title as `entry`. The file is
    /// deleted when no entry is left.
    pub fn remove(&self, entry: &JournalEntry) -> Result<(), ForgeError> {
        let _lock = self.lock()?;
        let mut keys = self.entries()?;
        keys.retain(|old| !old.same_key(entry));
        if keys.is_empty() {
            return match fs::remove_file(&self.path) {
                Ok(()) => Ok(()),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(error) => Err(self.error(format!("cannot remove: {error}"))),
            };
        }
        self.write(keys)
    }

    /// Replaces the file atomically: a temporary file in the same directory, synced, then
    /// renamed over the journal.
    fn write(&self, keys: Vec<JournalEntry>) -> Result<(), ForgeError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let file = JournalFile {
            version: FORMAT_VERSION,
            keys,
        };
        let mut bytes = serde_json::to_vec_pretty(&file).expect("the journal serializes");
        bytes.push(b'\n');

        let temporary = dir.join(format!(".{JOURNAL_FILE}.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&temporary);
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(|error| {
                self.error(format!("cannot write {}: {error}", temporary.display()))
            })?;
        let written = out.write_all(&bytes).and_then(|()| out.sync_all());
        drop(out);
        if let Err(error) = written.and_then(|()| fs::rename(&temporary, &self.path)) {
            let _ = fs::remove_file(&temporary);
            return Err(self.error(format!("cannot replace: {error}")));
        }
        if let Ok(handle) = fs::File::open(dir) {
            let _ = handle.sync_all();
        }
        Ok(())
    }

    /// Takes an exclusive lock on `<journal>.lock` for one read-modify-write, so that a
    /// teardown and a `bottle gc` updating the same journal do not lose each other's
    /// changes. The lock is released when the returned file is dropped.
    fn lock(&self) -> Result<fs::File, ForgeError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|error| self.error(format!("cannot create: {error}")))?;
        let lock_path = dir.join(format!("{JOURNAL_FILE}.lock"));
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|error| self.error(format!("cannot open {}: {error}", lock_path.display())))?;
        file.lock()
            .map_err(|error| self.error(format!("cannot lock {}: {error}", lock_path.display())))?;
        Ok(file)
    }

    fn error(&self, reason: String) -> ForgeError {
        ForgeError::Journal {
            path: self.path.clone(),
            reason,
        }
    }
}

/// Finds the journal of every bottle under `state_root` (`<state_root>/<slug>/deploy-keys.json`).
pub fn find_journals(state_root: &Path) -> Result<Vec<Journal>, ForgeError> {
    let entries = match fs::read_dir(state_root) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(ForgeError::Journal {
                path: state_root.to_owned(),
                reason: format!("cannot list the state directory: {error}"),
            });
        }
    };
    let mut journals = Vec::new();
    for entry in entries.flatten() {
        let journal = Journal::in_dir(&entry.path());
        if journal.path.is_file() {
            journals.push(journal);
        }
    }
    journals.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(journals)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn entry(title: &str, key_id: Option<u64>) -> JournalEntry {
        JournalEntry {
            provider: Provider::Gitea,
            api_url: "https://forge.example.org".into(),
            repo: "team/widgets".into(),
            token_env: "FORGE_TOKEN".into(),
            title: title.into(),
            public_key: "ssh-ed25519 AAAA c".into(),
            key_id,
            private_key: "/state/keys/widgets".into(),
        }
    }

    #[test]
    fn record_update_remove() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let journal = Journal::in_dir(&dir.path().join("slug"));
        assert_eq!(journal.entries().expect("empty"), vec![]);

        journal.record(&entry("a", None)).expect("record");
        journal.record(&entry("b", Some(2))).expect("record");
        journal.record(&entry("a", Some(1))).expect("update");
        let entries = journal.entries().expect("read");
        assert_eq!(entries, vec![entry("a", Some(1)), entry("b", Some(2))]);
        let mode = fs::metadata(journal.path())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the journal is private");

        journal.remove(&entry("a", None)).expect("remove");
        assert_eq!(journal.entries().expect("read"), vec![entry("b", Some(2))]);
        journal.remove(&entry("b", None)).expect("remove");
        assert!(!journal.path().exists(), "an empty journal is deleted");
    }

    #[test]
    fn concurrent_records_all_kept() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let journal = Journal::in_dir(dir.path());
        let threads: Vec<_> = (0..8)
            .map(|index| {
                let journal = journal.clone();
                std::thread::spawn(move || {
                    for round in 0..5 {
                        let title = format!("t{index}-{round}");
                        journal.record(&entry(&title, None)).expect("record");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        assert_eq!(journal.entries().expect("read").len(), 40);
    }

    #[test]
    fn corrupt_journal_is_an_error() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let journal = Journal::in_dir(dir.path());
        fs::write(journal.path(), "{not json").expect("write");
        assert!(journal.entries().is_err());
        assert!(
            journal.record(&entry("a", None)).is_err(),
            "nothing is overwritten"
        );
        assert_eq!(
            fs::read_to_string(journal.path()).expect("read"),
            "{not json"
        );
    }

    #[test]
    fn journals_found_per_bottle() {
        let dir = tempfile::tempdir().expect("temporary directory");
        Journal::in_dir(&dir.path().join("b"))
            .record(&entry("x", None))
            .expect("record");
        Journal::in_dir(&dir.path().join("a"))
            .record(&entry("y", None))
            .expect("record");
        fs::create_dir_all(dir.path().join("c")).expect("mkdir");
        let found = find_journals(dir.path()).expect("find");
        let paths: Vec<&Path> = found.iter().map(Journal::path).collect();
        assert_eq!(
            paths,
            vec![
                dir.path().join("a").join(JOURNAL_FILE),
                dir.path().join("b").join(JOURNAL_FILE)
            ]
        );
        assert!(
            find_journals(&dir.path().join("missing"))
                .expect("none")
                .is_empty()
        );
    }
}
