//! End-to-end tests of the `supervise` hold: a request carrying a known secret waits in
//! the bottle's queue until the operator approves or denies it, or the hold times out.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bottle_queue::{Item, Queue, Verdict};
use bytes::Bytes;
use common::{Fixture, KNOWN_SECRET};
use http_body_util::Full;

const API: &str = "api.allowed.example";
const API_AUTHORITY: &str = "api.allowed.example:443";

/// Starts the proxy with a `supervise` route (the default action) and a hold of
/// `hold_secs`.
async fn start(fixture: &Fixture, hold_secs: u64) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let mut config = fixture.config(vec![fixture.route(API)]);
    config.hold_timeout_secs = hold_secs;
    tokio::spawn(async move {
        if let Err(err) = bottle_proxy::serve(config, listener).await {
            panic!("the proxy stopped: {err}");
        }
    });
    address
}

/// The queue directory the proxy uses when the audit log is not in the launcher's
/// layout: `queue` next to the log.
fn queue_dir(fixture: &Fixture) -> PathBuf {
    fixture.dir.path().join("queue")
}

fn upload(body: &str) -> http::Request<Full<Bytes>> {
    http::Request::post("/upload?note=x")
        .header("host", API)
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request")
}

async fn send(
    fixture: &Fixture,
    proxy: SocketAddr,
    request: http::Request<Full<Bytes>>,
) -> bottle_testkit::client::HttpReply {
    fixture
        .tunnel_request(proxy, API_AUTHORITY, API, request)
        .await
        .expect("reply")
}

/// Waits for one pending item in `dir` and returns it.
async fn pending_item(dir: PathBuf) -> Item {
    let queue = Queue::new(dir);
    for _ in 0..500 {
        let items = queue.pending().expect("read the queue");
        if let Some(item) = items.into_iter().next() {
            return item;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no item was queued");
}

/// Decides the first item queued in `dir` with `verdict` and returns it.
fn decide_when_queued(dir: PathBuf, verdict: Verdict) -> tokio::task::JoinHandle<Item> {
    tokio::spawn(async move {
        let item = pending_item(dir.clone()).await;
        Queue::new(dir)
            .decide(&item.id, verdict)
            .expect("decide the item");
        item
    })
}

#[tokio::test]
async fn approved_request_reaches_upstream() {
    let fixture = Fixture::new().await;
    let proxy = start(&fixture, 60).await;
    let operator = decide_when_queued(queue_dir(&fixture), Verdict::Approve);

    let reply = send(&fixture, proxy, upload(KNOWN_SECRET)).await;
    let item = operator.await.expect("operator task");
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    let requests = fixture.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body, KNOWN_SECRET.as_bytes());

    // The operator saw where the secret was, never the secret.
    assert_eq!(item.summary.method, "POST");
    assert_eq!(item.summary.host, API);
    assert_eq!(item.summary.path, "/upload?note");
    assert_eq!(item.summary.findings[0].location, "body");
    let shown = serde_json::to_string(&item).expect("serialize");
    assert!(!shown.contains(KNOWN_SECRET), "{shown}");

    let records = fixture
        .audit_until(|r| r["decision"] == "allow" && r["held"] == item.id.as_str())
        .await;
    assert!(
        records.iter().all(|r| r["decision"] != "deny"),
        "{records:#?}"
    );
    let left = std::fs::read_dir(queue_dir(&fixture))
        .expect("queue dir")
        .count();
    assert_eq!(left, 0, "the item and decision files are removed");

    // The approved value stays allowed to this host: the same secret passes again
    // without a hold, and the audit record still names the finding.
    let reply = send(&fixture, proxy, upload(KNOWN_SECRET)).await;
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    assert_eq!(fixture.requests().len(), 2);
    let records = fixture
        .audit_until(|r| r["method"] == "POST" && r["held"].is_null())
        .await;
    let again = records
        .iter()
        .find(|r| r["method"] == "POST" && r["held"].is_null())
        .expect("the record of the second request");
    assert!(
        again["findings"].as_array().is_some_and(|f| !f.is_empty()),
        "the forwarded request's record lists its approved finding: {again:#}"
    );
}

#[tokio::test]
async fn approval_covers_only_its_host() {
    const OTHER: &str = "other.allowed.example";
    let fixture = Fixture::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy = listener.local_addr().expect("address");
    let mut config = fixture.config(vec![fixture.route(API), fixture.route(OTHER)]);
    config.hold_timeout_secs = 60;
    tokio::spawn(async move {
        if let Err(err) = bottle_proxy::serve(config, listener).await {
            panic!("the proxy stopped: {err}");
        }
    });

    let operator = decide_when_queued(queue_dir(&fixture), Verdict::Approve);
    let reply = send(&fixture, proxy, upload(KNOWN_SECRET)).await;
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    operator.await.expect("operator task");

    // The same value to another host waits for the operator again.
    let operator = decide_when_queued(queue_dir(&fixture), Verdict::deny("not there"));
    let request = http::Request::post("/upload")
        .header("host", OTHER)
        .body(Full::new(Bytes::from(KNOWN_SECRET)))
        .expect("request");
    let reply = fixture
        .tunnel_request(proxy, "other.allowed.example:443", OTHER, request)
        .await
        .expect("reply");
    let item = operator.await.expect("operator task");
    assert_eq!(item.summary.host, OTHER);
    assert_eq!(reply.status, 403, "{}", reply.body_text());
    assert!(
        reply.body_text().contains("not there"),
        "{}",
        reply.body_text()
    );
    assert_eq!(
        fixture.requests().len(),
        1,
        "only the approved request arrived"
    );
}

#[tokio::test]
async fn denied_request_carries_reason() {
    let fixture = Fixture::new().await;
    let proxy = start(&fixture, 60).await;
    let operator = decide_when_queued(queue_dir(&fixture), Verdict::deny("not this key\u{1b}[2J"));

    let reply = send(&fixture, proxy, upload(KNOWN_SECRET)).await;
    let item = operator.await.expect("operator task");
    assert_eq!(reply.status, 403);
    let body = reply.body_text();
    assert!(body.starts_with("bottle:"), "{body}");
    assert!(body.contains("the operator denied it"), "{body}");
    assert!(body.contains("not this key?[2J"), "{body}");
    assert!(!body.contains('\u{1b}'), "{body}");
    assert!(fixture.requests().is_empty());
    fixture
        .audit_until(|r| r["decision"] == "deny" && r["held"] == item.id.as_str())
        .await;

    // A denial is not remembered: the next request is held again.
    let operator = decide_when_queued(queue_dir(&fixture), Verdict::Approve);
    let reply = send(&fixture, proxy, upload(KNOWN_SECRET)).await;
    let second = operator.await.expect("operator task");
    assert_ne!(second.id, item.id);
    assert_eq!(reply.status, 200, "{}", reply.body_text());
}

#[tokio::test]
async fn unanswered_hold_times_out() {
    let fixture = Fixture::new().await;
    let proxy = start(&fixture, 1).await;

    let reply = send(&fixture, proxy, upload(KNOWN_SECRET)).await;
    assert_eq!(reply.status, 403);
    assert!(
        reply.body_text().contains("no operator approved it"),
        "{}",
        reply.body_text()
    );
    assert!(fixture.requests().is_empty());
    // The audit record names the queue item the request waited on. A watcher of the
    // queue directory could miss an item that the one-second hold removes first.
    fixture
        .audit_until(|r| {
            r["decision"] == "deny" && r["held"].as_str().is_some_and(|id| !id.is_empty())
        })
        .await;
    let left = std::fs::read_dir(queue_dir(&fixture))
        .expect("queue dir")
        .count();
    assert_eq!(left, 0, "the item is removed after the timeout");
}

#[tokio::test]
async fn approval_of_other_request_is_ignored() {
    let fixture = Fixture::new().await;
    let proxy = start(&fixture, 1).await;
    let dir = queue_dir(&fixture);
    // The operator's approval names the item but carries another request's digest, as a
    // decision file written for a different request would.
    let forger = tokio::spawn(async move {
        let item = pending_item(dir.clone()).await;
        let decision = serde_json::json!({
            "id": item.id,
            "digest": "0".repeat(64),
            "verdict": "approve",
            "decided_unix": item.created_unix,
        });
        std::fs::write(
            dir.join(format!("{}.decision.json", item.id)),
            decision.to_string(),
        )
        .expect("write the decision");
    });

    let reply = send(&fixture, proxy, upload(KNOWN_SECRET)).await;
    forger.await.expect("forger task");
    assert_eq!(reply.status, 403, "{}", reply.body_text());
    assert!(fixture.requests().is_empty());
}

#[tokio::test]
async fn operator_never_sees_secret_in_path() {
    let fixture = Fixture::new().await;
    let proxy = start(&fixture, 60).await;
    let operator = decide_when_queued(queue_dir(&fixture), Verdict::deny("no"));

    let request = http::Request::post(format!("/upload/{KNOWN_SECRET}"))
        .header("host", API)
        .body(Full::new(Bytes::new()))
        .expect("request");
    let reply = send(&fixture, proxy, request).await;
    let item = operator.await.expect("operator task");
    assert_eq!(reply.status, 403, "{}", reply.body_text());
    assert_eq!(item.summary.findings[0].location, "path");
    assert!(
        item.summary.path.starts_with("/upload/"),
        "{}",
        item.summary.path
    );
    let shown = serde_json::to_string(&item).expect("serialize");
    assert!(!shown.contains(KNOWN_SECRET), "{shown}");
}
