//! Forwarding an inspected request upstream, and the response side: the inbound scan of
//! text responses and the WebSocket relay.

use super::record::body_len;
use super::*;

impl Proxy {
    /// Rewrites the request for the upstream and streams the response back.
    pub(super) async fn forward(
        self: Arc<Self>,
        request: Request<Full<Bytes>>,
        tunnel: &Tunnel,
        tls: bool,
        path: &str,
        seen: &Seen,
    ) -> Response<ProxyBody> {
        let route: &CompiledRoute = &self.policy.routes()[tunnel.route];
        let mut request = request;
        let agent_upgrade =
            is_websocket_handshake(&request).then(|| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if agent_upgrade.is_some() {
            parts.headers.insert(
                http::header::CONNECTION,
                HeaderValue::from_static("upgrade"),
            );
            parts
                .headers
                .insert(UPGRADE, HeaderValue::from_static("websocket"));
            // Compressed frames cannot be scanned, so no extension is negotiated.
            parts.headers.remove("sec-websocket-extensions");
        }
        let scan_inbound = route
            .route
            .dlp
            .inbound_detectors
            .contains(&InboundDetector::PromptInjection)
            && agent_upgrade.is_none();
        if scan_inbound {
            // Compressed responses cannot be scanned as they stream, so request plain ones.
            parts.headers.insert(
                http::header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
        }
        // Tokens go only over TLS; routes on port 80 cannot have `auth` in the first place.
        if tls && let Some((name, value)) = &self.tokens[tunnel.route] {
            inject_token(&mut parts.headers, name, value.clone());
        }

        let path_and_query = match parts.uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        let default_port = if tls { 443 } else { 80 };
        let authority = if tunnel.port == default_port {
            tunnel.host.to_authority_host()
        } else {
            format!("{}:{}", tunnel.host.to_authority_host(), tunnel.port)
        };

        let prepared = Prepared {
            parts,
            body,
            path_and_query,
            authority,
        };
        let sent = if agent_upgrade.is_some() {
            self.send_upgrade(route, tunnel, tls, prepared).await
        } else {
            self.send_pooled(route, tunnel, tls, prepared).await
        };
        let mut response = match sent {
            Ok(response) => response,
            Err(Failure::Upstream(err)) => {
                return self.upstream_failed(seen, &route.rule_id, &err);
            }
            Err(Failure::Target) => {
                return self.refuse(seen, PROTOCOL_RULE, "request target is invalid");
            }
        };

        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        match (agent_upgrade, switching) {
            (Some(agent_upgrade), true) => {
                let upstream_upgrade = hyper::upgrade::on(&mut response);
                let detectors = dlp::detectors(&route.route.dlp.outbound_detectors);
                let relay = self.clone().bridge_upgraded(
                    agent_upgrade,
                    upstream_upgrade,
                    detectors,
                    seen.clone(),
                );
                tokio::spawn(relay);
            }
            (None, true) => {
                let err = UpstreamError::UnexpectedUpgrade {
                    host: tunnel.host.to_string(),
                };
                return self.upstream_failed(seen, &route.rule_id, &err);
            }
            _ => {}
        }
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if switching {
            // A 101 reaches the agent only for an allowed WebSocket handshake, because
            // every other upgrade request was refused before it was forwarded.
            parts.headers.insert(
                http::header::CONNECTION,
                HeaderValue::from_static("upgrade"),
            );
            parts
                .headers
                .insert(UPGRADE, HeaderValue::from_static("websocket"));
        }
        let record = self.audit_record(
            seen,
            Verdict::Allow,
            &route.rule_id,
            None,
            parts.status.as_u16(),
        );
        let inspect = scan_inbound && !switching && inbound::is_text(&parts.headers);
        if inspect && parts.headers.contains_key(http::header::CONTENT_ENCODING) {
            // TODO(inbound): decode compressed responses that ignore `Accept-Encoding:
            // identity` instead of refusing them.
            return self.refuse(
                seen,
                inbound::INBOUND_RULE,
                "the upstream sent a compressed text answer, which the prompt-injection scan cannot read",
            );
        }
        if inspect && !inbound::is_event_stream(&parts.headers) && small_body(&parts.headers) {
            return self.scan_whole_response(parts, body, record, seen).await;
        }
        let inspector =
            inspect.then(|| StreamInspector::new(inbound::is_event_stream(&parts.headers)));
        if inspector.is_some() {
            parts.headers.remove(http::header::CONTENT_LENGTH);
        }
        let body = AuditedBody::new(body, inspector, self.clone(), record);
        Response::from_parts(parts, BodyExt::boxed(body))
    }

    /// Reads a small text answer whole, scans it, and refuses it with a 403 on a
    /// high-confidence prompt-injection finding, so nothing of it reaches the agent.
    pub(super) async fn scan_whole_response(
        &self,
        parts: http::response::Parts,
        body: Incoming,
        mut record: AuditRecord,
        seen: &Seen,
    ) -> Response<ProxyBody> {
        let bytes = match Limited::new(body, WHOLE_RESPONSE_MAX).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                return self.refuse(
                    seen,
                    inbound::INBOUND_RULE,
                    "the upstream answer could not be read in full for the prompt-injection scan",
                );
            }
        };
        let findings = inbound::scan_whole(&bytes);
        if let Some(high) = findings
            .iter()
            .find(|f| f.severity == inbound::Severity::High)
        {
            let rule = format!("{}:{}", inbound::INBOUND_RULE, high.rule);
            let reason = format!(
                "the upstream answer was withheld: likely prompt injection ({})",
                high.rule
            );
            let mut record = self.audit_record(
                seen,
                Verdict::Deny,
                &rule,
                Some(&reason),
                StatusCode::FORBIDDEN.as_u16(),
            );
            record.inbound = findings;
            record.bytes = body_len(&reason);
            self.write_audit(&record);
            return deny(&rule, &reason);
        }
        record.inbound = findings;
        record.bytes = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        self.write_audit(&record);
        Response::from_parts(parts, full(bytes))
    }

    /// Relays an upgraded WebSocket connection until either side closes. Frames from the
    /// agent are scanned message by message; a finding closes the connection and is
    /// recorded. Frames from the upstream are relayed as they are.
    pub(super) async fn bridge_upgraded(
        self: Arc<Self>,
        agent: hyper::upgrade::OnUpgrade,
        upstream: hyper::upgrade::OnUpgrade,
        detectors: Vec<Detector>,
        seen: Seen,
    ) {
        let (agent, upstream) = match tokio::try_join!(agent, upstream) {
            Ok(pair) => pair,
            Err(err) => {
                tracing::debug!(error = %err, "WebSocket upgrade failed");
                return;
            }
        };
        let (mut agent_read, mut agent_write) = tokio::io::split(TokioIo::new(agent));
        let (mut upstream_read, mut upstream_write) = tokio::io::split(TokioIo::new(upstream));
        // TODO(inbound): frames from the upstream are not scanned for prompt injection.
        let downstream = tokio::io::copy(&mut upstream_read, &mut agent_write);
        let upstream_side = async {
            let mut frames = FrameScanner::default();
            let mut buffer = vec![0u8; 16 * 1024];
            loop {
                let read = agent_read.read(&mut buffer).await?;
                if read == 0 {
                    upstream_write.shutdown().await?;
                    return Ok::<_, std::io::Error>(None);
                }
                match frames.push(&buffer[..read], &self.scanner, &detectors) {
                    Ok(forward) => upstream_write.write_all(&forward).await?,
                    Err(violation) => return Ok(Some(violation)),
                }
            }
        };
        let violation = tokio::select! {
            result = downstream => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "WebSocket relay ended with an error");
                }
                None
            }
            result = upstream_side => result.unwrap_or_else(|err| {
                tracing::debug!(error = %err, "WebSocket relay ended with an error");
                None
            }),
        };
        if let Some(violation) = violation {
            let rule = violation
                .findings
                .first()
                .map_or_else(|| PROTOCOL_RULE.to_owned(), |f| format!("dlp:{}", f.rule));
            let mut seen = seen;
            seen.findings = violation.findings;
            self.record(&seen, Verdict::Deny, &rule, Some(&violation.reason), 101, 0);
        }
    }
}

/// Largest text answer read whole before it is sent, so a refusal can still be a 403.
pub(super) const WHOLE_RESPONSE_MAX: usize = 1024 * 1024;

/// Returns true when `Content-Length` shows that the body fits [`WHOLE_RESPONSE_MAX`].
pub(super) fn small_body(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|len| len <= WHOLE_RESPONSE_MAX)
}
