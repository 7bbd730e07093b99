//! Replacement of findings with markers, for the proxy's `redact` policy.

use std::cmp::Reverse;

use crate::finding::Finding;

/// Returns a copy of `bytes` with each finding's span replaced by `[REDACTED:<rule>]`.
///
/// Overlapping spans are replaced once, as their union, with the rule of the one that
/// starts first. Spans past the end of `bytes` are clipped and empty ones ignored, so
/// findings from another input cannot make this panic.
pub fn redact(bytes: &[u8], findings: &[Finding]) -> Vec<u8> {
    let mut spans: Vec<_> = findings
        .iter()
        .map(|finding| {
            (
                finding.start.min(bytes.len()),
                finding.end.min(bytes.len()),
                finding.rule,
            )
        })
        .filter(|(start, end, _)| start < end)
        .collect();
    spans.sort_by_key(|&(start, end, _)| (start, Reverse(end)));

    let mut out = Vec::with_capacity(bytes.len());
    let mut cursor = 0;
    let mut spans = spans.into_iter().peekable();
    while let Some((start, mut end, rule)) = spans.next() {
        while let Some(&(next_start, next_end, _)) = spans.peek() {
            if next_start >= end {
                break;
            }
            end = end.max(next_end);
            spans.next();
        }

        out.extend_from_slice(&bytes[cursor..start]);
        out.extend_from_slice(b"[REDACTED:");
        out.extend_from_slice(rule.as_str().as_bytes());
        out.push(b']');
        cursor = end;
    }
    out.extend_from_slice(&bytes[cursor..]);
    out
}
