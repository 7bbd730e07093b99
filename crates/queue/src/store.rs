//! The queue directory: writing items and decisions atomically, finding an item across
//! bottles, and removing both files once a hold ends.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::QueueError;
use crate::git_push::GitPush;
use crate::id::{is_valid_id, new_id};
use crate::item::{Decision, Item, Kind, Summary, Verdict};

/// Suffix of item files.
const ITEM_SUFFIX: &str = ".json";
/// Suffix of decision files.
const DECISION_SUFFIX: &str = ".decision.json";

/// Returns the queue directory of bottle `slug`: `<config>/state/<slug>/queue`.
pub fn bottle_queue_dir(config_dir: &Path, slug: &str) -> PathBuf {
    config_dir.join("state").join(slug).join("queue")
}

/// One bottle's queue directory.
#[derive(Debug, Clone)]
pub struct Queue {
    dir: PathBuf,
}

impl Queue {
    /// Opens the queue in `dir`; the directory is created on the first [`Queue::submit`].
    pub fn new(dir: impl Into<PathBuf>) -> Queue {
        Queue { dir: dir.into() }
    }

    /// The queue directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a new item for the request with `digest`, held for `hold`, and returns it.
    pub fn submit(
        &self,
        slug: &str,
        kind: Kind,
        summary: Summary,
        digest: &str,
        hold: Duration,
    ) -> Result<Item, QueueError> {
        self.submit_item(slug, kind, summary, digest, hold, None)
    }

    /// Writes a new item for a push held by the git gate, bound to the push's ref updates
    /// by [`GitPush::digest`], and returns it.
    pub fn submit_git_push(
        &self,
        slug: &str,
        push: GitPush,
        hold: Duration,
    ) -> Result<Item, QueueError> {
        let digest = push.digest();
        self.submit_item(
            slug,
            Kind::GitPush,
            push.summary(),
            &digest,
            hold,
            Some(push),
        )
    }

    fn submit_item(
        &self,
        slug: &str,
        kind: Kind,
        summary: Summary,
        digest: &str,
        hold: Duration,
        git_push: Option<GitPush>,
    ) -> Result<Item, QueueError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| io_error(&self.dir, source))?;
        let created_unix = now_unix();
        let item = Item {
            id: new_id(),
            slug: slug.to_owned(),
            kind,
            created_unix,
            expires_unix: created_unix.saturating_add(hold.as_secs().max(1)),
            summary,
            digest: digest.to_owned(),
            git_push,
        };
        write_atomic(&self.item_path(&item.id), &item)?;
        Ok(item)
    }

    /// Returns the item `id`, or `None` when this queue does not hold it.
    pub fn item(&self, id: &str) -> Result<Option<Item>, QueueError> {
        check_id(id)?;
        read_json(&self.item_path(id))
    }

    /// Returns the decision on item `id`, or `None` while there is none. A decision whose
    /// digest differs from `digest` is ignored, because it was written for another
    /// request.
    pub fn decision(&self, id: &str, digest: &str) -> Result<Option<Decision>, QueueError> {
        check_id(id)?;
        let decision: Option<Decision> = read_json(&self.decision_path(id))?;
        Ok(decision.filter(|decision| decision.id == id && decision.digest == digest))
    }

    /// Records `verdict` on item `id`. Fails when the item is unknown, expired or already
    /// decided.
    pub fn decide(&self, id: &str, verdict: Verdict) -> Result<(Item, Decision), QueueError> {
        let item = self
            .item(id)?
            .ok_or_else(|| QueueError::NotFound(id.to_owned()))?;
        let now = now_unix();
        if now >= item.expires_unix {
            return Err(QueueError::Expired(id.to_owned()));
        }
        let path = self.decision_path(id);
        let decision = Decision {
            id: id.to_owned(),
            digest: item.digest.clone(),
            verdict,
            decided_unix: now,
        };
        match write_new(&path, &decision) {
            Err(QueueError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                Err(QueueError::AlreadyDecided(id.to_owned()))
            }
            Err(err) => Err(err),
            Ok(()) => Ok((item, decision)),
        }
    }

    /// Removes item `id` and its decision, ignoring files already gone.
    pub fn remove(&self, id: &str) -> Result<(), QueueError> {
        check_id(id)?;
        for path in [self.item_path(id), self.decision_path(id)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(io_error(&path, source)),
            }
        }
        Ok(())
    }

    /// Returns the items without a decision that have not expired, oldest first.
    pub fn pending(&self) -> Result<Vec<Item>, QueueError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(io_error(&self.dir, source)),
        };
        let now = now_unix();
        let mut items = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| io_error(&self.dir, source))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(ITEM_SUFFIX)) else {
                continue;
            };
            if !is_valid_id(id) || self.decision_path(id).exists() {
                continue;
            }
            if let Some(item) = read_json::<Item>(&entry.path())?
                && item.expires_unix > now
            {
                items.push(item);
            }
        }
        items.sort_by_key(|item| item.created_unix);
        Ok(items)
    }

    fn item_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}{ITEM_SUFFIX}"))
    }

    fn decision_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}{DECISION_SUFFIX}"))
    }
}

/// Returns the queues of every bottle under `<config>/state`.
fn all_queues(config_dir: &Path) -> Result<Vec<Queue>, QueueError> {
    let state = config_dir.join("state");
    let entries = match fs::read_dir(&state) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(io_error(&state, source)),
    };
    let mut queues = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| io_error(&state, source))?;
        let dir = entry.path().join("queue");
        if dir.is_dir() {
            queues.push(Queue::new(dir));
        }
    }
    Ok(queues)
}

/// Finds item `id` in any bottle's queue under `config_dir`.
pub fn find(config_dir: &Path, id: &str) -> Result<(Queue, Item), QueueError> {
    check_id(id)?;
    for queue in all_queues(config_dir)? {
        if let Some(item) = queue.item(id)? {
            return Ok((queue, item));
        }
    }
    Err(QueueError::NotFound(id.to_owned()))
}

/// Finds item `id` in any bottle's queue under `config_dir` and records `verdict` on it.
pub fn decide(
    config_dir: &Path,
    id: &str,
    verdict: Verdict,
) -> Result<(Item, Decision), QueueError> {
    let (queue, _) = find(config_dir, id)?;
    queue.decide(id, verdict)
}

/// Returns the pending items of every bottle under `config_dir`, oldest first.
pub fn pending(config_dir: &Path) -> Result<Vec<Item>, QueueError> {
    let mut items = Vec::new();
    for queue in all_queues(config_dir)? {
        items.extend(queue.pending()?);
    }
    items.sort_by_key(|item| item.created_unix);
    Ok(items)
}

fn check_id(id: &str) -> Result<(), QueueError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(QueueError::InvalidId(crate::sanitize(id)))
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn io_error(path: &Path, source: io::Error) -> QueueError {
    QueueError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `value` as JSON to a temporary file (mode 0600) in the same directory, then
/// renames it onto `path`, so a reader sees either no file or the whole file.
fn write_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), QueueError> {
    write_then(path, value, |temp| fs::rename(temp, path))
}

/// Writes `value` like [`write_atomic`], but fails with `AlreadyExists` when `path`
/// exists, so of two operators deciding at once only the first decision is kept.
fn write_new<T: Serialize>(path: &Path, value: &T) -> Result<(), QueueError> {
    write_then(path, value, |temp| {
        let linked = fs::hard_link(temp, path);
        let _ = fs::remove_file(temp);
        linked
    })
}

/// Writes `value` as JSON to a new temporary file next to `path` and calls `publish` with
/// the temporary path; the temporary file is removed when anything fails.
fn write_then<T: Serialize>(
    path: &Path,
    value: &T,
    publish: impl FnOnce(&Path) -> io::Result<()>,
) -> Result<(), QueueError> {
    let bytes = serde_json::to_vec_pretty(value).expect("queue files serialize to JSON");
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .expect("queue file names are built from valid ids");
    let temp = path.with_file_name(format!(".{name}.{}.tmp", new_id()));
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(&bytes)?;
            file.sync_all()
        })
        .and_then(|()| publish(&temp));
    if let Err(source) = result {
        let _ = fs::remove_file(&temp);
        return Err(io_error(path, source));
    }
    Ok(())
}

/// Reads JSON from `path`, or `None` when the file does not exist.
fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, QueueError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error(path, source)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| QueueError::Parse {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn summary() -> Summary {
        Summary::new(
            "POST",
            "api.example.com",
            "/v1/x?q",
            &[("known-secret".into(), "body".into())],
        )
    }

    fn submit(config: &Path, slug: &str, hold: Duration) -> (Queue, Item) {
        let queue = Queue::new(bottle_queue_dir(config, slug));
        let item = queue
            .submit(slug, Kind::Dlp, summary(), "d1g3st", hold)
            .expect("submit");
        (queue, item)
    }

    #[test]
    fn submit_writes_private_file_without_temp() {
        let config = tempfile::tempdir().expect("tempdir");
        let (queue, item) = submit(config.path(), "demo", Duration::from_secs(30));
        let path = queue.dir().join(format!("{}.json", item.id));
        let mode = fs::metadata(&path).expect("item file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(queue.dir())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "a temporary file was left: {names:?}");
        assert_eq!(queue.item(&item.id).expect("read"), Some(item));
    }

    #[test]
    fn decide_across_bottles() {
        let config = tempfile::tempdir().expect("tempdir");
        let (_, other) = submit(config.path(), "other", Duration::from_secs(30));
        let (queue, item) = submit(config.path(), "demo", Duration::from_secs(30));
        assert_eq!(pending(config.path()).expect("pending").len(), 2);

        let (found, decision) =
            decide(config.path(), &item.id, Verdict::deny("no\u{1b}[31m")).expect("decide");
        assert_eq!(found.slug, "demo");
        assert_eq!(
            decision.verdict,
            Verdict::Deny {
                reason: "no?[31m".into()
            }
        );
        let seen = queue.decision(&item.id, "d1g3st").expect("read decision");
        assert_eq!(seen, Some(decision));
        let pending_ids: Vec<_> = pending(config.path())
            .expect("pending")
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(pending_ids, vec![other.id]);

        let again = decide(config.path(), &item.id, Verdict::Approve);
        assert!(
            matches!(again, Err(QueueError::AlreadyDecided(_))),
            "{again:?}"
        );
    }

    #[test]
    fn decision_for_other_digest_is_ignored() {
        let config = tempfile::tempdir().expect("tempdir");
        let (queue, item) = submit(config.path(), "demo", Duration::from_secs(30));
        queue.decide(&item.id, Verdict::Approve).expect("decide");
        assert!(queue.decision(&item.id, "d1g3st").expect("read").is_some());
        assert_eq!(queue.decision(&item.id, "0ther").expect("read"), None);
    }

    #[test]
    fn expired_item_cannot_be_decided() {
        let config = tempfile::tempdir().expect("tempdir");
        let (queue, mut item) = submit(config.path(), "demo", Duration::from_secs(30));
        item.expires_unix = item.created_unix.saturating_sub(1);
        write_atomic(&queue.item_path(&item.id), &item).expect("rewrite");
        let result = decide(config.path(), &item.id, Verdict::Approve);
        assert!(matches!(result, Err(QueueError::Expired(_))), "{result:?}");
        assert!(pending(config.path()).expect("pending").is_empty());
    }

    #[test]
    fn unknown_and_invalid_ids_fail() {
        let config = tempfile::tempdir().expect("tempdir");
        submit(config.path(), "demo", Duration::from_secs(30));
        let unknown = decide(config.path(), "aaaaaaaaaa", Verdict::Approve);
        assert!(
            matches!(unknown, Err(QueueError::NotFound(_))),
            "{unknown:?}"
        );
        let invalid = decide(config.path(), "../demo/x", Verdict::Approve);
        assert!(
            matches!(invalid, Err(QueueError::InvalidId(_))),
            "{invalid:?}"
        );
    }

    #[test]
    fn remove_deletes_item_and_decision() {
        let config = tempfile::tempdir().expect("tempdir");
        let (queue, item) = submit(config.path(), "demo", Duration::from_secs(30));
        queue.decide(&item.id, Verdict::Approve).expect("decide");
        queue.remove(&item.id).expect("remove");
        assert_eq!(fs::read_dir(queue.dir()).expect("dir").count(), 0);
        queue.remove(&item.id).expect("removing twice succeeds");
    }

    #[test]
    fn summary_is_sanitized() {
        let summary = Summary::new(
            "POST",
            "evil\u{1b}]52;c;x\u{7}.example",
            "/a\u{9b}2J",
            &[("known-secret".into(), "header x\u{1b}[8m".into())],
        );
        let line = summary.line();
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.contains("evil?]52;c;x?.example"), "{line}");
    }
}
