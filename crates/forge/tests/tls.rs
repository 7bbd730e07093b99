//! The HTTPS path: a forge whose certificate no system root signs is never sent the token.

#![allow(clippy::unwrap_used)]

use bottle_forge::{ForgeError, ForgeToken, Provider, connect};
use bottle_testkit::{RecordingServerThread, TestCa};

#[tokio::test]
async fn untrusted_certificate_rejected() {
    let ca = TestCa::new("untrusted test CA");
    let server = RecordingServerThread::start(&ca, &["localhost"]);
    let api_url = format!("https://localhost:{}", server.https_addr().port());
    let token = "tls-test-token-5521";
    let forge = connect(Provider::Gitea, &api_url, ForgeToken::new(token)).unwrap();

    let error = forge
        .delete_key("team/widgets", 1)
        .await
        .expect_err("untrusted");
    let ForgeError::Request { reason, .. } = &error else {
        panic!("expected a request error, got {error:?}");
    };
    assert!(reason.contains("TLS handshake"), "{reason}");
    assert!(!error.to_string().contains(token));
    assert!(
        server.requests().is_empty(),
        "no request reached the server"
    );

    // Positive control: the same server's plain HTTP listener does receive the request,
    // so the rejection above came from the certificate check.
    let plain = connect(
        Provider::Gitea,
        &format!("http://127.0.0.1:{}", server.http_addr().port()),
        ForgeToken::new(token),
    )
    .unwrap();
    let _ = plain.delete_key("team/widgets", 1).await;
    assert_eq!(server.requests().len(), 1);
}
