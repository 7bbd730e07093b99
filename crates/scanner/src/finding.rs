//! Findings: the rule that matched, its detector, the encoding and the byte span.

use std::fmt;

/// Stable name of the rule that matched, such as `github-pat` or `known-secret`.
///
/// Rule ids go into audit logs, 403 bodies and push rejections, so they never change
/// meaning once released. [`RuleId::as_str`] gives the bare name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(&'static str);

impl RuleId {
    /// Rule id of every match of a known secret value, in any encoding.
    pub const KNOWN_SECRET: RuleId = RuleId("known-secret");

    pub(crate) const fn new(name: &'static str) -> RuleId {
        RuleId(name)
    }

    /// Returns the rule's stable name.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl fmt::Debug for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl PartialEq<str> for RuleId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for RuleId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A group of rules that a route can switch on or off as a whole.
///
/// The names returned by [`Detector::as_str`] are the ones bottle files use in
/// `dlp.outbound_detectors`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    /// Exact secret values given to the scanner (token ref values, copied or prompted
    /// `env` values, key material), raw and in encoded or separator-split forms.
    KnownSecrets,
    /// Well-known token formats (GitHub, AWS, Slack, ...) and generic `password = ...`
    /// assignments with a random-looking value.
    TokenPatterns,
    /// PEM and OpenSSH private key blocks.
    PrivateKeys,
}

impl Detector {
    /// Every detector, in the order a scan runs them.
    pub const ALL: [Detector; 3] = [
        Detector::KnownSecrets,
        Detector::TokenPatterns,
        Detector::PrivateKeys,
    ];

    /// Returns the name bottle files use for this detector.
    pub const fn as_str(self) -> &'static str {
        match self {
            Detector::KnownSecrets => "known_secrets",
            Detector::TokenPatterns => "token_patterns",
            Detector::PrivateKeys => "private_keys",
        }
    }

    /// Parses a detector name as bottle files spell it (`known_secrets`, ...).
    pub fn from_name(name: &str) -> Option<Detector> {
        Detector::ALL
            .into_iter()
            .find(|detector| detector.as_str() == name)
    }
}

impl fmt::Display for Detector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The encoding of the matched bytes in the scanned input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Encoding {
    /// As is.
    Raw,
    /// Base64 or base64url, found directly or by decoding a base64 run of the input.
    Base64,
    /// Hexadecimal, in any letter case.
    Hex,
    /// Percent-encoded (URL encoding), found directly or by decoding a percent-encoded
    /// run of the input.
    Percent,
    /// Written with the backslash escapes of JSON, JavaScript or C string literals
    /// (`\u0067`, `\x67`, `\/`), found by decoding them.
    Escaped,
    /// With separator characters (whitespace, quotes, `-_.:/,|+` or `\n`-style escapes)
    /// inserted between its characters.
    Separated,
    /// In UTF-16 text (little- or big-endian), found in the text's one-byte view.
    Utf16,
}

impl Encoding {
    /// Returns a short lower-case name for logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Encoding::Raw => "raw",
            Encoding::Base64 => "base64",
            Encoding::Hex => "hex",
            Encoding::Percent => "percent",
            Encoding::Escaped => "escaped",
            Encoding::Separated => "separated",
            Encoding::Utf16 => "utf-16",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One match: the rule, its detector, the encoding it was found in, and its byte span.
///
/// A finding carries no matched text, so its `Debug` and `Display` output is safe to log.
/// `start..end` is a byte range of the scanned input. For a match found by decoding a
/// base64 or percent-encoded run, it covers the encoded characters that produced the
/// match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Finding {
    /// The rule that matched.
    pub rule: RuleId,
    /// The detector the rule belongs to.
    pub detector: Detector,
    /// Encoding of the match in the input.
    pub encoding: Encoding,
    /// Byte offset of the first matched byte.
    pub start: usize,
    /// Byte offset one past the last matched byte.
    pub end: usize,
    /// 1-based line number of `start` (lines end at `\n`).
    pub line: usize,
}

impl Finding {
    /// Returns the span as a range, for slicing the scanned input.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {}) at line {}, bytes {}..{}",
            self.rule, self.detector, self.encoding, self.line, self.start, self.end
        )
    }
}
