//! `bottle approve`, `bottle deny` and `bottle supervise --list`, run as the built binary
//! on a temporary config directory holding a queued item.

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use bottle_queue::{
    GitFinding, GitPush, GitRefUpdate, Item, Kind, Queue, Summary, Verdict, bottle_queue_dir,
};
use predicates::str::contains;

const DIGEST: &str = "5f0c6d2e";

/// Queues one held item for bottle `demo` under `config` and returns the queue and item.
fn queue_item(config: &Path) -> (Queue, Item) {
    let queue = Queue::new(bottle_queue_dir(config, "demo"));
    let summary = Summary::new(
        "POST",
        "api.example.com",
        "/v1/upload?note",
        &[("known-secret".into(), "body".into())],
    );
    let item = queue
        .submit("demo", Kind::Dlp, summary, DIGEST, Duration::from_secs(300))
        .expect("queue an item");
    (queue, item)
}

fn bottle(config: &Path) -> Command {
    let mut command = Command::cargo_bin("bottle").expect("the bottle binary");
    command.env("BOT_BOTTLE_HOME", config).current_dir(config);
    command
}

#[test]
fn approve_writes_decision() {
    let config = tempfile::tempdir().expect("tempdir");
    let (queue, item) = queue_item(config.path());

    bottle(config.path())
        .args(["approve", &item.id])
        .assert()
        .success()
        .stdout(contains(format!("approved {} in bottle demo", item.id)))
        .stdout(contains("POST api.example.com/v1/upload?note"))
        .stdout(contains("may now go to api.example.com without a hold"));
    let decision = queue.decision(&item.id, DIGEST).expect("read the decision");
    assert_eq!(decision.map(|d| d.verdict), Some(Verdict::Approve));

    // A second decision on the same item is rejected.
    bottle(config.path())
        .args(["deny", &item.id, "--reason", "late"])
        .assert()
        .code(1)
        .stderr(contains("already has a decision"));
}

#[test]
fn deny_records_sanitized_reason() {
    let config = tempfile::tempdir().expect("tempdir");
    let (queue, item) = queue_item(config.path());

    bottle(config.path())
        .args(["deny", &item.id, "--reason", "wrong key\u{1b}[2J"])
        .assert()
        .success()
        .stdout(contains("reason: wrong key?[2J"));
    let decision = queue.decision(&item.id, DIGEST).expect("read the decision");
    let expected = Verdict::Deny {
        reason: "wrong key?[2J".into(),
    };
    assert_eq!(decision.map(|d| d.verdict), Some(expected));
}

#[test]
fn deny_requires_reason() {
    let config = tempfile::tempdir().expect("tempdir");
    let (queue, item) = queue_item(config.path());
    bottle(config.path())
        .args(["deny", &item.id])
        .assert()
        .code(2)
        .stderr(contains("--reason"));
    assert_eq!(queue.decision(&item.id, DIGEST).expect("read"), None);
}

#[test]
fn unknown_id_fails() {
    let config = tempfile::tempdir().expect("tempdir");
    queue_item(config.path());
    bottle(config.path())
        .args(["approve", "aaaaaaaaaa"])
        .assert()
        .code(1)
        .stderr(contains("no held item has id aaaaaaaaaa"));
}

#[test]
fn malformed_id_fails() {
    let config = tempfile::tempdir().expect("tempdir");
    let (_, item) = queue_item(config.path());
    // A path that would reach the real item file through the queue directory.
    let tricky = format!("../queue/{}", item.id);
    for id in [tricky.as_str(), "ABCDEFGHIJ", "short"] {
        bottle(config.path())
            .args(["approve", id])
            .assert()
            .code(1)
            .stderr(contains("invalid item id"));
    }
}

#[test]
fn supervise_lists_pending_items() {
    let config = tempfile::tempdir().expect("tempdir");
    let (_, item) = queue_item(config.path());
    bottle(config.path())
        .args(["supervise", "--list"])
        .assert()
        .success()
        .stdout(contains(&item.id))
        .stdout(contains("known-secret in body"));
    let output = bottle(config.path())
        .args(["supervise", "--list", "--json"])
        .output()
        .expect("run bottle");
    assert!(output.status.success());
    let items: Vec<Item> = serde_json::from_slice(&output.stdout).expect("JSON items");
    assert_eq!(items, vec![item]);
}

#[test]
fn expired_id_fails() {
    let config = tempfile::tempdir().expect("tempdir");
    let (queue, mut item) = queue_item(config.path());
    // Rewrite the item as if its hold had timed out.
    item.expires_unix = item.created_unix.saturating_sub(1);
    let path = queue.dir().join(format!("{}.json", item.id));
    std::fs::write(&path, serde_json::to_vec(&item).expect("serialize")).expect("rewrite");

    bottle(config.path())
        .args(["approve", &item.id])
        .assert()
        .code(1)
        .stderr(contains("has expired"));
    assert_eq!(queue.decision(&item.id, DIGEST).expect("read"), None);
}

#[test]
fn git_push_item_listed_and_approved() {
    let config = tempfile::tempdir().expect("tempdir");
    let queue = Queue::new(bottle_queue_dir(config.path(), "demo"));
    let push = GitPush::new(
        "widgets",
        &[GitRefUpdate {
            name: "refs/heads/main".into(),
            old: "a".repeat(40),
            new: "b".repeat(40),
        }],
        &[GitFinding {
            commit: Some("c".repeat(40)),
            place: "file config/app.env\u{1b}[2J".into(),
            line: 2,
            rule: "github-pat".into(),
            suppressed_by: "gitleaks:allow".into(),
        }],
    );
    let digest = push.digest();
    let item = queue
        .submit_git_push("demo", push, Duration::from_secs(300))
        .expect("queue a push");

    let output = bottle(config.path())
        .args(["supervise", "--list"])
        .output()
        .expect("run bottle");
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(output.status.success(), "{text}");
    assert!(text.contains(&item.id), "{text}");
    assert!(text.contains("git-push"), "{text}");
    assert!(
        text.contains("push widgets refs/heads/main@bbbbbbbbbbbb"),
        "{text}"
    );
    assert!(
        text.contains("github-pat in file config/app.env?[2J line 2 (gitleaks:allow)"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text:?}");

    bottle(config.path())
        .args(["approve", &item.id])
        .assert()
        .success()
        .stdout(contains(format!("approved {} in bottle demo", item.id)));
    let decision = queue
        .decision(&item.id, &digest)
        .expect("read the decision");
    assert_eq!(decision.map(|d| d.verdict), Some(Verdict::Approve));
}

#[test]
fn logs_print_egress_then_git() {
    let config = tempfile::tempdir().expect("tempdir");
    let logs = config.path().join("logs").join("demo");
    std::fs::create_dir_all(&logs).expect("create the log directory");
    std::fs::write(
        logs.join("egress.jsonl"),
        "{\"host\":\"api.example.com\"}\n",
    )
    .expect("write the egress log");

    // Without a git gate there is no git log, and the egress log alone is printed.
    bottle(config.path())
        .args(["logs", "demo"])
        .assert()
        .success()
        .stdout("{\"host\":\"api.example.com\"}\n");

    std::fs::write(logs.join("git.jsonl"), "{\"repo\":\"widgets\"}\n").expect("write the git log");
    bottle(config.path())
        .args(["logs", "demo"])
        .assert()
        .success()
        .stdout("{\"host\":\"api.example.com\"}\n{\"repo\":\"widgets\"}\n");
    bottle(config.path())
        .args(["logs", "demo", "--egress"])
        .assert()
        .success()
        .stdout("{\"host\":\"api.example.com\"}\n");

    std::fs::remove_file(logs.join("egress.jsonl")).expect("remove the egress log");
    bottle(config.path())
        .args(["logs", "demo"])
        .assert()
        .success()
        .stdout("{\"repo\":\"widgets\"}\n");
    bottle(config.path())
        .args(["logs", "other"])
        .assert()
        .code(1)
        .stderr(contains("no audit log for bottle other"));
}
