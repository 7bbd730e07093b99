//! A gate that pushes with a deploy key provisioned through the fake Gitea: the key opens
//! the real sshd upstream while registered and stops working once revoked.

#![allow(clippy::unwrap_used)]

mod common;

use bottle_forge::fake::FakeGitea;
use bottle_forge::{ForgeToken, Journal, KeyRequest, Provider, connect, key_title};
use bottle_testkit::git::sshd_authorized_keys;
use common::{Client, GateHandle, World, stderr, upstream_ref};

const TOKEN: &str = "gitea-admin-token-51b2";

#[test]
fn provisioned_key_pushes_until_revoked() {
    let world = World::new();
    let fake = FakeGitea::start(TOKEN, sshd_authorized_keys(world.path()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let forge = connect(Provider::Gitea, &fake.base_url, ForgeToken::new(TOKEN)).unwrap();
    let journal = Journal::in_dir(&world.path().join("bottle-state"));
    let key_dir = world.path().join("bottle-state/keys");
    std::fs::create_dir_all(&key_dir).unwrap();
    let request = KeyRequest {
        provider: Provider::Gitea,
        api_url: fake.base_url.clone(),
        repo: "team/widgets".to_owned(),
        token_env: "FORGE_TOKEN".to_owned(),
        read_only: false,
        title: key_title("test", "widgets", None),
        key_file: "widgets".to_owned(),
    };
    let entry = runtime
        .block_on(bottle_forge::provision_key(
            forge.as_ref(),
            &journal,
            &key_dir,
            &request,
        ))
        .unwrap();

    let mut repo = world.repo();
    repo.identity = entry.private_key.clone();
    let gate = GateHandle::start(world.config("state", repo.clone(), vec![]));
    let client = Client::new(&world, "agent", &gate, &[repo]);
    let work = client.clone(&world.url(), "work");
    let commit = client.commit_file(&work, "a.txt", "a\n", "Add a");
    client.git_ok(&work, &["push", "--quiet", "origin", "main"]);
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(commit.clone())
    );

    let copy = world.path().join("key-copy");
    std::fs::copy(&entry.private_key, &copy).unwrap();
    runtime
        .block_on(bottle_forge::revoke_key(forge.as_ref(), &journal, &entry))
        .unwrap();
    assert!(fake.keys().is_empty());
    assert!(journal.entries().unwrap().is_empty());
    assert!(!entry.private_key.exists());
    // Put the private half back, as if a copy had survived: the upstream must refuse it.
    std::fs::copy(&copy, &entry.private_key).unwrap();

    client.commit_file(&work, "b.txt", "b\n", "Add b");
    let output = client.git(&work, &["push", "origin", "main"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert_eq!(
        upstream_ref(&world.upstream, "refs/heads/main"),
        Some(commit),
        "the revoked key no longer reaches the upstream"
    );
    let output = client.git(&work, &["fetch", "origin"]);
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("permission denied"), "{text}");
}
