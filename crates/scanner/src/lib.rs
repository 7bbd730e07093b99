//! Secret scanner shared by the egress proxy's DLP and the git gate.
//!
//! A pure library: no I/O, no async, no logging. Build a [`Scanner`] once from the
//! bottle's known secret values, share it, and call [`Scanner::scan`] (or
//! [`Scanner::scan_with`] for a route's subset of detectors) on each request part or
//! pushed object. A [`Finding`] names the rule, detector, encoding and byte span, never
//! the matched text, so it is safe to log and to show. [`redact`] replaces findings with
//! `[REDACTED:<rule>]` markers.
//!
//! ```
//! use bottle_scanner::{Detector, Scanner, redact};
//!
//! let scanner = Scanner::new(&["s3cr3t-v4lue-from-the-host"]);
//! let body = b"note=s3cr3t-v4lue-from-the-host";
//! let findings = scanner.scan(body);
//! assert_eq!(findings[0].rule, "known-secret");
//! assert_eq!(findings[0].detector, Detector::KnownSecrets);
//! assert_eq!(redact(body, &findings), b"note=[REDACTED:known-secret]");
//! ```
//!
//! # Detectors
//!
//! **[`Detector::KnownSecrets`]** finds the values given to [`Scanner::new`]:
//! - raw, in any ASCII letter case;
//! - base64 and base64url, with or without padding, also when the value sits at any
//!   offset inside a longer encoded message (each of the three byte alignments);
//! - hexadecimal in any letter case;
//! - percent-encoded, with every byte outside `A-Z a-z 0-9 - . _ ~` escaped, upper- or
//!   lower-case escapes, and a space as `+` or `%20`;
//! - split by separators: whitespace, quotes, `-_.:/,|+`, and `\n`, `\r`, `\t` escapes,
//!   any number of them anywhere between characters, in any of the forms above
//!   (`"abcd" + "efgh"` string concatenation included);
//! - inside base64 runs, percent-encoded runs and backslash-escaped text (`\u0067`,
//!   `\x67`, `\/`, `\"`) of the input, once decoded (so a value encoded twice, such as
//!   base64 of its hex, is also found).
//!
//! Values shorter than [`MIN_KNOWN_SECRET_LEN`] bytes are ignored: they occur by chance
//! in ordinary text and encoded data. For the same reason, a value with fewer than that
//! many bytes left once its own separators are removed is not searched for in split
//! form.
//!
//! **[`Detector::TokenPatterns`]** finds well-known token formats. The rules are written
//! from each issuer's published format, and [`rule_ids`] lists them. They cover GitHub (`ghp_`, `gho_`,
//! `ghu_`, `ghs_`, `ghr_`, `github_pat_`), GitLab (`glpat-` and other `gl*-` tokens), AWS
//! access key ids (`AKIA`, `ASIA`) and secret access keys (40 characters near an `aws`
//! or `secret` keyword), Slack (`xox?-`, `xapp-`, webhook URLs), Stripe live keys
//! (`sk_live_`, `rk_live_`), OpenAI (`sk-proj-`, `sk-svcacct-`, `sk-admin-`, legacy
//! `sk-`), Anthropic (`sk-ant-`), Google API keys (`AIza`), npm (`npm_`), PyPI (`pypi-`
//! macaroons), JWTs, and generic assignments (`password = "..."`, `"api_key": "..."`)
//! whose value looks random. Each rule also runs on decoded base64, percent-encoded and
//! backslash-escaped text, and such a finding covers the encoded characters.
//!
//! **[`Detector::PrivateKeys`]** finds PEM private key blocks of any kind (PKCS#1 RSA,
//! SEC1 EC, DSA, PKCS#8 plain and encrypted, OpenSSH, PGP, SSH2), raw, base64-encoded,
//! percent-encoded or backslash-escaped. The span covers the whole block up to the END
//! line.
//!
//! # Limits
//!
//! - Token rules do not verify checksums (GitHub's and npm's CRC32), so test tokens
//!   match; they reject low-entropy bodies such as `ghp_xxxx...` placeholders.
//! - A private key BEGIN line followed by fewer than 64 base64 characters (a parser's
//!   source code, a truncated key) is not reported. PuTTY `.ppk` keys and DER (binary)
//!   keys are not recognised.
//! - Base64 inside decoded base64 is decoded again, three levels deep; other decoded
//!   text is not decoded again, so base64 inside a percent-encoded run is decoded only if
//!   the base64 characters themselves are not escaped. HTML entities, quoted-printable,
//!   compression and archives are not decoded here, so callers decode bodies first.
//! - Short-prefix rules (legacy `sk-`, `AKIA`, `ASIA`) need the token to start a word
//!   (or follow a `\n`, `\r`, `\t` escape), so one glued to a preceding letter is missed
//!   unless it is a known secret.
//! - Known secrets are matched without regard to ASCII case, except in base64 forms, which
//!   are matched exactly. A value split across requests, or interleaved with characters
//!   that are not separators, is not found.
//! - Matches longer than 128 KiB (for example a known secret split with thousands of
//!   separators per character) may be missed in inputs larger than 4 MiB, which are
//!   scanned in windows that overlap by 256 KiB.

mod decode;
mod encode;
mod entropy;
mod finding;
mod fragments;
mod known;
mod patterns;
mod redact;
mod rules;
mod scanner;
mod unescape;

pub use finding::{Detector, Encoding, Finding, RuleId};
pub use known::MIN_KNOWN_SECRET_LEN;
pub use redact::redact;
pub use rules::rule_ids;
pub use scanner::Scanner;

/// Errors from building a [`Scanner`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScannerError {
    /// The encoded forms of the known secrets exceed the Aho-Corasick automaton's size
    /// limits. Likely cause: very many or very large values; pass fewer.
    #[error("failed to compile known secrets into a matcher: {source}")]
    Automaton {
        /// The automaton builder's error (it never contains pattern bytes).
        source: aho_corasick::BuildError,
    },
}
