//! The proxy itself: the outer HTTP/1.1 listener (CONNECT and absolute-form `http://`),
//! TLS termination of every tunnel, and the per-request decision and forwarding.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bottle_policy::{
    CompiledRoute, Decision, Host, InboundDetector, Policy, RequestInfo, canonicalize_path,
    parse_authority, query_keys_only,
};
use bottle_scanner::{Detector, Scanner};
use bytes::Bytes;
use http::header::{HOST, HeaderName, HeaderValue, UPGRADE};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;
use rustls::server::Acceptor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;

use crate::audit::{AuditLog, AuditRecord, Verdict};
use crate::body::AuditedBody;
use crate::dlp::{self, DlpFinding};
use crate::doh::{self, DNS_RULE};
use crate::headers::{inject_token, strip_hop_by_hop, token_value};
use crate::inbound::{self, StreamInspector};
use crate::limit::LogLimiter;
use crate::magic::{self, MAGIC_HOST, MAGIC_RULE};
use crate::outbound::{self, Checks};
use crate::response::{ProxyBody, deny, full, own_response};
use crate::upstream::{self, UpstreamError, UpstreamSender};
use crate::websocket::FrameScanner;
use crate::{CertificateAuthority, ProxyError, SidecarConfig};

/// Rule id of refusals that come from protocol checks rather than from a route.
pub(crate) const PROTOCOL_RULE: &str = "protocol";

/// Rule id of refusals caused by a failed audit log.
const AUDIT_RULE: &str = "audit";

/// Time a client has to send a complete request head, or a TLS ClientHello after
/// CONNECT, before the connection is closed.
const CLIENT_HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A route's injected header name and value.
pub(crate) type InjectedHeader = (HeaderName, HeaderValue);

/// The shared state of one sidecar proxy.
pub(crate) struct Proxy {
    slug: String,
    policy: Policy,
    ca: CertificateAuthority,
    /// Header and value to inject, by route index.
    tokens: Vec<Option<InjectedHeader>>,
    /// Upstream TLS configuration, by route index.
    upstream_tls: Vec<Arc<ClientConfig>>,
    /// The same, offering only HTTP/1.1, for WebSocket handshakes.
    upstream_tls_http1: Vec<Arc<ClientConfig>>,
    audit: AuditLog,
    /// Set once an audit write fails; from then on every request is refused.
    audit_failed: AtomicBool,
    log_level: u8,
    log_limiter: LogLimiter,
    /// The outbound DLP scanner, compiled with the bottle's known secrets.
    scanner: Scanner,
    /// How long a `supervise` hold waits.
    hold: Duration,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("slug", &self.slug)
            .finish_non_exhaustive()
    }
}

/// The host, port and route a tunnel was allowed for.
#[derive(Debug, Clone)]
struct Tunnel {
    host: Host,
    port: u16,
    /// Route index; unused for the magic host.
    route: usize,
    /// Whether this is the magic host, answered by the proxy itself.
    magic: bool,
}

/// Request fields that the audit record names.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    host: Option<Host>,
    port: Option<u16>,
    path: Option<String>,
    findings: Vec<DlpFinding>,
}

impl Seen {
    fn new(method: &str, host: Option<Host>, port: Option<u16>) -> Seen {
        Seen {
            method: method.to_owned(),
            host,
            port,
            path: None,
            findings: Vec::new(),
        }
    }
}

impl Proxy {
    /// Validates the configuration and prepares everything a request needs, so that a
    /// bad route, a missing token or an unreadable CA stops the launch.
    pub(crate) fn new(config: SidecarConfig) -> Result<Proxy, ProxyError> {
        let (policy, tokens) = prepare_routes(&config)?;
        let ca = CertificateAuthority::from_pem(&config.ca_cert_pem, &config.ca_key_pem)?;

        let native = rustls_native_certs::load_native_certs();
        if !native.errors.is_empty() {
            tracing::debug!(
                errors = native.errors.len(),
                "some system CA certificates failed to load"
            );
        }
        let upstream_tls = policy
            .routes()
            .iter()
            .map(|route| upstream::route_tls_config(route, &native.certs))
            .collect::<Result<Vec<_>, _>>()?;

        let upstream_tls_http1 = upstream_tls
            .iter()
            .map(|config| {
                let mut config = (**config).clone();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Arc::new(config)
            })
            .collect();

        let scanner = Scanner::try_new(&config.known_secret_values())?;
        let audit = AuditLog::open(&config.audit_log)?;
        Ok(Proxy {
            slug: config.slug,
            policy,
            ca,
            tokens,
            upstream_tls,
            upstream_tls_http1,
            audit,
            audit_failed: AtomicBool::new(false),
            log_level: config.log_level,
            log_limiter: LogLimiter::new(),
            scanner,
            hold: Duration::from_secs(config.hold_timeout_secs),
        })
    }

    /// Logs the start-up line, which every log level prints.
    pub(crate) fn announce(&self, addresses: &[std::net::SocketAddr]) {
        let listen: Vec<String> = addresses.iter().map(ToString::to_string).collect();
        tracing::info!(
            slug = %self.slug,
            routes = self.policy.routes().len(),
            listen = %listen.join(","),
            "egress proxy started"
        );
    }

    /// Accepts clients until the listener fails.
    pub(crate) async fn accept_loop(
        self: Arc<Self>,
        listener: TcpListener,
    ) -> Result<(), ProxyError> {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) if err.kind() == std::io::ErrorKind::ConnectionAborted => continue,
                Err(err) if is_descriptor_exhaustion(&err) => {
                    // The agent can exhaust descriptors by opening connections; waiting
                    // keeps the proxy alive for the connections that close.
                    if self.log_limiter.allow() {
                        tracing::error!(error = %err, "accepting a proxy client failed; retrying");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(err) => return Err(ProxyError::Listener(err)),
            };
            tokio::spawn(self.clone().serve_client(stream));
        }
    }

    async fn serve_client(self: Arc<Self>, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let proxy = self.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle_outer(request).await) }
        });
        let result = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(CLIENT_HEAD_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await;
        if let Err(err) = result {
            tracing::debug!(error = %err, "proxy client connection ended with an error");
        }
    }

    /// Handles a request on the outer (proxy) connection: CONNECT or absolute-form HTTP.
    async fn handle_outer(self: Arc<Self>, request: Request<Incoming>) -> Response<ProxyBody> {
        let seen = Seen::new(request.method().as_str(), None, None);
        if let Some(response) = self.audit_unavailable() {
            return response;
        }
        if request.method() == Method::CONNECT {
            return self.handle_connect(request, seen);
        }
        match request.uri().scheme_str() {
            Some("http") => self.handle_plain(request, seen).await,
            Some(_) => self.refuse(
                &seen,
                PROTOCOL_RULE,
                "https:// requests must go through CONNECT; the proxy terminates TLS itself",
            ),
            None => self.refuse(
                &seen,
                PROTOCOL_RULE,
                "this is an egress proxy: send CONNECT host:port or an absolute http:// URI",
            ),
        }
    }

    fn handle_connect(
        self: Arc<Self>,
        request: Request<Incoming>,
        mut seen: Seen,
    ) -> Response<ProxyBody> {
        let Some(authority) = request.uri().authority().map(|a| a.as_str().to_owned()) else {
            return self.refuse(&seen, PROTOCOL_RULE, "CONNECT target must be host:port");
        };
        let (host, port) = match parse_authority(&authority, None) {
            Ok(parsed) => parsed,
            Err(err) => {
                return self.refuse(
                    &seen,
                    PROTOCOL_RULE,
                    &format!("invalid CONNECT authority: {err}"),
                );
            }
        };
        seen.host = Some(host.clone());
        seen.port = Some(port);
        if host.domain() == Some(MAGIC_HOST) && port == 443 {
            self.record(&seen, Verdict::Allow, MAGIC_RULE, None, 200, 0);
            let tunnel = Tunnel {
                host,
                port,
                route: 0,
                magic: true,
            };
            return self.start_tunnel(request, tunnel);
        }
        if let Some(reason) = doh::connect_reason(&host.to_string(), port) {
            return self.refuse(&seen, DNS_RULE, &reason);
        }

        let (route, rule) = match self.policy.decide_connect(&host, port) {
            Decision::Deny { rule, reason } => return self.refuse(&seen, &rule, &reason),
            Decision::Allow { route, rule } => (route, rule),
        };
        if self.policy.routes()[route].route.port == 80 {
            return self.refuse(
                &seen,
                &rule,
                "this route is for plain HTTP on port 80; send an absolute http:// request instead of CONNECT",
            );
        }

        self.record(&seen, Verdict::Allow, &rule, None, 200, 0);
        let tunnel = Tunnel {
            host,
            port,
            route,
            magic: false,
        };
        self.start_tunnel(request, tunnel)
    }

    /// Answers CONNECT with 200 and serves the tunnel once the connection is upgraded.
    fn start_tunnel(
        self: Arc<Self>,
        request: Request<Incoming>,
        tunnel: Tunnel,
    ) -> Response<ProxyBody> {
        let proxy = self.clone();
        tokio::spawn(async move {
            match hyper::upgrade::on(request).await {
                Ok(upgraded) => proxy.run_tunnel(TokioIo::new(upgraded), tunnel).await,
                Err(err) => tracing::debug!(error = %err, "CONNECT upgrade failed"),
            }
        });
        Response::new(full(bytes::Bytes::new()))
    }

    /// Terminates TLS inside an allowed tunnel and serves HTTP/1.1 or HTTP/2 on it. Bytes
    /// that are not a TLS ClientHello, or a ClientHello whose SNI is not the CONNECT host,
    /// close the tunnel: nothing is ever relayed unparsed.
    async fn run_tunnel<I>(self: Arc<Self>, io: I, tunnel: Tunnel)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let seen = Seen::new("CONNECT", Some(tunnel.host.clone()), Some(tunnel.port));
        let accepted = tokio::time::timeout(
            CLIENT_HEAD_TIMEOUT,
            LazyConfigAcceptor::new(Acceptor::default(), io),
        )
        .await;
        let start = match accepted {
            Ok(Ok(start)) => start,
            Ok(Err(_)) | Err(_) => {
                let reason =
                    "no TLS ClientHello after CONNECT; the proxy never relays unparsed bytes";
                self.record(&seen, Verdict::Deny, PROTOCOL_RULE, Some(reason), 0, 0);
                return;
            }
        };

        let sni = start.client_hello().server_name().map(str::to_owned);
        let sni_ok = match sni.as_deref().map(Host::parse) {
            Some(Ok(name)) => name == tunnel.host,
            Some(Err(_)) => false,
            // An SNI cannot carry an IP address, so a route naming an IP literal has none.
            None => tunnel.host.is_ip(),
        };
        if !sni_ok {
            let reason = if sni.is_some() {
                "TLS SNI does not match the CONNECT host"
            } else {
                "TLS ClientHello has no SNI"
            };
            self.record(&seen, Verdict::Deny, PROTOCOL_RULE, Some(reason), 0, 0);
            return;
        }

        let config = match self.ca.server_config(&tunnel.host) {
            Ok(config) => config,
            Err(err) => {
                tracing::error!(host = %tunnel.host, error = %err, "minting a leaf certificate failed");
                return;
            }
        };
        let tls = match start.into_stream(config).await {
            Ok(tls) => tls,
            Err(err) => {
                tracing::debug!(host = %tunnel.host, error = %err, "TLS handshake with the agent failed");
                let reason =
                    "TLS handshake with the agent failed; check that it trusts the bottle CA";
                self.record(&seen, Verdict::Deny, PROTOCOL_RULE, Some(reason), 0, 0);
                return;
            }
        };

        let proxy = self.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let proxy = proxy.clone();
            let tunnel = tunnel.clone();
            async move { Ok::<_, Infallible>(proxy.handle_inner(request, &tunnel).await) }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(CLIENT_HEAD_TIMEOUT);
        let result = builder
            .serve_connection_with_upgrades(TokioIo::new(tls), service)
            .await;
        if let Err(err) = result {
            tracing::debug!(error = %err, "tunnel connection ended with an error");
        }
    }

    /// Handles one request inside a terminated tunnel.
    async fn handle_inner(
        self: Arc<Self>,
        request: Request<Incoming>,
        tunnel: &Tunnel,
    ) -> Response<ProxyBody> {
        let mut seen = Seen::new(
            request.method().as_str(),
            Some(tunnel.host.clone()),
            Some(tunnel.port),
        );
        if let Some(response) = self.audit_unavailable() {
            return response;
        }
        if let Err(reason) = check_inner_authority(&request, tunnel) {
            return self.refuse(&seen, PROTOCOL_RULE, &reason);
        }
        if tunnel.magic {
            return self.answer_magic(&request, &mut seen);
        }
        self.check_and_forward(request, tunnel, true, &mut seen)
            .await
    }

    /// Handles an absolute-form `http://` request on the outer connection.
    async fn handle_plain(
        self: Arc<Self>,
        request: Request<Incoming>,
        mut seen: Seen,
    ) -> Response<ProxyBody> {
        let Some(authority) = request.uri().authority().map(|a| a.as_str().to_owned()) else {
            return self.refuse(&seen, PROTOCOL_RULE, "absolute URI has no host");
        };
        let (host, port) = match parse_authority(&authority, Some(80)) {
            Ok(parsed) => parsed,
            Err(err) => {
                return self.refuse(
                    &seen,
                    PROTOCOL_RULE,
                    &format!("invalid request host: {err}"),
                );
            }
        };
        seen.host = Some(host.clone());
        seen.port = Some(port);
        if host.domain() == Some(MAGIC_HOST) && port == 80 {
            return self.answer_magic(&request, &mut seen);
        }
        if let Some(reason) = doh::connect_reason(&host.to_string(), port) {
            return self.refuse(&seen, DNS_RULE, &reason);
        }

        let route = match self.policy.decide_connect(&host, port) {
            Decision::Deny { rule, reason } => return self.refuse(&seen, &rule, &reason),
            Decision::Allow { route, rule } => {
                if self.policy.routes()[route].route.port != 80 {
                    return self.refuse(
                        &seen,
                        &rule,
                        "plain HTTP is allowed only on routes for port 80; use https:// through CONNECT",
                    );
                }
                route
            }
        };

        let tunnel = Tunnel {
            host,
            port,
            route,
            magic: false,
        };
        let hosts: Vec<&HeaderValue> = request.headers().get_all(HOST).iter().collect();
        let host_ok = match hosts.as_slice() {
            [] => true,
            [value] => value
                .to_str()
                .ok()
                .and_then(|text| parse_authority(text, Some(80)).ok())
                .is_some_and(|parsed| parsed == (tunnel.host.clone(), tunnel.port)),
            _ => false,
        };
        if !host_ok {
            return self.refuse(
                &seen,
                PROTOCOL_RULE,
                "the Host header does not match the request URI",
            );
        }
        self.check_and_forward(request, &tunnel, false, &mut seen)
            .await
    }

    /// Applies the route's request rules, then forwards.
    async fn check_and_forward(
        self: Arc<Self>,
        request: Request<Incoming>,
        tunnel: &Tunnel,
        tls: bool,
        seen: &mut Seen,
    ) -> Response<ProxyBody> {
        let route = &self.policy.routes()[tunnel.route];
        let path = match canonicalize_path(request.uri().path()) {
            Ok(path) => path,
            Err(err) => {
                return self.refuse(seen, PROTOCOL_RULE, &format!("invalid request path: {err}"));
            }
        };
        let query = request.uri().query();
        seen.path = Some(match query {
            Some(query) => format!("{path}?{}", query_keys_only(query)),
            None => path.clone(),
        });

        let wants_upgrade =
            request.headers().contains_key(UPGRADE) || request.method() == Method::CONNECT;
        if wants_upgrade && !(route.route.websocket && is_websocket_handshake(&request)) {
            // TODO(websocket): WebSocket over HTTP/2 (extended CONNECT) is refused too.
            let reason = if route.route.websocket {
                "only HTTP/1.1 WebSocket upgrades are allowed on this route"
            } else {
                "protocol upgrades (WebSocket included) are not allowed on this route"
            };
            return self.refuse(seen, &route.rule_id, reason);
        }

        let headers: Vec<(&str, &[u8])> = request
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect();
        let info = RequestInfo {
            method: request.method().as_str(),
            path: &path,
            query,
            headers: &headers,
        };
        if let Decision::Deny { rule, reason } = self.policy.decide_request(tunnel.route, &info) {
            return self.refuse(seen, &rule, &reason);
        }

        let checks = Checks {
            scanner: &self.scanner,
            hold: self.hold,
        };
        let host = tunnel.host.to_string();
        let inspected = match outbound::inspect(checks, route, &host, &path, request).await {
            Ok(inspected) => inspected,
            Err(refusal) => {
                seen.findings = refusal.findings;
                return self.refuse(seen, &refusal.rule, &refusal.reason);
            }
        };
        seen.findings = inspected.findings;
        self.clone()
            .forward(inspected.request, tunnel, tls, &path, seen)
            .await
    }

    /// Rewrites the request for the upstream and streams the response back.
    async fn forward(
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
            // Compressed answers cannot be scanned as they stream, so ask for plain ones.
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

        // TODO(perf): every request opens its own upstream connection and TLS handshake;
        // reusing one per tunnel would save a round trip or two.
        let connected = if tls && agent_upgrade.is_some() {
            let config = self.upstream_tls_http1[tunnel.route].clone();
            upstream::connect_tls(route, config, &tunnel.host, tunnel.port, true).await
        } else if tls {
            let config = self.upstream_tls[tunnel.route].clone();
            upstream::connect_tls(route, config, &tunnel.host, tunnel.port, false).await
        } else {
            upstream::connect_plain(route, &tunnel.host, tunnel.port).await
        };
        let sender = match connected {
            Ok(sender) => sender,
            Err(err) => return self.upstream_failed(seen, &route.rule_id, &err),
        };

        let result = match sender {
            UpstreamSender::Http1(mut sender) => {
                parts.version = Version::HTTP_11;
                parts.uri = match Uri::try_from(path_and_query) {
                    Ok(uri) => uri,
                    Err(_) => return self.refuse(seen, PROTOCOL_RULE, "request target is invalid"),
                };
                let host_value =
                    HeaderValue::from_str(&authority).expect("a normalized host is a valid header");
                parts.headers.insert(HOST, host_value);
                sender.send_request(Request::from_parts(parts, body)).await
            }
            UpstreamSender::Http2(mut sender) => {
                parts.version = Version::HTTP_2;
                let uri = Uri::builder()
                    .scheme("https")
                    .authority(authority)
                    .path_and_query(path_and_query)
                    .build();
                parts.uri = match uri {
                    Ok(uri) => uri,
                    Err(_) => return self.refuse(seen, PROTOCOL_RULE, "request target is invalid"),
                };
                parts.headers.remove(HOST);
                sender.send_request(Request::from_parts(parts, body)).await
            }
        };
        let mut response = match result {
            Ok(response) => response,
            Err(source) => {
                let err = UpstreamError::Http {
                    host: tunnel.host.to_string(),
                    source,
                };
                return self.upstream_failed(seen, &route.rule_id, &err);
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
            // TODO(inbound): decode compressed answers that ignore `Accept-Encoding:
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
    async fn scan_whole_response(
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

    /// Returns `text` with every value the scanner finds replaced by a marker, so request
    /// data copied into the audit log (host, path, reason) never carries a secret, even
    /// for requests refused before the DLP ran.
    fn scrub(&self, text: &str) -> String {
        let found = self.scanner.scan(text.as_bytes());
        if found.is_empty() {
            return text.to_owned();
        }
        String::from_utf8_lossy(&bottle_scanner::redact(text.as_bytes(), &found)).into_owned()
    }

    /// Relays an upgraded WebSocket connection until either side closes. Frames from the
    /// agent are scanned message by message; a finding closes the connection and is
    /// recorded. Frames from the upstream are relayed as they are.
    async fn bridge_upgraded(
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

    /// Answers a request for the magic host with the route table.
    fn answer_magic<B>(&self, request: &Request<B>, seen: &mut Seen) -> Response<ProxyBody> {
        let path = canonicalize_path(request.uri().path()).unwrap_or_default();
        seen.path = Some(path.clone());
        let response = magic::answer(&self.slug, self.policy.routes(), &path);
        let status = response.status().as_u16();
        let verdict = if response.status().is_success() {
            Verdict::Allow
        } else {
            Verdict::Deny
        };
        self.record(seen, verdict, MAGIC_RULE, None, status, 0);
        response
    }

    /// Returns a 503 once the audit log has failed: traffic that cannot be recorded is
    /// not forwarded.
    fn audit_unavailable(&self) -> Option<Response<ProxyBody>> {
        self.audit_failed.load(Ordering::SeqCst).then(|| {
            own_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "error",
                AUDIT_RULE,
                "the audit log cannot be written, so the proxy refuses all traffic",
            )
        })
    }

    fn refuse(&self, seen: &Seen, rule: &str, reason: &str) -> Response<ProxyBody> {
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

    fn upstream_failed(&self, seen: &Seen, rule: &str, err: &UpstreamError) -> Response<ProxyBody> {
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

    fn audit_record(
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
        record
    }

    fn record(
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
}

/// Names the DLP and prompt-injection findings of a record, for a log line.
fn finding_names(record: &AuditRecord) -> String {
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

/// Largest text answer read whole before it is sent, so a refusal can still be a 403.
const WHOLE_RESPONSE_MAX: usize = 1024 * 1024;

/// Returns true when `Content-Length` says the body fits [`WHOLE_RESPONSE_MAX`].
fn small_body(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|len| len <= WHOLE_RESPONSE_MAX)
}

/// Returns true for `EMFILE` and `ENFILE`, the per-process and system-wide descriptor
/// limits.
fn is_descriptor_exhaustion(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(23 | 24))
}

/// Returns true for an HTTP/1.1 `GET` with `Upgrade: websocket` (one value).
fn is_websocket_handshake<B>(request: &Request<B>) -> bool {
    let upgrades: Vec<&HeaderValue> = request.headers().get_all(UPGRADE).iter().collect();
    request.method() == Method::GET
        && request.version() == Version::HTTP_11
        && matches!(upgrades.as_slice(), [value] if value.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Returns the length of the body [`own_response`] writes for `message`.
fn body_len(message: &str) -> u64 {
    u64::try_from("bottle: \n".len() + message.len()).unwrap_or(u64::MAX)
}

/// Validates the routes and resolves each route's injected header: invalid routes, a
/// passthrough route, a missing token or a token that cannot be a header value fail.
pub(crate) fn prepare_routes(
    config: &SidecarConfig,
) -> Result<(Policy, Vec<Option<InjectedHeader>>), ProxyError> {
    let policy = Policy::new(&config.routes)?;
    let mut tokens = Vec::with_capacity(policy.routes().len());
    for route in policy.routes() {
        if route.route.passthrough {
            // TODO(passthrough): tunnelling TLS without termination is not implemented.
            return Err(ProxyError::PassthroughUnsupported {
                rule: route.rule_id.clone(),
            });
        }
        tokens.push(token_for(route, config)?);
    }
    Ok((policy, tokens))
}

/// Builds the injected header of `route`, if it has `auth`.
fn token_for(
    route: &CompiledRoute,
    config: &SidecarConfig,
) -> Result<Option<InjectedHeader>, ProxyError> {
    let Some(auth) = &route.route.auth else {
        return Ok(None);
    };
    let token = config
        .tokens
        .get(&auth.token_ref)
        .ok_or_else(|| ProxyError::MissingToken {
            rule: route.rule_id.clone(),
            token_ref: auth.token_ref.clone(),
        })?;
    let invalid = || ProxyError::InvalidTokenValue {
        token_ref: auth.token_ref.clone(),
    };
    let value = token_value(&auth.scheme, token).map_err(|_| invalid())?;
    let name = HeaderName::from_bytes(auth.header.to_ascii_lowercase().as_bytes())
        .map_err(|_| invalid())?;
    Ok(Some((name, value)))
}

/// Checks that the request inside a tunnel names the CONNECT host: the `Host` header
/// (exactly one) and the URI authority (`:authority` in HTTP/2), whichever are present,
/// must both equal it. This is what refuses domain fronting.
fn check_inner_authority(request: &Request<Incoming>, tunnel: &Tunnel) -> Result<(), String> {
    let mismatch = || {
        format!(
            "the request host does not match the CONNECT host {}:{} (domain fronting is refused)",
            tunnel.host.to_authority_host(),
            tunnel.port
        )
    };
    let matches = |text: &str| {
        parse_authority(text, Some(tunnel.port))
            .is_ok_and(|(host, port)| host == tunnel.host && port == tunnel.port)
    };

    if !matches!(request.uri().scheme_str(), None | Some("https")) {
        return Err("requests inside a TLS tunnel must use https".to_owned());
    }
    let hosts: Vec<&HeaderValue> = request.headers().get_all(HOST).iter().collect();
    if hosts.len() > 1 {
        return Err("the request has more than one Host header".to_owned());
    }
    let authority = request.uri().authority().map(|a| a.as_str());
    if authority.is_none() && hosts.is_empty() {
        return Err("the request has no Host header or :authority".to_owned());
    }
    if let Some(authority) = authority
        && !matches(authority)
    {
        return Err(mismatch());
    }
    if let Some(value) = hosts.first()
        && !value.to_str().is_ok_and(matches)
    {
        return Err(mismatch());
    }
    Ok(())
}
