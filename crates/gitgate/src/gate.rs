//! Start-up and the accept loop.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use bottle_proxy::Accept;
use bottle_scanner::{MIN_KNOWN_SECRET_LEN, Scanner};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;

use crate::audit::AuditLog;
use crate::config::{GateConfig, GateLimits};
use crate::error::GateError;
use crate::git::shell_quote;
use crate::hook::Tickets;
use crate::mirror::{Mirror, StateLayout, state_error, write_private};

/// The running gate, shared by every connection.
#[derive(Debug)]
pub(crate) struct Gate {
    pub slug: String,
    pub mirrors: HashMap<String, Arc<Mirror>>,
    pub scanner: Scanner,
    pub tickets: Tickets,
    pub control_socket: PathBuf,
    pub limits: GateLimits,
    /// The bottle's queue, for pushes held by suppression markers.
    pub queue: bottle_queue::Queue,
    /// Number of pushes held at the moment.
    pub holds: AtomicUsize,
    pub audit: AuditLog,
}

impl Gate {
    pub fn mirror(&self, name: &str) -> Option<Arc<Mirror>> {
        self.mirrors.get(name).cloned()
    }
}

/// Serves the smart HTTP git protocol for the configured repos on `listener` until
/// accepting fails.
///
/// Start-up validates the configuration, checks the secret scanner against a built-in
/// sample, writes the pre-receive hook, creates or updates one bare mirror per repo and
/// opens the control socket. Mirrors are not fetched at start-up, so an unreachable
/// upstream does not stop the gate; the agent's first fetch reports it.
pub async fn serve<L: Accept>(config: GateConfig, listener: L) -> Result<(), GateError> {
    let gate = Arc::new(start(config).await?);
    let control = UnixListener::bind(&gate.control_socket)
        .map_err(|source| state_error(&gate.control_socket, source))?;
    std::fs::set_permissions(&gate.control_socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|source| state_error(&gate.control_socket, source))?;
    tokio::spawn(crate::prereceive::serve_control(Arc::clone(&gate), control));
    tracing::info!(slug = %gate.slug, repos = gate.mirrors.len(), "git gate ready");

    loop {
        let stream = match listener.accept_stream().await {
            Ok(accepted) => accepted,
            Err(error) if is_per_connection(&error) => {
                tracing::debug!("git gate: a connection failed before it was accepted: {error}");
                continue;
            }
            Err(error) => return Err(GateError::Accept(error)),
        };
        let gate = Arc::clone(&gate);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let gate = Arc::clone(&gate);
                async move {
                    Ok::<_, std::convert::Infallible>(crate::http::handle(gate, request).await)
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                tracing::debug!("git gate connection ended with an error: {error}");
            }
        });
    }
}

/// Returns whether an `accept` error concerns one connection only, so serving goes on.
fn is_per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    )
}

async fn start(config: GateConfig) -> Result<Gate, GateError> {
    config.validate()?;
    let scanner = Scanner::try_new(&config.known_secrets)
        .map_err(|error| GateError::ScannerSelfTest(error.to_string()))?;
    self_test(&scanner, &config.known_secrets)?;

    let layout = StateLayout::create(&config.state_dir)?;
    write_hook(&layout.hooks.join("pre-receive"), &config)?;

    let mut mirrors = HashMap::new();
    for repo in &config.repos {
        let mirror = Mirror::prepare(repo, &layout, &config.limits).await?;
        mirrors.insert(repo.name.clone(), Arc::new(mirror));
    }

    let control_socket = layout.control.join("pre-receive.sock");
    if control_socket.exists() {
        std::fs::remove_file(&control_socket)
            .map_err(|source| state_error(&control_socket, source))?;
    }
    let queue_dir = config
        .queue_dir
        .clone()
        .unwrap_or_else(|| config.state_dir.join("queue"));
    let audit_path = config
        .audit_log
        .clone()
        .unwrap_or_else(|| config.state_dir.join("git.jsonl"));
    Ok(Gate {
        slug: config.slug,
        mirrors,
        scanner,
        tickets: Tickets::default(),
        control_socket,
        limits: config.limits,
        queue: bottle_queue::Queue::new(queue_dir),
        holds: AtomicUsize::new(0),
        audit: AuditLog::open(&audit_path)?,
    })
}

/// Writes the pre-receive hook: a shell script that execs the configured program, which
/// calls `pre_receive_main`. It names no secret.
fn write_hook(path: &std::path::Path, config: &GateConfig) -> Result<(), GateError> {
    let mut command = shell_quote(&config.hook_program.to_string_lossy());
    for arg in &config.hook_args {
        command.push(' ');
        command.push_str(&shell_quote(arg));
    }
    let script = format!("#!/bin/sh\nexec {command}\n");
    write_private(path, script.as_bytes(), 0o700)
}

/// Fails unless the scanner flags a sample token and each known secret: a scanner that
/// misses them would let every push through.
fn self_test(scanner: &Scanner, known_secrets: &[String]) -> Result<(), GateError> {
    let sample = format!(
        "token = \"ghp_{}\"\n",
        "Zq3xV8mK2pL9wR4tY7uN1bC6dF0hJ5sA2eG8"
    );
    if scanner.scan(sample.as_bytes()).is_empty() {
        return Err(GateError::ScannerSelfTest(
            "a sample GitHub token was not flagged".to_owned(),
        ));
    }
    for (index, secret) in known_secrets.iter().enumerate() {
        if secret.len() < MIN_KNOWN_SECRET_LEN {
            // TODO(security): the scanner ignores values this short, so a push can carry
            // them; the launcher should reject such secrets or the scanner match them.
            tracing::warn!(index, "a known secret is too short to be scanned for");
            continue;
        }
        if scanner.scan(secret.as_bytes()).is_empty() {
            return Err(GateError::ScannerSelfTest(format!(
                "known secret number {index} was not flagged"
            )));
        }
    }
    Ok(())
}
