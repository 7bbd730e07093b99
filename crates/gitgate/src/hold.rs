//! Holding a push whose findings all carry suppression markers: one queue item per push,
//! answered by `bottle approve ID` or `bottle deny ID --reason R`.
//!
//! The item records the repo and every ref update with its old and new object id, and its
//! digest covers them, so a decision applies to that push only. The pre-receive step
//! waits for the decision while git keeps the push in quarantine; only an approval lets
//! the step go on to forward the scanned object ids.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bottle_queue::{GitFinding, GitPush, GitRefUpdate, Verdict};
use tokio::time::Instant;

use crate::audit::PushRecord;
use crate::gate::Gate;
use crate::policy::RefUpdate;
use crate::prereceive::Replies;
use crate::scan::PushFinding;

/// First interval between two looks for a decision; it doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(25);
/// Maximum interval between two looks for a decision.
const MAX_POLL: Duration = Duration::from_millis(500);
/// Maximum number of pushes one gate holds at once; further ones are rejected unqueued,
/// so an agent cannot flood the operator's queue.
const MAX_HOLDS: usize = 8;

/// The end of a hold.
#[derive(Debug)]
pub(crate) enum Outcome {
    Approved {
        id: String,
    },
    Denied {
        id: String,
        reason: String,
    },
    TimedOut {
        id: String,
    },
    /// The item could not be queued, or too many pushes are held; the reason says which.
    Unqueued(String),
}

/// Queues the push and waits for the operator's decision or the hold timeout. The pusher
/// is told the item id as soon as the item is written. The item and its decision are
/// removed when the hold ends.
pub(crate) async fn hold_push(
    gate: &Gate,
    repo: &str,
    updates: &[RefUpdate],
    findings: &[PushFinding],
    replies: &mut Replies,
    mut held_record: PushRecord,
) -> Outcome {
    let Some(_slot) = HoldSlot::take(&gate.holds) else {
        return Outcome::Unqueued(format!(
            "{MAX_HOLDS} pushes are already waiting for an operator's decision"
        ));
    };
    let push = GitPush::new(
        repo,
        &updates
            .iter()
            .map(|update| GitRefUpdate {
                name: update.name.clone(),
                old: update.old.clone(),
                new: update.new.clone(),
            })
            .collect::<Vec<_>>(),
        &findings
            .iter()
            .map(|finding| GitFinding {
                commit: finding.commit.clone(),
                place: finding.place_text(),
                line: finding.line,
                rule: finding.rule.clone(),
                suppressed_by: finding.suppressed_by.clone().unwrap_or_default(),
            })
            .collect::<Vec<_>>(),
    );
    let digest = push.digest();
    let timeout = Duration::from_secs(gate.limits.hold_timeout_secs);
    let item = match gate.queue.submit_git_push(&gate.slug, push, timeout) {
        Ok(item) => item,
        Err(error) => {
            tracing::error!(slug = %gate.slug, %repo, "cannot queue a held push: {error}");
            return Outcome::Unqueued("the push could not be queued for approval".to_owned());
        }
    };
    let _cleanup = Cleanup { gate, id: &item.id };
    held_record.held = Some(item.id.clone());
    gate.audit.write(&held_record);
    tracing::warn!(
        slug = %gate.slug,
        id = %item.id,
        "push held for approval: {}; run `bottle approve {}` or `bottle deny {} --reason ...`",
        item.summary.line(),
        item.id,
        item.id
    );
    replies
        .message(format!(
            "git gate: the push to '{repo}' is held for an operator's decision (item {}), because \
             suppression markers or ignore files cover its findings; waiting up to {} s",
            item.id,
            timeout.as_secs()
        ))
        .await;

    let deadline = Instant::now() + timeout;
    let mut interval = FIRST_POLL;
    let verdict = loop {
        match gate.queue.decision(&item.id, &digest) {
            Ok(Some(decision)) => break Some(decision.verdict),
            Ok(None) => {}
            Err(error) => tracing::error!(id = %item.id, "cannot read a decision: {error}"),
        }
        // One more look after the deadline, so a decision written just in time counts.
        let now = Instant::now();
        if now >= deadline {
            break None;
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
        interval = (interval * 2).min(MAX_POLL);
    };

    let id = item.id.clone();
    match verdict {
        Some(Verdict::Approve) => Outcome::Approved { id },
        Some(Verdict::Deny { reason }) => Outcome::Denied {
            id,
            reason: bottle_queue::sanitize(&reason),
        },
        None => Outcome::TimedOut { id },
    }
}

/// One of the [`MAX_HOLDS`] holds, released when dropped.
struct HoldSlot<'a>(&'a AtomicUsize);

impl<'a> HoldSlot<'a> {
    fn take(holds: &'a AtomicUsize) -> Option<HoldSlot<'a>> {
        holds
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |count| {
                (count < MAX_HOLDS).then_some(count + 1)
            })
            .ok()
            .map(|_| HoldSlot(holds))
    }
}

impl Drop for HoldSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Removes a held item and its decision when dropped, also when the pusher goes away.
struct Cleanup<'a> {
    gate: &'a Gate,
    id: &'a str,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Err(error) = self.gate.queue.remove(self.id) {
            tracing::error!(id = %self.id, "cannot remove a held push: {error}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_slots_are_capped() {
        let holds = AtomicUsize::new(0);
        let slots: Vec<_> = (0..MAX_HOLDS)
            .map(|_| HoldSlot::take(&holds).expect("a free slot"))
            .collect();
        assert!(HoldSlot::take(&holds).is_none(), "one slot too many");
        drop(slots);
        assert!(HoldSlot::take(&holds).is_some(), "slots are released");
    }
}
