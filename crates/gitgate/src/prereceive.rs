//! The gate's side of the pre-receive step: policy, scan and forwarding. The result goes
//! back over the control socket to the hook that git runs inside the push's quarantine.
//!
//! The push is forwarded upstream from inside this step, before git moves the mirror's
//! refs: if the upstream rejects it, the hook fails, git drops the quarantine and the
//! mirror stays as it was.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::audit::{Answer, Decision, PushRecord};
use crate::gate::Gate;
use crate::git::{RunError, run_bounded, sanitize_text};
use crate::hold::{Outcome, hold_push};
use crate::hook::{HookReply, HookRequest, MAX_REQUEST_BYTES};
use crate::mirror::{Mirror, upstream_failure_reason};
use crate::policy::{RefUpdate, check_update};
use crate::scan::{PushFinding, Quarantine, scan_push};

/// Accepts hook connections until the listener fails.
pub(crate) async fn serve_control(gate: Arc<Gate>, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let gate = Arc::clone(&gate);
                tokio::spawn(async move { handle_hook(gate, stream).await });
            }
            Err(error) => {
                tracing::error!(slug = %gate.slug, "control socket accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Writes reply lines to one hook connection.
pub(crate) struct Replies {
    stream: UnixStream,
}

impl Replies {
    async fn send(&mut self, reply: &HookReply) {
        let mut line = serde_json::to_vec(reply).expect("a reply serializes");
        line.push(b'\n');
        if let Err(error) = self.stream.write_all(&line).await {
            tracing::warn!("writing to the pre-receive hook failed: {error}");
        }
    }

    pub async fn message(&mut self, text: impl Into<String>) {
        self.send(&HookReply::Message(text.into())).await;
    }
}

async fn handle_hook(gate: Arc<Gate>, mut stream: UnixStream) {
    let mut line = String::new();
    let read = BufReader::new((&mut stream).take(MAX_REQUEST_BYTES))
        .read_line(&mut line)
        .await;
    let mut replies = Replies { stream };
    let request = match read {
        Ok(_) => serde_json::from_str::<HookRequest>(&line).ok(),
        Err(_) => None,
    };
    let Some(request) = request else {
        let reason = "the pre-receive hook sent an invalid request";
        gate.audit.write(
            &PushRecord::new(&gate.scanner, &gate.slug, None, &[], Decision::Rejected)
                .reason(reason),
        );
        replies
            .message(format!("git gate: push rejected: {reason}"))
            .await;
        replies.send(&HookReply::Verdict { accepted: false }).await;
        return;
    };
    let Some(mirror) = gate
        .tickets
        .repo(&request.ticket)
        .and_then(|repo| gate.mirror(&repo))
    else {
        tracing::warn!(slug = %gate.slug, "pre-receive request with an unknown ticket");
        let reason = "this push is not known to the gate";
        gate.audit.write(
            &PushRecord::new(
                &gate.scanner,
                &gate.slug,
                None,
                &request.updates,
                Decision::Rejected,
            )
            .reason(reason),
        );
        replies
            .message(format!("git gate: push rejected: {reason}"))
            .await;
        replies.send(&HookReply::Verdict { accepted: false }).await;
        return;
    };

    let accepted = run_push(&gate, &mirror, &request, &mut replies).await;
    replies.send(&HookReply::Verdict { accepted }).await;
}

/// A rejected push: the reason for the pusher and the findings for the audit log.
struct Rejection {
    reason: String,
    findings: Vec<PushFinding>,
}

impl From<String> for Rejection {
    fn from(reason: String) -> Rejection {
        Rejection {
            reason,
            findings: Vec::new(),
        }
    }
}

/// A push that passed the policy and the scan. Its findings, if any, all carry
/// suppression markers, so it waits for an operator before it is forwarded.
struct Checked {
    quarantine: Quarantine,
    findings: Vec<PushFinding>,
}

/// Checks, holds if needed, and forwards one push; returns whether the upstream accepted
/// it. Tells the pusher and writes the audit log at each decision.
///
/// The mirror's lock is held while checking and while forwarding, but not during a hold,
/// so the agent can fetch while an operator decides. The check and the forward each have
/// `pre_receive_timeout_secs`; the hold has `hold_timeout_secs`.
async fn run_push(
    gate: &Gate,
    mirror: &Mirror,
    request: &HookRequest,
    replies: &mut Replies,
) -> bool {
    let repo = mirror.repo.name.as_str();
    let record = |decision| {
        PushRecord::new(
            &gate.scanner,
            &gate.slug,
            Some(repo),
            &request.updates,
            decision,
        )
    };
    let limit = Duration::from_secs(gate.limits.pre_receive_timeout_secs);
    let timed_out = || format!("the check did not finish within {} s", limit.as_secs());

    let checked = {
        let _guard = mirror.lock.lock().await;
        tokio::time::timeout(limit, check(gate, mirror, request))
            .await
            .unwrap_or_else(|_| Err(Rejection::from(timed_out())))
    };
    let checked = match checked {
        Ok(Some(checked)) => checked,
        Ok(None) => return true,
        Err(rejection) => {
            reject(gate, repo, replies, record(Decision::Rejected), rejection).await;
            return false;
        }
    };

    let mut answered = None;
    if !checked.findings.is_empty() {
        // TODO(security): a refresh during the hold can move the mirror's ref. Then git's
        // own ref update fails after the upstream accepted the approved push, and the next
        // fetch reconciles the mirror.
        let held = record(Decision::Held).findings(&checked.findings);
        let outcome = hold_push(
            gate,
            repo,
            &request.updates,
            &checked.findings,
            replies,
            held,
        )
        .await;
        let (id, answer, refusal) = match outcome {
            Outcome::Approved { id } => (id, Answer::Approved, None),
            Outcome::Denied { id, reason } => (
                id,
                Answer::Denied,
                Some(format!("the operator denied the push: {reason}")),
            ),
            Outcome::TimedOut { id } => (
                id,
                Answer::TimedOut,
                Some(format!(
                    "no operator decided within {} s, so the hold timed out",
                    gate.limits.hold_timeout_secs
                )),
            ),
            Outcome::Unqueued(reason) => {
                let rejection = Rejection {
                    reason: format!("the push needs an operator's approval, but {reason}"),
                    findings: checked.findings,
                };
                reject(gate, repo, replies, record(Decision::Rejected), rejection).await;
                return false;
            }
        };
        if let Some(reason) = refusal {
            let mut rejected = record(Decision::Rejected);
            rejected.held = Some(id);
            rejected.answer = Some(answer);
            let rejection = Rejection {
                reason,
                findings: checked.findings,
            };
            reject(gate, repo, replies, rejected, rejection).await;
            return false;
        }
        replies
            .message(format!("git gate: item {id} approved; forwarding the push"))
            .await;
        answered = Some((id, answer));
    }

    let forwarded = {
        let _guard = mirror.lock.lock().await;
        tokio::time::timeout(
            limit,
            forward(mirror, &checked.quarantine, &request.updates, replies),
        )
        .await
        .unwrap_or_else(|_| Err(timed_out()))
    };
    let mut done = match &forwarded {
        Ok(()) => record(Decision::Forwarded),
        Err(_) => record(Decision::Rejected),
    }
    .findings(&checked.findings);
    if let Some((id, answer)) = answered {
        done.held = Some(id);
        done.answer = Some(answer);
    }
    match forwarded {
        Ok(()) => {
            gate.audit.write(&done);
            true
        }
        Err(reason) => {
            let rejection = Rejection {
                reason,
                findings: checked.findings,
            };
            reject(gate, repo, replies, done, rejection).await;
            false
        }
    }
}

/// Tells the pusher why the push is rejected and records it.
async fn reject(
    gate: &Gate,
    repo: &str,
    replies: &mut Replies,
    record: PushRecord,
    rejection: Rejection,
) {
    tracing::info!(slug = %gate.slug, %repo, "push rejected: {}", rejection.reason);
    gate.audit.write(
        &record
            .findings(&rejection.findings)
            .reason(&rejection.reason),
    );
    replies
        .message(format!(
            "git gate: push to '{repo}' rejected: {}",
            rejection.reason
        ))
        .await;
}

/// Checks the policy and scans. Returns `None` when there is nothing to forward (no ref
/// updates), the checked push otherwise, or the rejection.
async fn check(
    gate: &Gate,
    mirror: &Mirror,
    request: &HookRequest,
) -> Result<Option<Checked>, Rejection> {
    let quarantine = locate_quarantine(mirror, request)?;
    if request.updates.is_empty() {
        return Ok(None);
    }

    // Ref names reach the upstream too, and the policy's messages below repeat them, so
    // they are scanned first.
    let named = secrets_in_ref_names(&gate.scanner, &request.updates);
    if !named.is_empty() {
        tracing::warn!(
            slug = %gate.slug,
            repo = %mirror.repo.name,
            refs = named.len(),
            "push rejected: a ref name holds a possible secret"
        );
        return Err(format!(
            "possible secrets found in ref names (the values are not shown):\n{}\n\
             Push under another ref name.",
            named.join("\n")
        )
        .into());
    }

    let mut violations = Vec::new();
    for update in &request.updates {
        let fast_forward = is_fast_forward(mirror, &quarantine, update).await?;
        if let Err(reason) = check_update(&mirror.repo.push, update, fast_forward) {
            violations.push(format!("  {}: {reason}", update.name));
        }
    }
    if !violations.is_empty() {
        return Err(format!(
            "the push policy does not allow it:\n{}",
            violations.join("\n")
        )
        .into());
    }

    let tips: Vec<String> = request
        .updates
        .iter()
        .filter(|update| !update.is_delete())
        .map(|update| update.new.clone())
        .collect();
    let findings = scan_push(
        mirror,
        &quarantine,
        &gate.scanner,
        &tips,
        gate.limits.max_object_bytes,
    )
    .await
    .map_err(|reason| format!("the pushed objects cannot be accepted: {reason}"))?;
    let unsuppressed = findings
        .iter()
        .filter(|finding| finding.suppressed_by.is_none())
        .count();
    if unsuppressed > 0 {
        let lines: Vec<String> = findings
            .iter()
            .map(|finding| format!("  {finding}"))
            .collect();
        tracing::warn!(
            slug = %gate.slug,
            repo = %mirror.repo.name,
            findings = findings.len(),
            "push rejected by the secret scan"
        );
        let reason = format!(
            "possible secrets found (the values are not shown):\n{}\n\
             Remove them from every commit of the push (rewrite the commits), then push again.",
            lines.join("\n")
        );
        return Err(Rejection { reason, findings });
    }
    Ok(Some(Checked {
        quarantine,
        findings,
    }))
}

/// Checks that the hook's object directory is a quarantine inside this mirror, and uses
/// the mirror's own object directory as the alternate whatever the hook sent.
fn locate_quarantine(mirror: &Mirror, request: &HookRequest) -> Result<Quarantine, String> {
    let mirror_objects = mirror
        .dir
        .join("objects")
        .canonicalize()
        .map_err(|error| format!("the mirror's object directory is missing: {error}"))?;
    let Some(given) = &request.object_directory else {
        if request.updates.iter().all(RefUpdate::is_delete) {
            return Ok(Quarantine {
                object_directory: None,
                mirror_objects,
            });
        }
        return Err("the push was not quarantined".to_owned());
    };

    let given = PathBuf::from(given);
    let given = if given.is_absolute() {
        given
    } else {
        mirror.dir.join(given)
    };
    let object_directory = given
        .canonicalize()
        .map_err(|_| "the push's quarantine directory is missing".to_owned())?;
    // Git names its receive quarantine `objects/tmp_objdir-incoming-XXXXXX`.
    let in_mirror = object_directory.parent() == Some(mirror_objects.as_path());
    let named_as_quarantine = object_directory
        .file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with("tmp_objdir-incoming-"));
    if !in_mirror || !named_as_quarantine || !object_directory.is_dir() {
        return Err("the push was not quarantined inside the mirror".to_owned());
    }
    if let Some(path) = &request.quarantine_path
        && Path::new(path).canonicalize().ok().as_ref() != Some(&object_directory)
    {
        return Err("GIT_QUARANTINE_PATH does not match GIT_OBJECT_DIRECTORY".to_owned());
    }
    Ok(Quarantine {
        object_directory: Some(object_directory),
        mirror_objects,
    })
}

/// Returns whether `update.new` descends from `update.old`. Creations and deletions count as
/// fast-forward; the policy judges them separately.
async fn is_fast_forward(
    mirror: &Mirror,
    quarantine: &Quarantine,
    update: &RefUpdate,
) -> Result<bool, String> {
    if update.is_create() || update.is_delete() {
        return Ok(true);
    }
    let mut command = quarantine.git(mirror);
    command.args(["merge-base", "--is-ancestor", &update.old, &update.new]);
    let output = run_bounded(command, mirror.upstream_timeout)
        .await
        .map_err(|error| format!("checking {} failed: {error}", update.name))?;
    match output.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(format!(
            "checking {} failed: {}",
            update.name,
            sanitize_text(&output.stderr, 300)
        )),
    }
}

/// Pushes the scanned object ids (never a ref name that could move) to the upstream and
/// relays the upstream's output to the pusher.
async fn forward(
    mirror: &Mirror,
    quarantine: &Quarantine,
    updates: &[RefUpdate],
    replies: &mut Replies,
) -> Result<(), String> {
    if let Err(reason) = mirror.check_identity() {
        return Err(format!("cannot forward the push upstream: {reason}"));
    }
    let mut command = mirror.ssh.git(&mirror.dir, &mirror.home);
    quarantine.apply(&mut command);
    command.args(["push", "--no-verify", "--porcelain", "--no-signed"]);
    if updates.len() > 1 {
        command.arg("--atomic");
    }
    let mut refspecs = Vec::new();
    for update in updates {
        let rewrites = update.is_delete() || (!update.is_create() && mirror.repo.push.force);
        if rewrites {
            // A lease makes the upstream apply a forced update or deletion only if the
            // ref still has the value the policy was checked against.
            let expected = if update.is_create() {
                String::new()
            } else {
                update.old.clone()
            };
            command.arg(format!("--force-with-lease={}:{expected}", update.name));
        }
        let source = if update.is_delete() {
            ""
        } else {
            update.new.as_str()
        };
        refspecs.push(format!("{source}:{}", update.name));
    }
    command.arg("--").arg(&mirror.repo.url).args(&refspecs);

    let output = match run_bounded(command, mirror.upstream_timeout).await {
        Ok(output) => output,
        Err(error @ RunError::Timeout(_)) => {
            return Err(format!("forwarding to the upstream {error}"));
        }
        Err(error) => return Err(format!("forwarding to the upstream failed: {error}")),
    };
    let upstream_text = [output.stderr.as_slice(), output.stdout.as_slice()].concat();
    for line in sanitize_text(&upstream_text, 8000)
        .lines()
        .filter(|line| !line.trim().is_empty())
    {
        replies.message(format!("upstream: {line}")).await;
    }
    if output.status.success() {
        tracing::info!(repo = %mirror.repo.name, refs = updates.len(), "push forwarded upstream");
        Ok(())
    } else {
        Err(format!(
            "the upstream did not accept the push: {}",
            upstream_failure_reason(&output.stderr)
        ))
    }
}

/// Returns one line per pushed ref whose name the scanner flags, with the flagged part
/// replaced by a marker.
fn secrets_in_ref_names(scanner: &bottle_scanner::Scanner, updates: &[RefUpdate]) -> Vec<String> {
    let mut lines = Vec::new();
    for update in updates {
        let found = scanner.scan(update.name.as_bytes());
        if found.is_empty() {
            continue;
        }
        let redacted = bottle_scanner::redact(update.name.as_bytes(), &found);
        let rules: Vec<&str> = found.iter().map(|finding| finding.rule.as_str()).collect();
        lines.push(format!(
            "  ref {}: rule {}",
            String::from_utf8_lossy(&redacted),
            rules.join(", ")
        ));
    }
    lines
}
