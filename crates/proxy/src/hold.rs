//! The `supervise` hold: a request in which the outbound DLP found a secret waits in the
//! bottle's queue until the operator approves or denies it, or until the hold times out.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bottle_queue::{Kind, Queue, Summary, Verdict, value_digest};
use tokio::time::Instant;

use crate::SidecarConfig;

/// First interval between two looks for a decision; it doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(25);
/// Maximum interval between two checks for a decision.
const MAX_POLL: Duration = Duration::from_millis(500);
/// Most requests one bottle can have held at once. Further ones are denied without being
/// queued, so an agent cannot flood the operator's queue or the disk.
const MAX_PENDING: usize = 32;

/// The end of a hold.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The operator approved the request.
    Approved { id: String },
    /// The operator denied the request, with a sanitized reason.
    Denied { id: String, reason: String },
    /// Nobody decided before the hold timed out.
    TimedOut { id: String },
    /// The item could not be queued, so nobody can approve it.
    Unqueued,
    /// [`MAX_PENDING`] requests are already held.
    QueueFull,
}

/// The bottle's queue and the values the operator approved.
#[derive(Debug)]
pub(crate) struct Supervisor {
    slug: String,
    queue: Queue,
    /// How long a hold waits before it denies.
    timeout: Duration,
    /// SHA-256 digests of finding values in approved requests, each with the host the
    /// operator approved it for. They stay allowed to that host for the life of the
    /// proxy, and a request to another host is held again.
    approved: Mutex<HashSet<(String, String)>>,
    /// Number of requests held at the moment.
    pending: AtomicUsize,
}

impl Supervisor {
    pub(crate) fn new(config: &SidecarConfig) -> Supervisor {
        Supervisor {
            slug: config.slug.clone(),
            queue: Queue::new(queue_dir(&config.audit_log, &config.slug)),
            timeout: Duration::from_secs(config.hold_timeout_secs),
            approved: Mutex::new(HashSet::new()),
            pending: AtomicUsize::new(0),
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Returns true when the operator approved a request to `host` carrying `value`
    /// before.
    pub(crate) fn is_approved(&self, host: &str, value: &[u8]) -> bool {
        let approved = self.approved.lock().expect("approved set lock poisoned");
        approved.contains(&(host.to_owned(), value_digest(value)))
    }

    /// Remembers `values` as approved for `host`.
    pub(crate) fn approve_values<'a>(
        &self,
        host: &str,
        values: impl IntoIterator<Item = &'a [u8]>,
    ) {
        let mut approved = self.approved.lock().expect("approved set lock poisoned");
        approved.extend(
            values
                .into_iter()
                .map(|value| (host.to_owned(), value_digest(value))),
        );
    }

    /// Queues the request with `digest` and waits for the operator's decision or the
    /// timeout. The item and its decision are removed when the hold ends, also when the
    /// agent disconnects and the future is dropped.
    pub(crate) async fn hold(&self, summary: Summary, digest: &str) -> Outcome {
        let Some(_slot) = PendingSlot::take(&self.pending) else {
            tracing::warn!(
                max = MAX_PENDING,
                "too many held requests; one more is denied"
            );
            return Outcome::QueueFull;
        };
        let item = match self
            .queue
            .submit(&self.slug, Kind::Dlp, summary, digest, self.timeout)
        {
            Ok(item) => item,
            Err(err) => {
                tracing::error!(error = %err, "cannot queue a held request; it is denied");
                return Outcome::Unqueued;
            }
        };
        let cleanup = Cleanup {
            queue: &self.queue,
            id: &item.id,
        };
        tracing::warn!(
            id = %item.id,
            "request held for approval: {}; run `bottle approve {}` or `bottle deny {} --reason ...`",
            item.summary.line(),
            item.id,
            item.id
        );

        let deadline = Instant::now() + self.timeout;
        let mut interval = FIRST_POLL;
        let verdict = loop {
            match self.queue.decision(&item.id, digest) {
                Ok(Some(decision)) => break Some(decision.verdict),
                Ok(None) => {}
                Err(err) => tracing::error!(id = %item.id, error = %err, "cannot read a decision"),
            }
            // The loop looks once more after the deadline, so a decision written just in
            // time still counts.
            let now = Instant::now();
            if now >= deadline {
                break None;
            }
            tokio::time::sleep(interval.min(deadline - now)).await;
            interval = (interval * 2).min(MAX_POLL);
        };
        drop(cleanup);

        let id = item.id;
        match verdict {
            Some(Verdict::Approve) => Outcome::Approved { id },
            Some(Verdict::Deny { reason }) => Outcome::Denied {
                id,
                reason: bottle_queue::sanitize(&reason),
            },
            None => Outcome::TimedOut { id },
        }
    }
}

/// One of the [`MAX_PENDING`] holds, released when dropped.
struct PendingSlot<'a>(&'a AtomicUsize);

impl<'a> PendingSlot<'a> {
    fn take(pending: &'a AtomicUsize) -> Option<PendingSlot<'a>> {
        pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |count| {
                (count < MAX_PENDING).then_some(count + 1)
            })
            .ok()
            .map(|_| PendingSlot(pending))
    }
}

impl Drop for PendingSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Removes a held item and its decision when dropped.
struct Cleanup<'a> {
    queue: &'a Queue,
    id: &'a str,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Err(err) = self.queue.remove(self.id) {
            tracing::error!(id = %self.id, error = %err, "cannot remove a held item");
        }
    }
}

/// Returns the queue directory for a sidecar whose audit log is `audit_log`. The launcher
/// puts the log at `<config>/logs/<slug>/egress.jsonl`, so the queue is
/// `<config>/state/<slug>/queue`, outside the bottle. For any other layout (tests, a
/// custom launcher) the queue is the `queue` directory next to the audit log.
fn queue_dir(audit_log: &Path, slug: &str) -> PathBuf {
    let log_dir = audit_log.parent().unwrap_or_else(|| Path::new("."));
    let logs_root = log_dir.parent();
    match logs_root {
        Some(root)
            if log_dir.file_name().is_some_and(|name| name == slug)
                && root.file_name().is_some_and(|name| name == "logs") =>
        {
            let config_dir = root.parent().unwrap_or_else(|| Path::new("."));
            bottle_queue::bottle_queue_dir(config_dir, slug)
        }
        _ => log_dir.join("queue"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_slots_are_capped() {
        let pending = AtomicUsize::new(0);
        let slots: Vec<_> = (0..MAX_PENDING)
            .map(|_| PendingSlot::take(&pending).expect("a free slot"))
            .collect();
        assert!(PendingSlot::take(&pending).is_none(), "one slot too many");
        drop(slots);
        assert!(PendingSlot::take(&pending).is_some(), "slots are released");
    }

    #[test]
    fn queue_dir_follows_launcher_layout() {
        let dir = queue_dir(
            Path::new("/home/u/.config/bot-bottle/logs/demo/egress.jsonl"),
            "demo",
        );
        assert_eq!(
            dir,
            Path::new("/home/u/.config/bot-bottle/state/demo/queue")
        );
    }

    #[test]
    fn queue_dir_falls_back_next_to_log() {
        let dir = queue_dir(Path::new("/tmp/x/egress.jsonl"), "demo");
        assert_eq!(dir, Path::new("/tmp/x/queue"));
    }
}
