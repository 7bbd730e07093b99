//! The token-format and private-key rules, written from each issuer's published format.
//!
//! Every pattern is compiled with Unicode off, so `\b` and the classes are ASCII. When a
//! pattern has a capture group, group 1 is the reported span and the rest only anchors
//! it. Keywords feed the prefilter: a rule runs on an input only if one of its keywords
//! occurs there (compared without regard to ASCII case).
//!
//! Rules whose prefix is short enough to occur inside ordinary words (`sk-` in `task-`)
//! start with the `word_start!` pattern. Longer prefixes such as `ghp_` match even when glued to the
//! preceding word.

use crate::finding::{Detector, RuleId};

/// Start of a token that must not continue a word. That is the start of the input, a byte
/// that is not a word character, or a `\n`, `\r` or `\t` escape as written in JSON and C
/// strings, so `"...\nsk-..."` still matches. The pattern consumes that byte, so the
/// token is group 1.
macro_rules! word_start {
    () => {
        r"(?:^|[^A-Za-z0-9_]|\\[nrt])"
    };
}

/// Extra validation of a regex match, to keep false positives down.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Check {
    /// The Shannon entropy of the span is at least this many bits per byte. It rejects
    /// placeholders such as `ghp_xxxxxxxx...` in documentation.
    MinEntropy(f64),
    /// AWS secret access key: exactly 40 characters of its alphabet, not part of a longer
    /// base64 run, random-looking, and preceded closely by `aws` or `secret`.
    AwsSecretKey,
    /// Value of a `password = ...` style assignment: random-looking mixed characters.
    GenericValue,
    /// A PEM or OpenSSH private key marker followed by a key body.
    PrivateKeyBlock,
}

/// One rule of the table.
#[derive(Debug)]
pub(crate) struct RuleSpec {
    pub id: RuleId,
    pub detector: Detector,
    pub keywords: &'static [&'static str],
    pub pattern: &'static str,
    pub check: Check,
}

const fn rule(
    id: &'static str,
    keywords: &'static [&'static str],
    pattern: &'static str,
    check: Check,
) -> RuleSpec {
    RuleSpec {
        id: RuleId::new(id),
        detector: Detector::TokenPatterns,
        keywords,
        pattern,
        check,
    }
}

/// Entropy floor for tokens whose prefix already identifies them. A random body is far
/// above it (about 4.5 bits per byte for 36 base62 characters); repeated-letter
/// placeholders are far below.
const TOKEN_ENTROPY: f64 = 3.0;

/// The rule table. Several entries may share an id when a format has variants.
pub(crate) static RULES: &[RuleSpec] = &[
    // GitHub: a prefix naming the token kind, then 36 base62 characters (30 random and a
    // 6-character CRC32 checksum). GitHub may lengthen tokens, so up to 255 in total is
    // accepted. The checksum is not verified, so test tokens are found too.
    rule(
        "github-pat",
        &["ghp_"],
        r"(ghp_[A-Za-z0-9]{36,251})\b",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    rule(
        "github-oauth-token",
        &["gho_"],
        r"(gho_[A-Za-z0-9]{36,251})\b",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    rule(
        "github-user-to-server-token",
        &["ghu_"],
        r"(ghu_[A-Za-z0-9]{36,251})\b",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    rule(
        "github-server-to-server-token",
        &["ghs_"],
        r"(ghs_[A-Za-z0-9]{36,251})\b",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    rule(
        "github-refresh-token",
        &["ghr_"],
        r"(ghr_[A-Za-z0-9]{36,251})\b",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    // Fine-grained personal access tokens: `github_pat_`, 22 characters, `_`, 59
    // characters. Lengths are slightly relaxed for future variants.
    rule(
        "github-fine-grained-pat",
        &["github_pat_"],
        r"(github_pat_[A-Za-z0-9]{20,40}_[A-Za-z0-9]{50,200})\b",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    // GitLab: `glpat-` and 20 characters of `[0-9A-Za-z_-]`. Newer routable tokens have a
    // payload of up to 310 characters and may carry `.`-separated version and checksum
    // parts.
    rule(
        "gitlab-pat",
        &["glpat-"],
        r"(glpat-[A-Za-z0-9_-]{20,320}(?:\.[A-Za-z0-9_-]{1,64}){0,3})",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    rule(
        "gitlab-deploy-token",
        &["gldt-"],
        r"(gldt-[A-Za-z0-9_-]{20,300})",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    rule(
        "gitlab-runner-token",
        &["glrt-"],
        r"(glrt-[A-Za-z0-9_.-]{20,300})",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    rule(
        "gitlab-pipeline-trigger-token",
        &["glptt-"],
        r"(glptt-[A-Za-z0-9_-]{20,300})",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    rule(
        "gitlab-oauth-secret",
        &["gloas-"],
        r"(gloas-[A-Za-z0-9_-]{20,300})",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    // AWS access key ids: `AKIA` (long-term) or `ASIA` (temporary), then 16 characters of
    // the RFC 4648 base32 alphabet (`A-Z`, `2-7`), 20 in total.
    rule(
        "aws-access-key-id",
        &["AKIA", "ASIA"],
        concat!(word_start!(), r"((?:AKIA|ASIA)[A-Z2-7]{16})\b"),
        Check::MinEntropy(2.5),
    ),
    // AWS secret access keys have no prefix: 40 characters of `[A-Za-z0-9/+]`. Found
    // only near an `aws` or `secret` keyword and when random-looking.
    rule(
        "aws-secret-access-key",
        &["aws", "secret"],
        r"[A-Za-z0-9/+=]{40,}",
        Check::AwsSecretKey,
    ),
    // Slack: `xox` + token kind (`b` bot, `p` user, `a` app, `r` refresh, `s` session,
    // `e` rotating), then dash-separated numeric ids and a random part.
    rule(
        "slack-token",
        &["xox"],
        r"(xox[abeprs]-[0-9]{1,20}-[A-Za-z0-9-]{8,250})",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    rule(
        "slack-app-token",
        &["xapp-"],
        r"(xapp-[0-9]-[A-Za-z0-9-]{20,250})",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    rule(
        "slack-webhook-url",
        &["hooks.slack.com"],
        r"(https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{20,200})",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    // Stripe live-mode secret and restricted keys: `sk_live_` / `rk_live_` and at least
    // 24 alphanumerics (newer keys are about 100). Test-mode keys are not secrets.
    rule(
        "stripe-secret-key",
        &["sk_live_"],
        r"(sk_live_[A-Za-z0-9]{24,247})\b",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    rule(
        "stripe-restricted-key",
        &["rk_live_"],
        r"(rk_live_[A-Za-z0-9]{24,247})\b",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    // OpenAI: project, service-account and admin keys (`sk-proj-`, `sk-svcacct-`,
    // `sk-admin-`) have a long base64url body. Older user keys are `sk-` and 48
    // alphanumerics, often with `T3BlbkFJ` (base64 of "OpenAI") in the middle.
    rule(
        "openai-api-key",
        &["sk-proj-", "sk-svcacct-", "sk-admin-"],
        r"(sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,300})",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    rule(
        "openai-api-key",
        &["sk-"],
        concat!(
            word_start!(),
            r"(sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|sk-[A-Za-z0-9]{48})\b"
        ),
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    // Anthropic: `sk-ant-`, a kind and version such as `api03` or `admin01`, `-`, and a
    // long base64url body.
    rule(
        "anthropic-api-key",
        &["sk-ant-"],
        r"(sk-ant-[a-z]{2,10}[0-9]{2}-[A-Za-z0-9_-]{32,300})",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    // Google API keys: `AIza` and exactly 35 characters of `[0-9A-Za-z_-]`.
    rule(
        "google-api-key",
        &["AIza"],
        r"(AIza[A-Za-z0-9_-]{35})(?:[^A-Za-z0-9_-]|$)",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    // npm access tokens: `npm_` and 36 base62 characters (random part and CRC32).
    rule(
        "npm-token",
        &["npm_"],
        r"(npm_[A-Za-z0-9]{36})\b",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    // PyPI API tokens are macaroons: `pypi-` and the base64 of a macaroon whose location
    // is `pypi.org` (or `test.pypi.org`), so the first characters are fixed.
    rule(
        "pypi-token",
        &["pypi-AgEIcHlwaS5vcmc", "pypi-AgENdGVzdC5weXBpLm9yZw"],
        r"(pypi-AgE(?:IcHlwaS5vcmc|NdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,})",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    // JSON Web Tokens (RFC 7519, compact JWS) are three base64url parts joined by `.`.
    // The header is a JSON object, so it starts with `eyJ` (base64 of `{"`). Unsigned
    // tokens (empty signature) are not reported.
    rule(
        "jwt",
        &["eyJ"],
        r"(eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,})",
        Check::MinEntropy(TOKEN_ENTROPY),
    ),
    // `password = "..."`, `"api_key": "..."`, `token: ...` and the like: the value is
    // group 1 and must look random (see `Check::GenericValue`).
    rule(
        "generic-secret",
        &[
            "password",
            "passwd",
            "passphrase",
            "pwd",
            "secret",
            "token",
            "key",
            "credential",
        ],
        concat!(
            r"(?i:password|passwd|passphrase|pwd|secret|token|api[_-]?key|access[_-]?key|",
            r"auth[_-]?key|private[_-]?key|credentials?)",
            r#"[A-Za-z0-9_.-]{0,24}["']?[ \t]{0,4}(?:=|:|=>|:=)[ \t]{0,4}["']?"#,
            r"([A-Za-z0-9+/=_.~!@#$%^&*?-]{12,128})"
        ),
        Check::GenericValue,
    ),
    // PEM (RFC 7468) and OpenSSH private keys: `-----BEGIN <kind> PRIVATE KEY-----` with
    // any kind (RSA, EC, DSA, OPENSSH, ENCRYPTED, none for PKCS#8, PGP ... BLOCK), and
    // the SSH2 `---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----` variant.
    RuleSpec {
        id: RuleId::new("private-key"),
        detector: Detector::PrivateKeys,
        keywords: &["PRIVATE KEY"],
        pattern: r"-{4,5} ?BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)? ?-{4,5}",
        check: Check::PrivateKeyBlock,
    },
];

/// Returns the id of every rule, known secrets included, each once.
pub fn rule_ids() -> Vec<RuleId> {
    let mut ids = vec![RuleId::KNOWN_SECRET];
    for spec in RULES {
        if !ids.contains(&spec.id) {
            ids.push(spec.id);
        }
    }
    ids
}
