//! Provisioning, revocation and `gc` against the fake Gitea on loopback.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bottle_forge::fake::FakeGitea;
use bottle_forge::{
    ForgeError, ForgeToken, Journal, JournalEntry, KeyRequest, Provider, connect, gc, key_title,
    provision_key, revoke_journal, revoke_key,
};

const TOKEN: &str = "gitea-admin-token-7f3a9c";
const TOKEN_ENV: &str = "TEST_FORGE_TOKEN";

struct Setup {
    dir: tempfile::TempDir,
    fake: FakeGitea,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let authorized_keys = dir.path().join("authorized_keys");
        std::fs::write(&authorized_keys, "ssh-ed25519 AAAAC3Nza existing\n").unwrap();
        let fake = FakeGitea::start(TOKEN, authorized_keys);
        Setup { dir, fake }
    }

    fn state_root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn journal(&self, slug: &str) -> Journal {
        Journal::in_dir(&self.state_root().join(slug))
    }

    fn key_dir(&self, slug: &str) -> PathBuf {
        let dir = self.state_root().join(slug).join("keys");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn request(&self, slug: &str) -> KeyRequest {
        KeyRequest {
            provider: Provider::Gitea,
            api_url: self.fake.base_url.clone(),
            repo: "team/widgets".to_owned(),
            token_env: TOKEN_ENV.to_owned(),
            read_only: false,
            title: key_title(slug, "widgets", None),
            key_file: "widgets".to_owned(),
        }
    }

    fn authorized_keys(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("authorized_keys")).unwrap()
    }
}

fn token_for(name: &str) -> Option<ForgeToken> {
    (name == TOKEN_ENV).then(|| ForgeToken::new(TOKEN))
}

fn no_token(_: &str) -> Option<ForgeToken> {
    None
}

fn forge(setup: &Setup) -> Box<dyn bottle_forge::Forge> {
    connect(
        Provider::Gitea,
        &setup.fake.base_url,
        ForgeToken::new(TOKEN),
    )
    .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn provision_then_revoke() {
    let setup = Setup::new();
    let journal = setup.journal("slug1");
    let forge = forge(&setup);

    let entry = provision_key(
        forge.as_ref(),
        &journal,
        &setup.key_dir("slug1"),
        &setup.request("slug1"),
    )
    .await
    .unwrap();
    let id = entry.key_id.expect("the key id is recorded");
    assert_eq!(entry.title, "bot-bottle slug1 widgets");
    assert_eq!(journal.entries().unwrap(), vec![entry.clone()]);
    assert_eq!(mode(&entry.private_key), 0o600);

    let keys = setup.fake.keys();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id, id);
    assert_eq!(keys[0].repo, "team/widgets");
    assert_eq!(keys[0].key, entry.public_key);
    assert!(!keys[0].read_only);
    assert!(setup.authorized_keys().contains(&entry.public_key));

    let journal_text = std::fs::read_to_string(journal.path()).unwrap();
    assert!(
        !journal_text.contains(TOKEN),
        "the journal names the variable, not the token"
    );
    assert!(journal_text.contains(TOKEN_ENV));

    revoke_key(forge.as_ref(), &journal, &entry).await.unwrap();
    assert!(setup.fake.keys().is_empty());
    assert!(!setup.authorized_keys().contains(&entry.public_key));
    assert!(journal.entries().unwrap().is_empty());
    assert!(!entry.private_key.exists(), "the private half is removed");
}

#[tokio::test]
async fn unknown_key_counts_as_deleted() {
    let setup = Setup::new();
    let journal = setup.journal("slug2");
    let entry = JournalEntry {
        provider: Provider::Gitea,
        api_url: setup.fake.base_url.clone(),
        repo: "team/widgets".to_owned(),
        token_env: TOKEN_ENV.to_owned(),
        title: key_title("slug2", "widgets", None),
        public_key: "ssh-ed25519 AAAAC3Nzaunknown".to_owned(),
        key_id: Some(999),
        private_key: setup.key_dir("slug2").join("widgets"),
    };
    journal.record(&entry).unwrap();

    revoke_key(forge(&setup).as_ref(), &journal, &entry)
        .await
        .unwrap();
    assert!(journal.entries().unwrap().is_empty());
    assert!(
        setup
            .fake
            .requests()
            .contains(&"DELETE /api/v1/repos/team/widgets/keys/999".to_owned()),
        "the forge was asked and answered 404: {:?}",
        setup.fake.requests()
    );
}

#[tokio::test]
async fn server_error_keeps_key_for_gc() {
    let setup = Setup::new();
    let journal = setup.journal("slug3");
    let entry = provision_key(
        forge(&setup).as_ref(),
        &journal,
        &setup.key_dir("slug3"),
        &setup.request("slug3"),
    )
    .await
    .unwrap();

    setup.fake.fail_deletes_with(Some(500));
    let report = revoke_journal(&journal, &token_for).await;
    assert!(!report.is_clean());
    assert!(report.revoked.is_empty());
    assert_eq!(report.failed.len(), 1);
    let (failed, error) = &report.failed[0];
    assert_eq!(failed, &entry);
    assert!(
        matches!(error, ForgeError::Status { status: 500, .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("team/widgets"), "{text}");
    assert!(text.contains("HTTP 500"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
    assert_eq!(
        journal.entries().unwrap(),
        vec![entry.clone()],
        "the key stays recorded"
    );
    assert_eq!(setup.fake.keys().len(), 1);
    assert!(entry.private_key.exists());

    // A later gc without the token leaves the key too, and its error names the variable to set.
    let report = gc(&setup.state_root(), &no_token).await;
    assert_eq!(report.failed.len(), 1);
    assert!(report.failed[0].1.to_string().contains(TOKEN_ENV));
    assert_eq!(journal.entries().unwrap().len(), 1);

    setup.fake.fail_deletes_with(None);
    let report = gc(&setup.state_root(), &token_for).await;
    assert!(report.is_clean(), "{:?}", report.failed);
    assert_eq!(report.revoked, vec![entry.clone()]);
    assert!(setup.fake.keys().is_empty());
    assert!(journal.entries().unwrap().is_empty());
    assert!(!entry.private_key.exists());
}

#[tokio::test]
async fn gc_finds_key_without_id() {
    let setup = Setup::new();
    let journal = setup.journal("slug4");
    // A crash after registration but before the id reached the journal.
    let forge = forge(&setup);
    let generated =
        bottle_forge::generate_key(&setup.key_dir("slug4"), "widgets", "bot-bottle slug4").unwrap();
    let title = key_title("slug4", "widgets", None);
    forge
        .create_key("team/widgets", &title, &generated.public_key, false)
        .await
        .unwrap();
    // A key of someone else on the same repo must survive.
    let other = bottle_forge::generate_key(setup.dir.path(), "other", "other").unwrap();
    forge
        .create_key("team/widgets", "someone else", &other.public_key, true)
        .await
        .unwrap();
    journal
        .record(&JournalEntry {
            provider: Provider::Gitea,
            api_url: setup.fake.base_url.clone(),
            repo: "team/widgets".to_owned(),
            token_env: TOKEN_ENV.to_owned(),
            title,
            public_key: generated.public_key.clone(),
            key_id: None,
            private_key: generated.private_key.clone(),
        })
        .unwrap();

    let report = gc(&setup.state_root(), &token_for).await;
    assert!(report.is_clean(), "{:?}", report.failed);
    let keys = setup.fake.keys();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key, other.public_key);
    assert!(journal.entries().unwrap().is_empty());
}

#[tokio::test]
async fn rejected_token_not_in_error() {
    let setup = Setup::new();
    let wrong = "wrong-token-value-0042";
    let forge = connect(
        Provider::Gitea,
        &setup.fake.base_url,
        ForgeToken::new(wrong),
    )
    .unwrap();
    let error = forge
        .create_key("team/widgets", "t", "ssh-ed25519 AAAAC3Nzax", false)
        .await
        .expect_err("401");
    assert!(
        matches!(error, ForgeError::Status { status: 401, .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("team/widgets"), "{text}");
    assert!(!text.contains(wrong), "{text}");
    assert!(setup.fake.keys().is_empty());
}

#[tokio::test]
async fn failed_registration_leaves_record() {
    let setup = Setup::new();
    let journal = setup.journal("slug6");
    let forge = connect(
        Provider::Gitea,
        &setup.fake.base_url,
        ForgeToken::new("wrong"),
    )
    .unwrap();
    let error = provision_key(
        forge.as_ref(),
        &journal,
        &setup.key_dir("slug6"),
        &setup.request("slug6"),
    )
    .await
    .expect_err("401");
    assert!(
        matches!(error, ForgeError::Status { status: 401, .. }),
        "{error:?}"
    );
    // The clean-up could not list keys with that token either, so the pending entry
    // stays for gc, which has the right token and finds nothing to delete.
    let entries = journal.entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].key_id, None);
    let report = gc(&setup.state_root(), &token_for).await;
    assert!(report.is_clean(), "{:?}", report.failed);
    assert!(journal.entries().unwrap().is_empty());
}

#[tokio::test]
async fn unreachable_forge_is_request_error() {
    let port = bottle_testkit::git::free_port();
    let forge = connect(
        Provider::Gitea,
        &format!("http://127.0.0.1:{port}"),
        ForgeToken::new(TOKEN),
    )
    .unwrap();
    let error = forge
        .delete_key("team/widgets", 1)
        .await
        .expect_err("refused");
    assert!(matches!(error, ForgeError::Request { .. }), "{error:?}");
    assert!(error.to_string().contains("team/widgets"), "{error}");
}

#[tokio::test]
async fn repo_key_from_bottle_settings() {
    let setup = Setup::new();
    let state = setup.state_root().join("slug7");
    let settings = bottle_forge::ProvisionSettings {
        provider: Provider::Gitea,
        api_url: setup.fake.base_url.clone(),
        token_env: TOKEN_ENV.to_owned(),
        read_only: false,
        title: None,
    };
    let entry = bottle_forge::provision_repo_key(
        &state,
        "slug7",
        "widgets",
        "ssh://git@127.0.0.1:2222/team/widgets.git",
        &settings,
        ForgeToken::new(TOKEN),
    )
    .await
    .unwrap();
    assert_eq!(entry.repo, "team/widgets");
    assert_eq!(entry.private_key, state.join("deploy-keys").join("widgets"));
    assert_eq!(mode(&state.join("deploy-keys")), 0o700);
    assert_eq!(Journal::in_dir(&state).entries().unwrap(), vec![entry]);

    // Teardown with the token revokes it.
    let report = revoke_journal(&Journal::in_dir(&state), &token_for).await;
    assert!(report.is_clean(), "{:?}", report.failed);
    assert!(setup.fake.keys().is_empty());

    let error = bottle_forge::provision_repo_key(
        &state,
        "slug7",
        "widgets",
        "ssh://git@127.0.0.1:2222/widgets.git",
        &settings,
        ForgeToken::new(TOKEN),
    )
    .await
    .expect_err("no owner in the URL");
    assert!(error.to_string().contains("owner/name"), "{error}");
}
