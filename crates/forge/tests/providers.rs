//! The GitHub and GitLab clients against fakes of their deploy-key endpoints.

#![allow(clippy::unwrap_used)]

use bottle_forge::fake::FakeForge;
use bottle_forge::{
    ForgeError, ForgeToken, Journal, KeyRequest, Provider, connect, key_title, provision_key,
    revoke_key,
};

const TOKEN: &str = "forge-token-93ac11";

async fn round_trip(provider: Provider, repo: &str) {
    let dir = tempfile::tempdir().unwrap();
    let authorized_keys = dir.path().join("authorized_keys");
    let fake = FakeForge::start_for(provider, TOKEN, authorized_keys.clone());
    let forge = connect(provider, &fake.base_url, ForgeToken::new(TOKEN)).unwrap();
    let journal = Journal::in_dir(&dir.path().join("state"));
    let request = KeyRequest {
        provider,
        api_url: fake.base_url.clone(),
        repo: repo.to_owned(),
        token_env: "TOKEN".to_owned(),
        read_only: true,
        title: key_title("slug", "widgets", Some("CI")),
        key_file: "widgets".to_owned(),
    };

    let entry = provision_key(forge.as_ref(), &journal, &dir.path().join("keys"), &request)
        .await
        .unwrap();
    let keys = fake.keys();
    assert_eq!(keys.len(), 1, "{provider}");
    assert_eq!(keys[0].repo, repo, "{provider}");
    assert_eq!(keys[0].title, "CI (bot-bottle slug widgets)", "{provider}");
    assert!(keys[0].read_only, "{provider}: read_only reaches the forge");
    assert_eq!(Some(keys[0].id), entry.key_id, "{provider}");
    let authorized = std::fs::read_to_string(&authorized_keys).unwrap();
    assert!(authorized.contains(&entry.public_key), "{provider}");

    revoke_key(forge.as_ref(), &journal, &entry).await.unwrap();
    assert!(fake.keys().is_empty(), "{provider}");
    assert!(journal.entries().unwrap().is_empty(), "{provider}");

    // The same token sent in another forge's header is refused.
    let other = match provider {
        Provider::Github => Provider::Gitea,
        _ => Provider::Github,
    };
    let wrong = connect(other, &fake.base_url, ForgeToken::new(TOKEN)).unwrap();
    let error = wrong
        .create_key(repo, "t", &entry.public_key, false)
        .await
        .expect_err("wrong header");
    assert!(
        matches!(
            error,
            ForgeError::Status { status: 401, .. } | ForgeError::Status { status: 404, .. }
        ),
        "{provider}: {error:?}"
    );
    assert!(!error.to_string().contains(TOKEN));
}

#[tokio::test]
async fn github_round_trip() {
    round_trip(Provider::Github, "team/widgets").await;
}

#[tokio::test]
async fn gitlab_round_trip() {
    round_trip(Provider::Gitlab, "group/sub/widgets").await;
}
