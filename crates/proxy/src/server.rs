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
use tokio_rustls::LazyConfigAcceptor;

use crate::audit::{AuditLog, AuditRecord, Verdict};
use crate::body::AuditedBody;
use crate::dlp::{self, DlpFinding};
use crate::doh::{self, DNS_RULE};
use crate::headers::{inject_token, remove_agent_credentials, strip_hop_by_hop, token_value};
use crate::history::History;
use crate::hold::Supervisor;
use crate::inbound::{self, StreamInspector};
use crate::limit::LogLimiter;
use crate::magic::{self, MAGIC_HOST, MAGIC_RULE};
use crate::outbound::{self, Checks};
use crate::pool::{Pool, PoolSettings};
use crate::response::{ProxyBody, deny, full, own_response};
use crate::upstream::{self, UpstreamError, UpstreamSender};
use crate::websocket::FrameScanner;
use crate::{CertificateAuthority, ProxyError, SidecarConfig};

mod forward;
mod record;
mod send;

use send::{Failure, Prepared};

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
    /// The values the scanner looks for, for secrets assembled from several fields.
    known_secrets: Vec<String>,
    /// The queue of requests held by `supervise` routes, and the values the operator approved.
    supervisor: Supervisor,
    /// Recent request field values per host, for secrets split across requests.
    history: History,
    /// Upstream connections kept for reuse.
    pool: Arc<Pool>,
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
    /// Whether this is the magic host, which the proxy serves itself.
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
    /// Queue item id of a `supervise` hold.
    held: Option<String>,
}

impl Seen {
    fn new(method: &str, host: Option<Host>, port: Option<u16>) -> Seen {
        Seen {
            method: method.to_owned(),
            host,
            port,
            path: None,
            findings: Vec::new(),
            held: None,
        }
    }
}

impl Proxy {
    /// Validates the configuration and prepares everything a request needs, so that a
    /// bad route, a missing token or an unreadable CA stops the launch.
    pub(crate) fn new(config: SidecarConfig, pool: PoolSettings) -> Result<Proxy, ProxyError> {
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
        let known_secrets = config
            .known_secret_values()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let audit = AuditLog::open(&config.audit_log)?;
        let supervisor = Supervisor::new(&config);
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
            known_secrets,
            supervisor,
            history: History::default(),
            pool: Pool::new(pool),
        })
    }

    /// Logs the start-up line, which every log level prints.
    pub(crate) fn announce(&self, listen: &[String]) {
        tracing::info!(
            slug = %self.slug,
            routes = self.policy.routes().len(),
            listen = %listen.join(","),
            "egress proxy started"
        );
    }

    /// Accepts clients until the listener fails.
    pub(crate) async fn accept_loop<L: crate::Accept>(
        self: Arc<Self>,
        listener: L,
    ) -> Result<(), ProxyError> {
        loop {
            let stream = match listener.accept_stream().await {
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
            L::tune(&stream);
            tokio::spawn(self.clone().serve_client(stream));
        }
    }

    async fn serve_client<S>(self: Arc<Self>, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
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
            self.record_malformed(None, &err);
        }
    }

    /// Records a request that hyper's parser rejected (with 400, or 431 for a head too
    /// large) before the proxy saw it, so that every refusal is audited. `tunnel` is the
    /// tunnel it arrived in. Other connection errors are not refusals and are ignored.
    fn record_malformed(&self, tunnel: Option<&Tunnel>, err: &hyper::Error) {
        if !err.is_parse() {
            return;
        }
        let status = if err.is_parse_too_large() { 431 } else { 400 };
        let seen = Seen::new(
            "-",
            tunnel.map(|tunnel| tunnel.host.clone()),
            tunnel.map(|tunnel| tunnel.port),
        );
        let reason = "malformed HTTP request: the parser rejected its framing or syntax";
        self.record(&seen, Verdict::Deny, PROTOCOL_RULE, Some(reason), status, 0);
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

    /// Replies 200 to CONNECT and serves the tunnel once the connection is upgraded.
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

        let tunnel_for_audit = tunnel.clone();
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
            if let Some(err) = err.downcast_ref::<hyper::Error>() {
                self.record_malformed(Some(&tunnel_for_audit), err);
            }
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

        // The agent's own credentials on a route with a token never reach the upstream,
        // so they are dropped before the DLP scan: a placeholder shaped like a token
        // would otherwise hold every request.
        let mut request = request;
        if tls && let Some((name, _)) = &self.tokens[tunnel.route] {
            remove_agent_credentials(request.headers_mut(), name);
        }

        let checks = Checks {
            scanner: &self.scanner,
            known_secrets: &self.known_secrets,
            supervisor: &self.supervisor,
            history: &self.history,
        };
        let host = tunnel.host.to_string();
        let inspected = match outbound::inspect(checks, route, &host, &path, request).await {
            Ok(inspected) => inspected,
            Err(refusal) => {
                seen.findings = refusal.findings;
                seen.held = refusal.held;
                return self.refuse(seen, &refusal.rule, &refusal.reason);
            }
        };
        seen.findings = inspected.findings;
        seen.held = inspected.held;
        self.clone()
            .forward(inspected.request, tunnel, tls, &path, seen)
            .await
    }

    /// Responds to a request for the magic host with the route table.
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
