//! Outbound DLP on WebSocket connections: frames from the agent are parsed, unmasked and
//! reassembled into messages, and each message is scanned before any of its frames is
//! forwarded. A message with a finding closes the connection, whatever the route's
//! `outbound_on_match`, because a frame cannot be held for approval or rewritten
//! without breaking the protocol. Frames from the upstream are relayed unparsed.

use bottle_scanner::{Detector, Scanner};

use crate::dlp::{self, DlpFinding, Location, RequestParts};

/// Largest message (all fragments) held for scanning. A larger one closes the connection.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// The reason the relay stopped forwarding the agent's frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) reason: String,
    pub(crate) findings: Vec<DlpFinding>,
}

impl Violation {
    fn protocol(reason: &str) -> Violation {
        Violation {
            reason: reason.to_owned(),
            findings: Vec::new(),
        }
    }
}

/// Parses the agent's byte stream into frames and releases them once scanned.
#[derive(Debug, Default)]
pub(crate) struct FrameScanner {
    /// Bytes received but not yet parsed into a whole frame.
    input: Vec<u8>,
    /// Raw frames of the message being received, forwarded once it is complete and clean.
    held: Vec<u8>,
    /// Unmasked payload of the message being received.
    message: Vec<u8>,
}

/// One parsed frame header.
struct Header {
    fin: bool,
    rsv: u8,
    opcode: u8,
    masked: bool,
    mask: [u8; 4],
    payload_start: usize,
    payload_len: usize,
}

impl FrameScanner {
    /// Takes bytes from the agent and returns the bytes that may go to the upstream, or
    /// the violation that must close the connection.
    pub(crate) fn push(
        &mut self,
        bytes: &[u8],
        scanner: &Scanner,
        detectors: &[Detector],
    ) -> Result<Vec<u8>, Violation> {
        self.input.extend_from_slice(bytes);
        let mut forward = Vec::new();
        while let Some(header) = parse_header(&self.input)? {
            let end = header.payload_start + header.payload_len;
            if self.input.len() < end {
                break;
            }
            let frame: Vec<u8> = self.input.drain(..end).collect();
            if header.rsv != 0 {
                return Err(Violation::protocol(
                    "a compressed or extended WebSocket frame cannot be scanned",
                ));
            }
            let mut payload = frame[header.payload_start..].to_vec();
            if header.masked {
                for (index, byte) in payload.iter_mut().enumerate() {
                    *byte ^= header.mask[index % 4];
                }
            }
            if header.opcode >= 8 {
                // Control frames (close, ping, pong) stand alone and may carry a reason.
                check(scanner, detectors, &payload)?;
                forward.extend_from_slice(&frame);
                continue;
            }
            self.held.extend_from_slice(&frame);
            self.message.extend_from_slice(&payload);
            if self.message.len() > MAX_MESSAGE {
                return Err(Violation::protocol(
                    "a WebSocket message exceeds the size the proxy can scan",
                ));
            }
            if header.fin {
                check(scanner, detectors, &self.message)?;
                self.message.clear();
                forward.append(&mut self.held);
            }
        }
        Ok(forward)
    }
}

/// Scans one message payload.
fn check(scanner: &Scanner, detectors: &[Detector], payload: &[u8]) -> Result<(), Violation> {
    let parts = RequestParts {
        body: payload,
        ..RequestParts::default()
    };
    let found = dlp::scan_request(scanner, detectors, &parts);
    if found.is_empty() {
        return Ok(());
    }
    let findings: Vec<DlpFinding> = found
        .iter()
        .map(|located| DlpFinding {
            location: Location::WebSocket,
            ..located.finding.clone()
        })
        .collect();
    let rules: Vec<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
    Err(Violation {
        reason: format!("WebSocket closed: a message carries {}", rules.join(", ")),
        findings,
    })
}

/// Parses a frame header at the start of `bytes`, or returns `None` when more bytes are
/// needed.
fn parse_header(bytes: &[u8]) -> Result<Option<Header>, Violation> {
    if bytes.len() < 2 {
        return Ok(None);
    }
    let fin = bytes[0] & 0x80 != 0;
    let rsv = (bytes[0] >> 4) & 0x07;
    let opcode = bytes[0] & 0x0F;
    let masked = bytes[1] & 0x80 != 0;
    let short = usize::from(bytes[1] & 0x7F);
    let (payload_len, mut at) = match short {
        126 => {
            let Some(raw) = bytes.get(2..4) else {
                return Ok(None);
            };
            (usize::from(u16::from_be_bytes([raw[0], raw[1]])), 4)
        }
        127 => {
            let Some(raw) = bytes.get(2..10) else {
                return Ok(None);
            };
            let mut array = [0u8; 8];
            array.copy_from_slice(raw);
            let length = usize::try_from(u64::from_be_bytes(array))
                .ok()
                .filter(|length| *length <= MAX_MESSAGE)
                .ok_or_else(|| {
                    Violation::protocol("a WebSocket frame exceeds the size the proxy can scan")
                })?;
            (length, 10)
        }
        length => (length, 2),
    };
    if payload_len > MAX_MESSAGE {
        return Err(Violation::protocol(
            "a WebSocket frame exceeds the size the proxy can scan",
        ));
    }
    let mut mask = [0u8; 4];
    if masked {
        let Some(raw) = bytes.get(at..at + 4) else {
            return Ok(None);
        };
        mask.copy_from_slice(raw);
        at += 4;
    }
    Ok(Some(Header {
        fin,
        rsv,
        opcode,
        masked,
        mask,
        payload_start: at,
        payload_len,
    }))
}

/// Builds a masked client frame, for tests.
#[cfg(test)]
pub(crate) fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
    let length = payload.len();
    if length < 126 {
        frame.push(0x80 | u8::try_from(length).expect("short"));
    } else {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&u16::try_from(length).expect("test size").to_be_bytes());
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "websocket-secret-31c9f0";

    #[test]
    fn clean_messages_pass_once_complete() {
        let scanner = Scanner::new(&[SECRET]);
        let mut frames = FrameScanner::default();
        let first = client_frame(false, 1, b"hello ");
        let last = client_frame(true, 0, b"world");
        let out = frames
            .push(&first, &scanner, &Detector::ALL)
            .expect("clean");
        assert!(
            out.is_empty(),
            "a fragment was forwarded before the message was scanned"
        );
        // The last frame arrives in two pieces.
        let (a, b) = last.split_at(3);
        assert!(
            frames
                .push(a, &scanner, &Detector::ALL)
                .expect("clean")
                .is_empty()
        );
        let out = frames.push(b, &scanner, &Detector::ALL).expect("clean");
        assert_eq!(out, [first, last].concat());
    }

    #[test]
    fn secret_split_over_fragments_is_found() {
        let scanner = Scanner::new(&[SECRET]);
        let mut frames = FrameScanner::default();
        let (head, tail) = SECRET.split_at(10);
        let mut bytes = client_frame(false, 2, head.as_bytes());
        bytes.extend(client_frame(true, 0, tail.as_bytes()));
        let violation = frames
            .push(&bytes, &scanner, &Detector::ALL)
            .expect_err("the secret is found");
        assert_eq!(violation.findings[0].rule, "known-secret");
        assert!(!violation.reason.contains(SECRET));
    }

    #[test]
    fn compressed_frames_are_refused() {
        let scanner = Scanner::new(&[SECRET]);
        let mut frame = client_frame(true, 1, b"x");
        frame[0] |= 0x40;
        assert!(
            FrameScanner::default()
                .push(&frame, &scanner, &Detector::ALL)
                .is_err()
        );
    }
}
