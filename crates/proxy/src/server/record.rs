//! The proxy's own responses and the audit trail: refusals, upstream errors, audit records
//! (with secrets scrubbed) and the rate-limited log lines of `egress.log`.

use super::*;

impl Proxy {
    /// Returns a 503 once the audit log has failed: traffic that cannot be recorded is
    /// not forwarded.
    pub(super) fn audit_unavailable(&self) -> Option<Response<ProxyBody>> {
        self.audit_failed.load(Ordering::SeqCst).then(|| {
            own_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "error",
                AUDIT_RULE,
                "the audit log cannot be written, so the proxy refuses all traffic",
            )
        })
    }

    pub(super) fn refuse(&self, seen: &Seen, rule: &str, reason: &str) -> Response<ProxyBody> {
        let response = deny(rule, reason);
        let bytes = body_len(reason);
        self.record(
            seen,
            Verdict::Deny,
            rule,
            Some(reason),
            StatusCode::FORBIDDEN.as_u16(),
            bytes,
        );
        response
    }

    pub(super) fn upstream_failed(
        &self,
        seen: &Seen,
        rule: &str,
        err: &UpstreamError,
    ) -> Response<ProxyBody> {
        let reason = format!("upstream failed: {err}");
        let response = own_response(StatusCode::BAD_GATEWAY, "error", rule, &reason);
        let bytes = body_len(&reason);
        self.record(
            seen,
            Verdict::Error,
            rule,
            Some(&reason),
            StatusCode::BAD_GATEWAY.as_u16(),
            bytes,
        );
        response
    }

    pub(super) fn audit_record(
        &self,
        seen: &Seen,
        verdict: Verdict,
        rule: &str,
        reason: Option<&str>,
        status: u16,
    ) -> AuditRecord {
        let mut record = AuditRecord::new(&seen.method, verdict, rule);
        record.host = seen.host.as_ref().map(|host| self.scrub(&host.to_string()));
        record.port = seen.port;
        record.path = seen.path.as_deref().map(|path| self.scrub(path));
        record.reason = reason.map(|reason| self.scrub(reason));
        record.status = status;
        record.findings.clone_from(&seen.findings);
        record.held.clone_from(&seen.held);
        record
    }

    pub(super) fn record(
        &self,
        seen: &Seen,
        verdict: Verdict,
        rule: &str,
        reason: Option<&str>,
        status: u16,
        bytes: u64,
    ) {
        let mut record = self.audit_record(seen, verdict, rule, reason, status);
        record.bytes = bytes;
        self.write_audit(&record);
    }

    /// Appends the record to the audit log and prints it if the log level includes it.
    pub(crate) fn write_audit(&self, record: &AuditRecord) {
        if let Err(err) = self.audit.write(record)
            && !self.audit_failed.swap(true, Ordering::SeqCst)
        {
            tracing::error!(error = %err, "writing the egress audit log failed; refusing all traffic");
        }
        let flagged = record.is_flagged();
        let print = record.printed_at(self.log_level);
        if !print || !self.log_limiter.allow() {
            return;
        }
        let host = record.host.as_deref().unwrap_or("-");
        let path = record.path.as_deref().unwrap_or("");
        match record.decision {
            Verdict::Deny | Verdict::Error => tracing::warn!(
                rule = %record.rule,
                reason = record.reason.as_deref().unwrap_or(""),
                "egress {} {host}{path} blocked",
                record.method
            ),
            Verdict::Allow if flagged => tracing::warn!(
                rule = %record.rule,
                status = record.status,
                findings = %finding_names(record),
                "egress {} {host}{path} allowed with findings",
                record.method
            ),
            Verdict::Allow => tracing::info!(
                rule = %record.rule,
                status = record.status,
                "egress {} {host}{path} allowed",
                record.method
            ),
        }
    }

    /// Returns `text` with every value the scanner finds replaced by a marker, so request
    /// data copied into the audit log (host, path, reason) never carries a secret, even
    /// for requests refused before the DLP ran.
    pub(super) fn scrub(&self, text: &str) -> String {
        let found = self.scanner.scan(text.as_bytes());
        if found.is_empty() {
            return text.to_owned();
        }
        String::from_utf8_lossy(&bottle_scanner::redact(text.as_bytes(), &found)).into_owned()
    }
}

/// Names the DLP and prompt-injection findings of a record, for a log line.
pub(super) fn finding_names(record: &AuditRecord) -> String {
    let outbound = record
        .findings
        .iter()
        .map(|f| format!("{} in {}", f.rule, f.location));
    let inbound = record
        .inbound
        .iter()
        .map(|f| format!("{} ({:?}) in response {}", f.rule, f.severity, f.location));
    outbound.chain(inbound).collect::<Vec<_>>().join(", ")
}

/// Returns the length of the body [`own_response`] writes for `message`.
pub(super) fn body_len(message: &str) -> u64 {
    u64::try_from("bottle: \n".len() + message.len()).unwrap_or(u64::MAX)
}
