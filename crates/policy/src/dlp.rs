//! A route's data-loss-prevention settings: which scanners run on requests and responses,
//! and what a finding in a request does.

use serde::{Deserialize, Deserializer, Serialize};

/// The DLP settings of a route. The default runs every scanner and holds a request with a
/// finding for an operator (`supervise`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dlp {
    /// Scanners run on outbound requests; `false` in a bottle file gives an empty list.
    #[serde(default = "OutboundDetector::all", deserialize_with = "list_or_false")]
    pub outbound_detectors: Vec<OutboundDetector>,
    /// Scanners run on responses; `false` in a bottle file gives an empty list.
    #[serde(default = "InboundDetector::all", deserialize_with = "list_or_false")]
    pub inbound_detectors: Vec<InboundDetector>,
    /// The action on a finding in a request.
    #[serde(default)]
    pub outbound_on_match: OnMatch,
}

impl Default for Dlp {
    fn default() -> Dlp {
        Dlp {
            outbound_detectors: OutboundDetector::all(),
            inbound_detectors: InboundDetector::all(),
            outbound_on_match: OnMatch::Supervise,
        }
    }
}

impl Dlp {
    /// Returns true when the default settings apply, so serialization can omit them.
    pub fn is_default(&self) -> bool {
        *self == Dlp::default()
    }
}

/// An outbound scanner, named as bottle files spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundDetector {
    /// The bottle's own secret values, raw and encoded.
    KnownSecrets,
    /// Well-known token formats.
    TokenPatterns,
    /// Private key blocks.
    PrivateKeys,
}

impl OutboundDetector {
    /// Every outbound scanner, the default.
    pub const ALL: [OutboundDetector; 3] = [
        OutboundDetector::KnownSecrets,
        OutboundDetector::TokenPatterns,
        OutboundDetector::PrivateKeys,
    ];

    fn all() -> Vec<OutboundDetector> {
        OutboundDetector::ALL.to_vec()
    }
}

/// An inbound scanner, named as bottle files spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundDetector {
    /// Prompt injection in text responses.
    PromptInjection,
}

impl InboundDetector {
    /// Every inbound scanner, the default.
    pub const ALL: [InboundDetector; 1] = [InboundDetector::PromptInjection];

    fn all() -> Vec<InboundDetector> {
        InboundDetector::ALL.to_vec()
    }
}

/// The action on an outbound finding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMatch {
    /// Hold the request until an operator decides; deny if nobody does in time.
    #[default]
    Supervise,
    /// Replace each matched value with a marker and forward.
    Redact,
    /// Refuse the request.
    Block,
}

/// Accepts a list of names, `false` (no scanner) or `true` (every scanner).
fn list_or_false<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + AllDetectors,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrBool<T> {
        List(Vec<T>),
        Bool(bool),
    }
    Ok(match ListOrBool::<T>::deserialize(deserializer)? {
        ListOrBool::List(list) => list,
        ListOrBool::Bool(false) => Vec::new(),
        ListOrBool::Bool(true) => T::all_detectors(),
    })
}

/// Detector kinds that `true` expands to.
trait AllDetectors: Sized {
    fn all_detectors() -> Vec<Self>;
}

impl AllDetectors for OutboundDetector {
    fn all_detectors() -> Vec<Self> {
        OutboundDetector::all()
    }
}

impl AllDetectors for InboundDetector {
    fn all_detectors() -> Vec<Self> {
        InboundDetector::all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_every_scanner_and_supervise() {
        let dlp: Dlp = serde_json::from_str("{}").expect("parses");
        assert_eq!(dlp, Dlp::default());
        assert_eq!(dlp.outbound_detectors.len(), 3);
        assert_eq!(dlp.outbound_on_match, OnMatch::Supervise);
    }

    #[test]
    fn false_turns_scanners_off() {
        let dlp: Dlp = serde_json::from_str(
            r#"{"outbound_detectors": false, "inbound_detectors": false,
                "outbound_on_match": "block"}"#,
        )
        .expect("parses");
        assert!(dlp.outbound_detectors.is_empty());
        assert!(dlp.inbound_detectors.is_empty());
        assert_eq!(dlp.outbound_on_match, OnMatch::Block);
    }

    #[test]
    fn lists_name_scanners() {
        let dlp: Dlp =
            serde_json::from_str(r#"{"outbound_detectors": ["private_keys"]}"#).expect("parses");
        assert_eq!(dlp.outbound_detectors, vec![OutboundDetector::PrivateKeys]);
        assert!(serde_json::from_str::<Dlp>(r#"{"outbound_detectors": ["dns"]}"#).is_err());
        assert!(serde_json::from_str::<Dlp>(r#"{"outbound_on_match": "allow"}"#).is_err());
    }
}
