//! The pre-receive hook's side: a small process that git runs inside the push's
//! quarantine, which forwards the ref updates to the gate over a Unix socket and prints
//! the gate's messages.
//!
//! The hook has no secret and makes no decision. The gate keeps the known secrets in
//! memory, so they never reach the disk, a hook's argv or its environment.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::policy::RefUpdate;

/// Environment variable that gives the hook the path of the gate's control socket.
pub(crate) const SOCKET_ENV: &str = "BOTTLE_GITGATE_SOCKET";
/// Environment variable that gives the hook the ticket of the push it belongs to.
pub(crate) const TICKET_ENV: &str = "BOTTLE_GITGATE_TICKET";

/// Largest request line the gate reads from a hook.
pub(crate) const MAX_REQUEST_BYTES: u64 = 4 << 20;

/// Request from the hook: the ref updates and the location of the pushed objects.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HookRequest {
    pub ticket: String,
    pub updates: Vec<RefUpdate>,
    /// `GIT_OBJECT_DIRECTORY`: the quarantine's object directory. Git sets it only when
    /// the push sent objects, so a push of deletions alone comes without one.
    pub object_directory: Option<String>,
    /// `GIT_QUARANTINE_PATH`, which git sets to the same directory.
    pub quarantine_path: Option<String>,
}

/// One line of the gate's reply: a message for the pusher, or the final verdict.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum HookReply {
    Message(String),
    Verdict { accepted: bool },
}

/// Runs the pre-receive hook: reads `<old> <new> <ref>` lines from stdin, sends them to the gate,
/// prints its messages on stderr (git shows them to the pusher as `remote:` lines) and
/// exits 0 only if the gate accepted the push. Any failure rejects the push.
pub fn pre_receive_main() -> ExitCode {
    match run_hook() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(reason) => {
            eprintln!("git gate: push rejected: the pre-receive check failed: {reason}");
            ExitCode::FAILURE
        }
    }
}

fn run_hook() -> Result<bool, String> {
    let socket = std::env::var_os(SOCKET_ENV).ok_or(format!("{SOCKET_ENV} is not set"))?;
    let ticket = std::env::var(TICKET_ENV).map_err(|_| format!("{TICKET_ENV} is not set"))?;
    let object_directory = std::env::var("GIT_OBJECT_DIRECTORY").ok();
    let quarantine_path = std::env::var("GIT_QUARANTINE_PATH").ok();

    let mut input = String::new();
    std::io::stdin()
        .take(MAX_REQUEST_BYTES)
        .read_to_string(&mut input)
        .map_err(|error| format!("reading the ref updates failed: {error}"))?;
    let updates = input
        .lines()
        .map(|line| RefUpdate::parse(line).ok_or("git sent an invalid ref update line"))
        .collect::<Result<Vec<_>, _>>()?;

    let request = HookRequest {
        ticket,
        updates,
        object_directory,
        quarantine_path,
    };
    let mut stream = UnixStream::connect(&socket)
        .map_err(|error| format!("cannot reach the gate's control socket: {error}"))?;
    let mut line = serde_json::to_vec(&request).expect("the request serializes");
    line.push(b'\n');
    stream
        .write_all(&line)
        .map_err(|error| format!("sending to the gate failed: {error}"))?;

    let stderr = std::io::stderr();
    for reply in BufReader::new(stream).lines() {
        let reply = reply.map_err(|error| format!("reading the gate's reply failed: {error}"))?;
        match serde_json::from_str::<HookReply>(&reply) {
            Ok(HookReply::Message(text)) => {
                let _ = writeln!(stderr.lock(), "{text}");
            }
            Ok(HookReply::Verdict { accepted }) => return Ok(accepted),
            Err(_) => return Err("the gate sent an invalid reply".to_owned()),
        }
    }
    Err("the gate closed the connection without a verdict".to_owned())
}

/// Tickets of running receive-pack processes: a hook's request is served only if its
/// ticket was issued for a push that is still running, and only for that push's repo.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tickets {
    live: Arc<Mutex<HashMap<String, String>>>,
}

impl Tickets {
    /// Issues a ticket for one receive-pack run of `repo`; dropping it revokes it.
    pub fn issue(&self, repo: &str) -> Ticket {
        let bytes: [u8; 16] = rand::rng().random();
        let value: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.live
            .lock()
            .expect("ticket map is never poisoned")
            .insert(value.clone(), repo.to_owned());
        Ticket {
            value,
            live: Arc::clone(&self.live),
        }
    }

    /// Returns the repo a live ticket was issued for.
    pub fn repo(&self, ticket: &str) -> Option<String> {
        self.live
            .lock()
            .expect("ticket map is never poisoned")
            .get(ticket)
            .cloned()
    }
}

/// A live ticket; revoked on drop.
#[derive(Debug)]
pub(crate) struct Ticket {
    value: String,
    live: Arc<Mutex<HashMap<String, String>>>,
}

impl Ticket {
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(&self.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_is_revoked_on_drop() {
        let tickets = Tickets::default();
        let ticket = tickets.issue("widgets");
        let value = ticket.value().to_owned();
        assert_eq!(tickets.repo(&value).as_deref(), Some("widgets"));
        drop(ticket);
        assert_eq!(tickets.repo(&value), None);
    }

    #[test]
    fn reply_lines_round_trip() {
        let line = serde_json::to_string(&HookReply::Verdict { accepted: true }).expect("json");
        assert!(matches!(
            serde_json::from_str::<HookReply>(&line).expect("parse"),
            HookReply::Verdict { accepted: true }
        ));
    }
}
