//! Positive and negative examples for each token-format rule.

mod common;

use common::{BASE32_UPPER, BASE62, BASE64, BASE64URL, HEX, matches_in, random, rules_in};

/// Asserts that `input` yields exactly one finding, of `rule`, covering `expected`.
fn assert_found(input: &str, rule: &str, expected: &str) {
    let matches = matches_in(input);
    assert_eq!(
        matches,
        vec![(rule_name(rule), expected.to_string())],
        "input: {input}"
    );
}

fn rule_name(rule: &str) -> &'static str {
    bottle_scanner::rule_ids()
        .into_iter()
        .map(|id| id.as_str())
        .find(|id| *id == rule)
        .unwrap_or_else(|| panic!("no rule named {rule}"))
}

fn assert_clean(input: &str) {
    assert_eq!(rules_in(input), Vec::<&str>::new(), "input: {input}");
}

#[test]
fn github_classic_tokens() {
    let kinds = [
        ("ghp_", "github-pat"),
        ("gho_", "github-oauth-token"),
        ("ghu_", "github-user-to-server-token"),
        ("ghs_", "github-server-to-server-token"),
        ("ghr_", "github-refresh-token"),
    ];
    for (seed, (prefix, rule)) in kinds.into_iter().enumerate() {
        let token = format!("{prefix}{}", random(seed as u64, BASE62, 36));
        assert_found(&format!("Authorization: bearer {token}\n"), rule, &token);
        // Glued to a JSON `\n` escape, as in a string literal.
        assert_found(&format!(r#"{{"body":"see\n{token}"}}"#), rule, &token);
    }
}

#[test]
fn github_classic_negatives() {
    let body = random(1, BASE62, 36);
    assert_clean(&format!("ghp_{}", &body[..35]));
    assert_clean(&format!("ghx_{body}"));
    assert_clean(&format!("ghp_{}", "x".repeat(36)));
    assert_clean(&format!("ghp_{body}_more"));
}

#[test]
fn github_fine_grained_pat() {
    let token = format!(
        "github_pat_{}_{}",
        random(2, BASE62, 22),
        random(3, BASE62, 59)
    );
    assert_found(
        &format!("GH_TOKEN={token}"),
        "github-fine-grained-pat",
        &token,
    );
    assert_clean(&format!("github_pat_{}", random(2, BASE62, 22)));
}

#[test]
fn gitlab_tokens() {
    let token = format!("glpat-{}", random(4, BASE64URL, 20));
    assert_found(&format!("PRIVATE-TOKEN: {token}"), "gitlab-pat", &token);
    let deploy = format!("gldt-{}", random(5, BASE64URL, 20));
    assert_found(&format!("url: {deploy} "), "gitlab-deploy-token", &deploy);
    assert_clean(&format!("glpat-{}", random(4, BASE64URL, 12)));
    assert_clean("glpat-xxxxxxxxxxxxxxxxxxxx");
}

#[test]
fn aws_access_key_id() {
    for prefix in ["AKIA", "ASIA"] {
        let id = format!("{prefix}{}", random(6, BASE32_UPPER, 16));
        assert_found(
            &format!("aws_access_key_id = {id}\n"),
            "aws-access-key-id",
            &id,
        );
        assert_found(&format!(r#""keys:\n{id}""#), "aws-access-key-id", &id);
    }
    let id = random(6, BASE32_UPPER, 16);
    assert_clean(&format!("AKIA{}", &id[..15]));
    assert_clean(&format!("XAKIA{id}"));
    assert_clean("AKIAXXXXXXXXXXXXXXXX");
    // `0`, `1`, `8` and `9` are outside the base32 alphabet.
    assert_clean("AKIA0189018901890189");
}

#[test]
fn aws_secret_access_key() {
    let secret = random(7, BASE64, 40);
    assert_found(
        &format!("aws_secret_access_key = {secret}\n"),
        "aws-secret-access-key",
        &secret,
    );
    assert_found(
        &format!("{{\"SecretAccessKey\": \"{secret}\"}}"),
        "aws-secret-access-key",
        &secret,
    );
}

#[test]
fn aws_secret_access_key_negatives() {
    let secret = random(7, BASE64, 40);
    // No keyword nearby.
    assert_clean(&format!("value {secret}\n"));
    // A git object id next to the keyword is hex, too low in entropy.
    assert_clean(&format!("secret commit {}\n", random(8, HEX, 40)));
    // Part of a longer base64 run.
    assert_clean(&format!("aws blob {}\n", random(9, BASE64, 80)));
}

#[test]
fn slack_tokens() {
    let bot = format!(
        "xoxb-{}-{}-{}",
        "1234567890",
        "9876543210123",
        random(10, BASE62, 24)
    );
    assert_found(&format!("SLACK={bot}"), "slack-token", &bot);
    let user = format!("xoxp-1234-5678-9012-{}", random(11, HEX, 32));
    assert_found(&format!("\"{user}\""), "slack-token", &user);
    let hook = format!(
        "https://hooks.slack.com/services/T{}/B{}/{}",
        random(12, BASE32_UPPER, 8),
        random(13, BASE32_UPPER, 8),
        random(14, BASE62, 24)
    );
    assert_found(&format!("webhook: {hook}\n"), "slack-webhook-url", &hook);
    assert_clean("xoxb-short");
    assert_clean(&format!("xoxq-1234-{}", random(10, BASE62, 24)));
}

#[test]
fn stripe_live_keys() {
    let secret = format!("sk_live_{}", random(15, BASE62, 24));
    assert_found(
        &format!("stripe.api_key = {secret};"),
        "stripe-secret-key",
        &secret,
    );
    let restricted = format!("rk_live_{}", random(16, BASE62, 99));
    assert_found(
        &format!("({restricted})"),
        "stripe-restricted-key",
        &restricted,
    );
    assert_clean(&format!("sk_test_{}", random(15, BASE62, 24)));
    assert_clean(&format!("sk_live_{}", random(15, BASE62, 12)));
}

#[test]
fn openai_keys() {
    let project = format!("sk-proj-{}", random(17, BASE64URL, 120));
    assert_found(
        &format!("OPENAI_API_KEY={project}\n"),
        "openai-api-key",
        &project,
    );
    let legacy = format!(
        "sk-{}T3BlbkFJ{}",
        random(18, BASE62, 20),
        random(19, BASE62, 20)
    );
    assert_found(&format!("key: {legacy}\n"), "openai-api-key", &legacy);
    let plain = format!("sk-{}", random(20, BASE62, 48));
    assert_found(&format!("[{plain}]"), "openai-api-key", &plain);
    assert_found(&format!(r#""key:\t{plain}\n""#), "openai-api-key", &plain);
    assert_found(&plain, "openai-api-key", &plain);
}

#[test]
fn openai_negatives() {
    // `sk-` inside a word is not a key prefix.
    assert_clean(&format!("task-{}", random(20, BASE62, 48)));
    assert_clean(&format!("sk-{}", random(21, BASE62, 30)));
    assert_clean("sk-proj-short");
}

#[test]
fn anthropic_keys() {
    let key = format!("sk-ant-api03-{}AA", random(22, BASE64URL, 93));
    assert_found(&format!("x-api-key: {key}\r\n"), "anthropic-api-key", &key);
    let admin = format!("sk-ant-admin01-{}", random(23, BASE64URL, 60));
    assert_found(&format!("'{admin}'"), "anthropic-api-key", &admin);
    assert_clean("sk-ant-api03-short");
}

#[test]
fn google_api_key() {
    let key = format!("AIza{}", random(24, BASE64URL, 35));
    assert_found(
        &format!("https://maps.example/api?x=1&k={key}&y=2"),
        "google-api-key",
        &key,
    );
    assert_found(&key, "google-api-key", &key);
    assert_clean(&format!("AIza{}", random(24, BASE62, 34)));
    assert_clean(&format!("AIza{}", random(24, BASE62, 36)));
}

#[test]
fn npm_token() {
    let token = format!("npm_{}", random(25, BASE62, 36));
    assert_found(
        &format!("//registry.npmjs.org/:_authToken={token}\n"),
        "npm-token",
        &token,
    );
    assert_clean(&format!("npm_{}", random(25, BASE62, 35)));
    assert_clean(&format!("npm_{}", random(25, BASE62, 37)));
}

#[test]
fn pypi_token() {
    let token = format!("pypi-AgEIcHlwaS5vcmc{}", random(26, BASE64URL, 150));
    assert_found(&format!("password = {token}\n"), "pypi-token", &token);
    let test = format!("pypi-AgENdGVzdC5weXBpLm9yZw{}", random(27, BASE64URL, 100));
    assert_found(&format!("TWINE={test}"), "pypi-token", &test);
    assert_clean(&format!(
        "pypi-AgEIcHlwaS5vcmc{}",
        random(26, BASE64URL, 20)
    ));
    assert_clean(&format!("pypi-{}", random(28, BASE62, 150)));
}

#[test]
fn jwt() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(br#"{"sub":"1234567890","iat":1516239022}"#);
    let signature = random(29, BASE64URL, 43);
    let token = format!("{header}.{claims}.{signature}");
    assert_found(&format!("Authorization: Bearer {token}\n"), "jwt", &token);
    // Unsigned tokens and two-part strings are not reported.
    assert_clean(&format!("{header}.{claims}."));
    assert_clean(&format!("{header}.{claims}"));
}

#[test]
fn generic_secret_assignments() {
    let value = random(30, BASE62, 20);
    assert_found(
        &format!("{{\"Password\": \"{value}\"}}"),
        "generic-secret",
        &value,
    );
    assert_found(&format!("db_password={value}\n"), "generic-secret", &value);
    assert_found(&format!("API_KEY: '{value}'"), "generic-secret", &value);
    let hex = random(31, HEX, 40);
    assert_found(
        &format!("client_secret = \"{hex}\""),
        "generic-secret",
        &hex,
    );
}

#[test]
fn generic_secret_negatives() {
    assert_clean("password = \"changeme-please\"");
    assert_clean("password: ${DB_PASSWORD}");
    assert_clean("token = get_api_token_for_user_v2()");
    assert_clean("api_key = os.environ[\"API_KEY\"]");
    assert_clean("auth_key: oauth2_client_credentials_flow");
    assert_clean("secret_name = projectSecretName");
}

#[test]
fn escaped_tokens_are_found() {
    let token = format!("ghp_{}", random(32, BASE62, 36));
    let escaped: String = token
        .chars()
        .map(|c| format!("\\u{:04X}", u32::from(c)))
        .collect();
    let input = format!("{{\"body\":\"{escaped}\"}}");
    let findings = bottle_scanner::Scanner::default().scan(input.as_bytes());
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].rule, "github-pat");
    assert_eq!(findings[0].encoding, bottle_scanner::Encoding::Escaped);
    assert_eq!(&input[findings[0].range()], escaped);
}

#[test]
fn gitlab_routable_token() {
    let token = format!(
        "glpat-{}.01.{}",
        random(33, BASE64URL, 120),
        random(34, BASE62, 9)
    );
    assert_found(&format!("token: {token}\n"), "gitlab-pat", &token);
}
