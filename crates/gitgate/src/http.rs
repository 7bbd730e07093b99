//! The smart HTTP protocol, served by `git upload-pack` and `git receive-pack` in
//! `--stateless-rpc` mode.
//!
//! Four endpoints per repo: `GET /<repo>.git/info/refs?service=git-upload-pack` and
//! `?service=git-receive-pack` (the advertisement), and `POST /<repo>.git/git-upload-pack`
//! and `POST /<repo>.git/git-receive-pack` (the exchange). The dumb HTTP protocol is not
//! served.

use std::convert::Infallible;
use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use flate2::write::GzDecoder;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Channel, Full};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};

use crate::gate::Gate;
use crate::git::{local_git, run_bounded, sanitize_text};
use crate::mirror::Mirror;

pub(crate) type GateBody = BoxBody<Bytes, Infallible>;

/// The two git services of the smart protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Service {
    UploadPack,
    ReceivePack,
}

impl Service {
    fn from_name(name: &str) -> Option<Service> {
        match name {
            "git-upload-pack" => Some(Service::UploadPack),
            "git-receive-pack" => Some(Service::ReceivePack),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Service::UploadPack => "git-upload-pack",
            Service::ReceivePack => "git-receive-pack",
        }
    }

    fn subcommand(self) -> &'static str {
        match self {
            Service::UploadPack => "upload-pack",
            Service::ReceivePack => "receive-pack",
        }
    }
}

/// A request the gate understands, once the path is parsed.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    InfoRefs { repo: &'a str },
    Rpc { repo: &'a str, service: Service },
}

fn parse_endpoint(path: &str) -> Option<Endpoint<'_>> {
    let (repo, rest) = path.strip_prefix('/')?.split_once(".git/")?;
    if repo.is_empty() || repo.contains('/') {
        return None;
    }
    match rest {
        "info/refs" => Some(Endpoint::InfoRefs { repo }),
        _ => Some(Endpoint::Rpc {
            repo,
            service: Service::from_name(rest)?,
        }),
    }
}

/// Handles one HTTP request. Every outcome, error or not, is a complete response.
pub(crate) async fn handle(gate: Arc<Gate>, request: Request<Incoming>) -> Response<GateBody> {
    let path = request.uri().path().to_owned();
    let Some(endpoint) = parse_endpoint(&path) else {
        return text(
            StatusCode::NOT_FOUND,
            "git gate: not a git endpoint; use /<repo>.git\n".into(),
        );
    };
    let repo = match &endpoint {
        Endpoint::InfoRefs { repo } | Endpoint::Rpc { repo, .. } => *repo,
    };
    let Some(mirror) = gate.mirror(repo) else {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "git gate: no repository named '{}' in this bottle\n",
                repo.escape_debug()
            ),
        );
    };
    let protocol = match git_protocol(&request) {
        Ok(protocol) => protocol,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };

    match endpoint {
        Endpoint::InfoRefs { .. } => {
            if request.method() != Method::GET && request.method() != Method::HEAD {
                return text(StatusCode::METHOD_NOT_ALLOWED, "git gate: use GET\n".into());
            }
            let service = request
                .uri()
                .query()
                .into_iter()
                .flat_map(|query| query.split('&'))
                .find_map(|pair| pair.strip_prefix("service="))
                .and_then(Service::from_name);
            let Some(service) = service else {
                return text(
                    StatusCode::FORBIDDEN,
                    "git gate: the dumb HTTP protocol is not served; use git 1.6.6 or later\n"
                        .into(),
                );
            };
            advertise(&gate, &mirror, service, protocol.as_deref()).await
        }
        Endpoint::Rpc { service, .. } => {
            if request.method() != Method::POST {
                return text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "git gate: use POST\n".into(),
                );
            }
            let expected = format!("application/x-{}-request", service.name());
            let content_type = request.headers().get(header::CONTENT_TYPE);
            if content_type.and_then(|value| value.to_str().ok()) != Some(expected.as_str()) {
                return text(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!("git gate: expected Content-Type {expected}\n"),
                );
            }
            rpc(&gate, &mirror, service, protocol, request).await
        }
    }
}

/// Returns the `Git-Protocol` header, passed to git as `GIT_PROTOCOL` after checking that it is
/// only `key=value` pairs joined by `:`.
fn git_protocol(request: &Request<Incoming>) -> Result<Option<String>, String> {
    let Some(value) = request.headers().get("git-protocol") else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default();
    let valid = !value.is_empty()
        && value.len() <= 256
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"=:._-".contains(&b));
    if valid {
        Ok(Some(value.to_owned()))
    } else {
        Err("git gate: invalid Git-Protocol header\n".into())
    }
}

fn is_protocol_v2(protocol: Option<&str>) -> bool {
    protocol.is_some_and(|value| value.split(':').any(|pair| pair == "version=2"))
}

/// Refreshes the mirror from the upstream (both services, so a push starts from the
/// upstream's current refs) and returns the ref advertisement, or an `ERR` packet that
/// the agent's git prints as `fatal: remote error: <message>`.
async fn advertise(
    gate: &Gate,
    mirror: &Mirror,
    service: Service,
    protocol: Option<&str>,
) -> Response<GateBody> {
    let refreshed = {
        let _guard = mirror.lock.lock().await;
        mirror.refresh().await
    };
    let content_type = format!("application/x-{}-advertisement", service.name());
    if let Err(message) = refreshed {
        tracing::warn!(slug = %gate.slug, repo = %mirror.repo.name, "{message}");
        return git_response(
            &content_type,
            Full::new(pkt_line(&format!("ERR {message}"))).boxed(),
        );
    }

    let mut command = local_git(&mirror.dir, &mirror.home);
    command.args([
        service.subcommand(),
        "--stateless-rpc",
        "--advertise-refs",
        ".",
    ]);
    if service == Service::UploadPack
        && let Some(protocol) = protocol
    {
        command.env("GIT_PROTOCOL", protocol);
    }
    let output = match run_bounded(command, mirror.upstream_timeout).await {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            let reason = sanitize_text(&output.stderr, 300);
            tracing::error!(repo = %mirror.repo.name, "{} --advertise-refs failed: {reason}", service.subcommand());
            return git_response(
                &content_type,
                Full::new(pkt_line("ERR git gate: cannot list the mirror's refs")).boxed(),
            );
        }
        Err(error) => {
            tracing::error!(repo = %mirror.repo.name, "{} --advertise-refs failed: {error}", service.subcommand());
            return git_response(
                &content_type,
                Full::new(pkt_line("ERR git gate: cannot list the mirror's refs")).boxed(),
            );
        }
    };

    let mut body = Vec::new();
    if service == Service::ReceivePack || !is_protocol_v2(protocol) {
        body.extend_from_slice(&pkt_line(&format!("# service={}\n", service.name())));
        body.extend_from_slice(b"0000");
    }
    body.extend_from_slice(&output.stdout);
    git_response(&content_type, Full::new(Bytes::from(body)).boxed())
}

/// Runs one stateless exchange: the request body (gunzipped if needed) goes to the
/// service's stdin, and its stdout streams back as the response body.
async fn rpc(
    gate: &Gate,
    mirror: &Mirror,
    service: Service,
    protocol: Option<String>,
    request: Request<Incoming>,
) -> Response<GateBody> {
    let gzip = match request
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(|v| v.as_bytes())
    {
        None | Some(b"identity") => false,
        Some(b"gzip" | b"x-gzip") => true,
        Some(_) => {
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "git gate: unsupported Content-Encoding\n".into(),
            );
        }
    };

    // A compressed body is decompressed into an unnamed file before git starts, so that
    // a body that is not valid gzip, or expands past the limit, gets a 4xx response with the
    // reason instead of a cut-off 200.
    let (request, spooled) = if gzip {
        match spool_gzip_body(
            request.into_body(),
            &mirror.home,
            gate.limits.max_input_bytes,
        )
        .await
        {
            Ok(file) => (None, Some(file)),
            Err((status, reason)) => {
                tracing::warn!(repo = %mirror.repo.name, "compressed request rejected: {reason}");
                return text(status, format!("git gate: {reason}\n"));
            }
        }
    } else {
        (Some(request), None)
    };

    let mut command = local_git(&mirror.dir, &mirror.home);
    command.args([service.subcommand(), "--stateless-rpc", "."]);
    if service == Service::UploadPack
        && let Some(protocol) = &protocol
    {
        command.env("GIT_PROTOCOL", protocol);
    }
    let ticket = match service {
        Service::ReceivePack => {
            let ticket = gate.tickets.issue(&mirror.repo.name);
            command.env(crate::hook::SOCKET_ENV, &gate.control_socket);
            command.env(crate::hook::TICKET_ENV, ticket.value());
            Some(ticket)
        }
        Service::UploadPack => None,
    };
    match spooled {
        Some(file) => command.stdin(Stdio::from(file)),
        None => command.stdin(Stdio::piped()),
    };
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            tracing::error!(repo = %mirror.repo.name, "cannot start git {}: {error}", service.subcommand());
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "git gate: cannot start git\n".into(),
            );
        }
    };

    if let (Some(stdin), Some(request)) = (child.stdin.take(), request) {
        let limit = gate.limits.max_input_bytes;
        let repo = mirror.repo.name.clone();
        tokio::spawn(async move {
            if let Err(reason) = copy_request_body(request.into_body(), stdin, limit).await {
                tracing::warn!(%repo, "request body not fully delivered to git: {reason}");
            }
        });
    }

    let (sender, body) = Channel::<Bytes, Infallible>::new(4);
    tokio::spawn(stream_output(
        child,
        sender,
        mirror.repo.name.clone(),
        service,
        ticket,
    ));
    let content_type = format!("application/x-{}-result", service.name());
    git_response(&content_type, body.boxed())
}

/// Copies the request body into git's stdin, stopping at `limit` bytes. Closing stdin
/// early makes git fail, so an oversized request is never served.
async fn copy_request_body(
    mut body: Incoming,
    mut stdin: ChildStdin,
    limit: u64,
) -> Result<(), String> {
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| format!("reading the request failed: {error}"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > limit {
            return Err(format!("the request is larger than {limit} bytes"));
        }
        stdin
            .write_all(&data)
            .await
            .map_err(|error| format!("writing to git failed: {error}"))?;
    }
    stdin
        .shutdown()
        .await
        .map_err(|error| format!("closing git's input failed: {error}"))
}

/// Counts the bytes written through it and fails past `limit`.
struct Limited<W> {
    inner: W,
    written: u64,
    limit: u64,
}

impl<W: Write> Write for Limited<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written += buf.len() as u64;
        if self.written > self.limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "over the limit",
            ));
        }
        self.inner.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Decompresses a gzip request body into an unnamed file in `dir` and returns it, rewound.
/// Fails with 413 when the decompressed body passes `limit` bytes, and with 400 when it
/// is not valid gzip.
async fn spool_gzip_body(
    mut body: Incoming,
    dir: &std::path::Path,
    limit: u64,
) -> Result<std::fs::File, (StatusCode, String)> {
    use std::io::{Seek, SeekFrom};

    let file = tempfile::tempfile_in(dir).map_err(|error| {
        tracing::error!("cannot create a spool file in {}: {error}", dir.display());
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot store the request".to_owned(),
        )
    })?;
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the gzip request body expands to more than {limit} bytes"),
        )
    };
    let invalid = |error: std::io::Error| {
        if error.kind() == std::io::ErrorKind::FileTooLarge {
            too_large()
        } else {
            (
                StatusCode::BAD_REQUEST,
                format!("the request body is not valid gzip: {error}"),
            )
        }
    };
    let mut decoder = GzDecoder::new(Limited {
        inner: std::io::BufWriter::new(file),
        written: 0,
        limit,
    });
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            (
                StatusCode::BAD_REQUEST,
                format!("reading the request failed: {error}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            decoder.write_all(&data).map_err(invalid)?;
        }
    }
    let limited = decoder.finish().map_err(invalid)?;
    let mut file = limited
        .inner
        .into_inner()
        .map_err(|error| invalid(error.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(invalid)?;
    Ok(file)
}

/// Streams git's stdout to the response and logs its stderr and exit status. The ticket
/// (for receive-pack) stays valid until git has exited.
async fn stream_output(
    mut child: Child,
    mut sender: http_body_util::channel::Sender<Bytes, Infallible>,
    repo: String,
    service: Service,
    ticket: Option<crate::hook::Ticket>,
) {
    let mut stdout = child.stdout.take().expect("stdout was piped");
    let mut stderr = child.stderr.take().expect("stderr was piped");
    let stderr_task = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut text).await;
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        text
    });

    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match stdout.read(&mut buffer).await {
            Ok(0) => break,
            Ok(n) => {
                if sender
                    .send_data(Bytes::copy_from_slice(&buffer[..n]))
                    .await
                    .is_err()
                {
                    tracing::debug!(%repo, "the client went away; stopping git {}", service.subcommand());
                    let _ = child.start_kill();
                    break;
                }
            }
            Err(error) => {
                tracing::warn!(%repo, "reading git {} output failed: {error}", service.subcommand());
                let _ = child.start_kill();
                break;
            }
        }
    }
    drop(sender);

    let status = child.wait().await;
    let stderr_text = stderr_task.await.unwrap_or_default();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => tracing::warn!(
            %repo,
            "git {} exited with {status}: {}",
            service.subcommand(),
            sanitize_text(&stderr_text, 500)
        ),
        Err(error) => {
            tracing::warn!(%repo, "waiting for git {} failed: {error}", service.subcommand())
        }
    }
    drop(ticket);
}

/// Encodes one pkt-line: four hex digits of length, then the payload.
pub(crate) fn pkt_line(payload: &str) -> Bytes {
    let payload = payload.as_bytes();
    let length = payload.len().min(65516);
    let mut line = format!("{:04x}", length + 4).into_bytes();
    line.extend_from_slice(&payload[..length]);
    Bytes::from(line)
}

fn git_response(content_type: &str, body: GateBody) -> Response<GateBody> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(
            header::CACHE_CONTROL,
            "no-cache, max-age=0, must-revalidate",
        )
        .body(body)
        .expect("static headers are valid")
}

fn text(status: StatusCode, message: String) -> Response<GateBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(message)).boxed())
        .expect("static headers are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            parse_endpoint("/w.git/info/refs"),
            Some(Endpoint::InfoRefs { repo: "w" })
        );
        assert_eq!(
            parse_endpoint("/w.git/git-receive-pack"),
            Some(Endpoint::Rpc {
                repo: "w",
                service: Service::ReceivePack
            })
        );
        assert_eq!(parse_endpoint("/w.git/objects/info/packs"), None);
        assert_eq!(parse_endpoint("/a/b.git/info/refs"), None);
        assert_eq!(parse_endpoint("/.git/info/refs"), None);
    }

    #[test]
    fn pkt_line_encodes_length() {
        assert_eq!(&pkt_line("ERR x")[..], b"0009ERR x");
    }

    #[test]
    fn protocol_v2_detection() {
        assert!(is_protocol_v2(Some("version=2")));
        assert!(is_protocol_v2(Some("foo=bar:version=2")));
        assert!(!is_protocol_v2(Some("version=1")));
        assert!(!is_protocol_v2(None));
    }
}
