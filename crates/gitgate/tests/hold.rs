//! Pushes held by suppression markers: a real git push through the gate waits in the
//! bottle's queue until the operator approves or denies it, or the hold times out.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use bottle_queue::{Item, Kind, Queue, Verdict};
use common::{Client, GateHandle, World, fake_github_token, stderr, upstream_ref};

/// Returns the settings file of a push, with the token on line 2 followed by `comment`.
fn settings(token: &str, comment: &str) -> String {
    format!("# settings\nGITHUB_TOKEN={token}{comment}\n")
}

/// Waits until the queue in `dir` has a pending item and returns it.
fn wait_for_item(dir: &Path) -> Item {
    let queue = Queue::new(dir);
    for _ in 0..1200 {
        if let Some(item) = queue.pending().unwrap().into_iter().next() {
            return item;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no push was held in {}", dir.display());
}

/// Runs `git push origin <refspec>` in another thread.
fn push_in_background(
    client: &Client,
    work: &Path,
    refspec: &str,
) -> std::thread::JoinHandle<Output> {
    let client = Client {
        home: client.home.clone(),
    };
    let work = work.to_owned();
    let refspec = refspec.to_owned();
    std::thread::spawn(move || client.git(&work, &["push", "origin", &refspec]))
}

/// Reads the push audit log as JSON values.
fn audit_records(world: &World) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(audit_path(world)).unwrap_or_default();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn audit_path(world: &World) -> PathBuf {
    world.path().join("logs/git.jsonl")
}

fn queue_dir(world: &World) -> PathBuf {
    world.path().join("queue")
}

#[test]
fn marker_push_held_then_approved() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main").unwrap();

    let token = fake_github_token();
    let commit = client.commit_file(
        &work,
        "config/app.env",
        &settings(&token, "  # gitleaks:allow"),
        "Add settings",
    );
    let push = push_in_background(&client, &work, "main");
    let item = wait_for_item(&queue_dir(&world));

    assert_eq!(item.kind, Kind::GitPush);
    let held = item.git_push.clone().expect("a git-push item has its push");
    assert_eq!(held.repo, "widgets");
    assert_eq!(held.refs.len(), 1);
    assert_eq!(held.refs[0].name, "refs/heads/main");
    assert_eq!(held.refs[0].old, before);
    assert_eq!(held.refs[0].new, commit);
    assert_eq!(held.findings.len(), 1);
    assert_eq!(held.findings[0].place, "file config/app.env");
    assert_eq!(held.findings[0].line, 2);
    assert_eq!(held.findings[0].rule, "github-pat");
    assert_eq!(held.findings[0].suppressed_by, "gitleaks:allow");
    assert_eq!(held.findings[0].commit.as_deref(), Some(commit.as_str()));
    let item_file =
        std::fs::read_to_string(queue_dir(&world).join(format!("{}.json", item.id))).unwrap();
    assert!(!item_file.contains(&token[4..]), "{item_file}");
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(before.clone()),
        "nothing is forwarded while the push is held"
    );

    Queue::new(queue_dir(&world))
        .decide(&item.id, Verdict::Approve)
        .unwrap();
    let output = push.join().unwrap();
    let text = stderr(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains(&format!("item {}", item.id)), "{text}");
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(commit.clone())
    );
    assert!(
        Queue::new(queue_dir(&world))
            .item(&item.id)
            .unwrap()
            .is_none(),
        "the item is removed once the hold ends"
    );

    let records = audit_records(&world);
    let decisions: Vec<&str> = records
        .iter()
        .map(|record| record["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, vec!["held", "forwarded"]);
    assert_eq!(records[1]["answer"], "approved");
    assert_eq!(records[1]["held"], item.id.as_str());
    assert_eq!(records[1]["refs"][0]["new"], commit.as_str());
    let log = std::fs::read_to_string(audit_path(&world)).unwrap();
    assert!(!log.contains(&token[4..]), "{log}");
}

#[test]
fn marker_push_denied_with_reason() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");

    let token = fake_github_token();
    client.commit_file(
        &work,
        "src/config.py",
        &settings(&token, "  # pragma: allowlist secret"),
        "Add settings",
    );
    let push = push_in_background(&client, &work, "main");
    let item = wait_for_item(&queue_dir(&world));
    assert_eq!(
        item.git_push.as_ref().unwrap().findings[0].suppressed_by,
        "pragma: allowlist secret"
    );
    Queue::new(queue_dir(&world))
        .decide(&item.id, Verdict::deny("use the vault instead"))
        .unwrap();

    let output = push.join().unwrap();
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("the operator denied the push: use the vault instead"),
        "{text}"
    );
    assert!(!text.contains(&token[4..]), "{text}");
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);

    let records = audit_records(&world);
    let last = records.last().unwrap();
    assert_eq!(last["decision"], "rejected");
    assert_eq!(last["answer"], "denied");
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains("use the vault instead")
    );
}

#[test]
fn unmarked_finding_rejected_without_hold() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");
    let token = fake_github_token();

    // Without a marker the push is rejected at once, and nothing is queued.
    client.commit_file(
        &work,
        "config/app.env",
        &settings(&token, "  # see the wiki"),
        "Add settings",
    );
    let output = client.git(&work, &["push", "origin", "main"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("rule github-pat"), "{text}");
    assert!(!text.contains("held"), "{text}");
    assert!(
        Queue::new(queue_dir(&world)).pending().unwrap().is_empty(),
        "a finding without a marker is never queued"
    );
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);
    let records = audit_records(&world);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["decision"], "rejected");
    assert_eq!(records[0]["findings"][0]["rule"], "github-pat");
    assert!(records[0].get("held").is_none());

    // Positive control: the same commit with a marker is held instead.
    client.git_ok(&work, &["reset", "--quiet", "--hard", "HEAD~1"]);
    client.commit_file(
        &work,
        "config/app.env",
        &settings(&token, "  # nosec"),
        "Add settings",
    );
    let push = push_in_background(&client, &work, "main");
    let item = wait_for_item(&queue_dir(&world));
    assert_eq!(
        item.git_push.as_ref().unwrap().findings[0].suppressed_by,
        "nosec"
    );
    Queue::new(queue_dir(&world))
        .decide(&item.id, Verdict::deny("no"))
        .unwrap();
    assert!(!push.join().unwrap().status.success());

    // A marker on one finding does not carry another finding without one.
    client.git_ok(&work, &["reset", "--quiet", "--hard", "HEAD~1"]);
    let both = format!("{}TOKEN2={token}\n", settings(&token, "  # gitleaks:allow"));
    client.commit_file(&work, "config/app.env", &both, "Add settings");
    let output = client.git(&work, &["push", "origin", "main"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("line 3: rule github-pat"), "{text}");
    assert!(
        Queue::new(queue_dir(&world)).pending().unwrap().is_empty(),
        "a push with one unmarked finding is rejected without a hold"
    );
}

#[test]
fn ignore_file_in_push_holds() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");
    let token = fake_github_token();

    client.commit_file(
        &work,
        ".gitleaksignore",
        "config/app.env:github-pat:2\n",
        "Ignore a test value",
    );
    client.commit_file(
        &work,
        "config/app.env",
        &settings(&token, ""),
        "Add settings",
    );
    let push = push_in_background(&client, &work, "main");
    let item = wait_for_item(&queue_dir(&world));
    let held = item.git_push.as_ref().unwrap();
    assert_eq!(held.findings[0].suppressed_by, ".gitleaksignore");
    assert_eq!(held.findings[0].place, "file config/app.env");
    Queue::new(queue_dir(&world))
        .decide(&item.id, Verdict::deny("ignore files need review"))
        .unwrap();
    let output = push.join().unwrap();
    assert!(!output.status.success(), "{}", stderr(&output));
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);

    // Positive control: an ignore file that names another path covers nothing.
    client.git_ok(&work, &["reset", "--quiet", "--hard", "HEAD~2"]);
    client.commit_file(
        &work,
        ".gitleaksignore",
        "docs/example.env:github-pat:2\n",
        "Ignore a test value",
    );
    client.commit_file(
        &work,
        "config/app.env",
        &settings(&token, ""),
        "Add settings",
    );
    let output = client.git(&work, &["push", "origin", "main"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("rule github-pat"), "{text}");
    assert!(Queue::new(queue_dir(&world)).pending().unwrap().is_empty());
}

#[test]
fn hold_timeout_rejects() {
    let world = World::new();
    let repo = world.repo();
    let mut config = world.config("state", repo.clone(), vec![]);
    config.limits.hold_timeout_secs = 1;
    let gate = GateHandle::start(config);
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let before = upstream_ref(&world.upstream, "refs/heads/main");

    client.commit_file(
        &work,
        "config/app.env",
        &settings(&fake_github_token(), "  # trufflehog:ignore"),
        "Add settings",
    );
    let output = client.git(&work, &["push", "origin", "main"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("is held for an operator's decision"),
        "{text}"
    );
    assert!(text.contains("the hold timed out"), "{text}");
    assert_eq!(upstream_ref(&world.upstream, "refs/heads/main"), before);
    assert!(
        Queue::new(queue_dir(&world)).pending().unwrap().is_empty(),
        "the expired item is removed"
    );
    let records = audit_records(&world);
    assert_eq!(records.last().unwrap()["answer"], "timed-out");
}

#[test]
fn approval_binds_to_one_push() {
    let world = World::new();
    let repo = world.repo();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let token = fake_github_token();

    let first = client.commit_file(
        &work,
        "a.env",
        &settings(&token, " # gitleaks:allow"),
        "First",
    );
    let first_push = push_in_background(&client, &work, "HEAD:refs/heads/agent/first");
    let first_item = wait_for_item(&queue_dir(&world));

    client.git_ok(&work, &["reset", "--quiet", "--hard", "HEAD~1"]);
    let second = client.commit_file(
        &work,
        "b.env",
        &settings(&token, " # gitleaks:allow"),
        "Second",
    );
    let second_push = push_in_background(&client, &work, "HEAD:refs/heads/agent/second");
    let second_item = loop {
        let pending = Queue::new(queue_dir(&world)).pending().unwrap();
        if let Some(item) = pending.into_iter().find(|item| item.id != first_item.id) {
            break item;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        second_item.git_push.as_ref().unwrap().refs[0].new,
        second,
        "each push has its own item"
    );
    assert_ne!(first_item.digest, second_item.digest);

    // A decision file copied from the first item onto the second does not count: its
    // digest belongs to the first push.
    let queue = Queue::new(queue_dir(&world));
    queue.decide(&first_item.id, Verdict::Approve).unwrap();
    let decision =
        std::fs::read_to_string(queue_dir(&world).join(format!("{}.decision.json", first_item.id)))
            .unwrap()
            .replace(&first_item.id, &second_item.id);
    std::fs::write(
        queue_dir(&world).join(format!("{}.decision.json", second_item.id)),
        decision,
    )
    .unwrap();

    let output = first_push.join().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/agent/first"),
        Some(first)
    );
    assert!(
        queue
            .decision(&second_item.id, &second_item.digest)
            .unwrap()
            .is_none(),
        "the copied decision does not match the second push"
    );
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/agent/second"),
        None,
        "approving the first push let nothing else through"
    );

    std::fs::remove_file(queue_dir(&world).join(format!("{}.decision.json", second_item.id)))
        .unwrap();
    queue
        .decide(&second_item.id, Verdict::deny("one is enough"))
        .unwrap();
    let output = second_push.join().unwrap();
    assert!(!output.status.success(), "{}", stderr(&output));
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/agent/second"),
        None
    );
}
