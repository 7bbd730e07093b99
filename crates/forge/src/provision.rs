//! Provisioning, revoking and collecting deploy keys, with the journal kept in step.

use std::path::Path;

use crate::error::ForgeError;
use crate::forge::{Forge, ForgeToken, Provider, connect, validate_repo};
use crate::journal::{Journal, JournalEntry, find_journals};
use crate::key::generate_key;

/// Request to provision a deploy key for one repo of a bottle.
#[derive(Debug, Clone)]
pub struct KeyRequest {
    pub provider: Provider,
    pub api_url: String,
    /// Repository path on the forge, `owner/name`.
    pub repo: String,
    /// Host variable that contains the forge token. It is recorded so `gc` can find the token.
    pub token_env: String,
    pub read_only: bool,
    /// Title of the key on the forge; build it with [`key_title`].
    pub title: String,
    /// File name of the private key inside the key directory.
    pub key_file: String,
}

/// Returns the title of a bottle's deploy key: the user's title if given, always followed
/// by the bottle's slug and repo name so that `bottle gc` and a person can recognise it.
pub fn key_title(slug: &str, repo_name: &str, custom: Option<&str>) -> String {
    match custom {
        Some(title) => format!("{title} (bot-bottle {slug} {repo_name})"),
        None => format!("bot-bottle {slug} {repo_name}"),
    }
}

/// Generates a key pair in `key_dir`, records it in `journal`, registers its public half
/// with the forge and records the key id. Returns the complete journal entry; its
/// `private_key` is the identity file for the git gate.
///
/// If registration fails, the key is revoked again when possible (the forge may have
/// created it before the connection broke). An entry that could not be cleaned up stays
/// in the journal for `gc`.
pub async fn provision_key(
    forge: &dyn Forge,
    journal: &Journal,
    key_dir: &Path,
    request: &KeyRequest,
) -> Result<JournalEntry, ForgeError> {
    validate_repo(&request.repo)?;
    let generated = generate_key(key_dir, &request.key_file, &request.title)?;
    let mut entry = JournalEntry {
        provider: request.provider,
        api_url: request.api_url.clone(),
        repo: request.repo.clone(),
        token_env: request.token_env.clone(),
        title: request.title.clone(),
        public_key: generated.public_key.clone(),
        key_id: None,
        private_key: generated.private_key.clone(),
    };
    if let Err(error) = journal.record(&entry) {
        let _ = std::fs::remove_file(&generated.private_key);
        return Err(error);
    }

    let created = forge
        .create_key(
            &request.repo,
            &request.title,
            &generated.public_key,
            request.read_only,
        )
        .await;
    match created {
        Ok(id) => {
            entry.key_id = Some(id);
            journal.record(&entry)?;
            Ok(entry)
        }
        Err(error) => {
            if let Err(cleanup) = revoke_key(forge, journal, &entry).await {
                tracing::warn!(
                    repo = %entry.repo,
                    "cleaning up after a failed registration failed: {cleanup}"
                );
            }
            Err(error)
        }
    }
}

/// Deletes the key from the forge, then removes its journal entry and private key file.
/// "Not found" on the forge counts as deleted. On any other failure the entry stays in
/// the journal, so a later `gc` retries it.
pub async fn revoke_key(
    forge: &dyn Forge,
    journal: &Journal,
    entry: &JournalEntry,
) -> Result<(), ForgeError> {
    match entry.key_id {
        Some(id) => forge.delete_key(&entry.repo, id).await?,
        None => {
            // Registration may have succeeded without its id reaching the journal, so the
            // key is looked up by its public half.
            let wanted = key_material(&entry.public_key);
            for remote in forge.list_keys(&entry.repo).await? {
                if key_material(&remote.key) == wanted {
                    forge.delete_key(&entry.repo, remote.id).await?;
                }
            }
        }
    }
    match std::fs::remove_file(&entry.private_key) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => tracing::warn!(
            path = %entry.private_key.display(),
            "cannot remove a revoked deploy key's private half: {error}"
        ),
    }
    journal.remove(entry)
}

/// Returns the `<type> <base64>` part of a public key line.
fn key_material(line: &str) -> Vec<&str> {
    line.split_ascii_whitespace().take(2).collect()
}

/// Outcome of revoking the keys of one or more journals.
#[derive(Debug, Default)]
pub struct RevokeReport {
    /// Keys deleted from their forge (or already gone) and removed from the journal.
    pub revoked: Vec<JournalEntry>,
    /// Keys that are still in a journal, each with the reason.
    pub failed: Vec<(JournalEntry, ForgeError)>,
    /// Journals that could not be read.
    pub unreadable: Vec<ForgeError>,
}

impl RevokeReport {
    /// Returns whether every key was revoked and every journal read.
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty() && self.unreadable.is_empty()
    }
}

/// Revokes every key recorded in `journal`. `token_for` returns the value of a host
/// variable (normally `std::env::var`); a missing token leaves the key for later.
/// This is the teardown step, after the agent has stopped.
pub async fn revoke_journal(
    journal: &Journal,
    token_for: &(dyn Fn(&str) -> Option<ForgeToken> + Sync),
) -> RevokeReport {
    let mut report = RevokeReport::default();
    revoke_into(journal, token_for, &mut report).await;
    report
}

/// Retries every stranded key in the journals of all bottles under `state_root`
/// (`<state_root>/<slug>/deploy-keys.json`). This is `bottle gc`.
pub async fn gc(
    state_root: &Path,
    token_for: &(dyn Fn(&str) -> Option<ForgeToken> + Sync),
) -> RevokeReport {
    let mut report = RevokeReport::default();
    match find_journals(state_root) {
        Ok(journals) => {
            for journal in journals {
                revoke_into(&journal, token_for, &mut report).await;
            }
        }
        Err(error) => report.unreadable.push(error),
    }
    report
}

async fn revoke_into(
    journal: &Journal,
    token_for: &(dyn Fn(&str) -> Option<ForgeToken> + Sync),
    report: &mut RevokeReport,
) {
    let entries = match journal.entries() {
        Ok(entries) => entries,
        Err(error) => {
            report.unreadable.push(error);
            return;
        }
    };
    for entry in entries {
        let Some(token) = token_for(&entry.token_env) else {
            let error = ForgeError::MissingToken {
                repo: entry.repo.clone(),
                key_id: entry.key_id,
                token_env: entry.token_env.clone(),
            };
            report.failed.push((entry, error));
            continue;
        };
        let result = match connect(entry.provider, &entry.api_url, token) {
            Ok(forge) => revoke_key(forge.as_ref(), journal, &entry).await,
            Err(error) => Err(error),
        };
        match result {
            Ok(()) => report.revoked.push(entry),
            Err(error) => {
                tracing::error!(repo = %entry.repo, key_id = ?entry.key_id, "deploy key not revoked: {error}");
                report.failed.push((entry, error));
            }
        }
    }
}

/// Reads a forge token from the host variable `name`; an unset or empty variable gives
/// `None`. Pass it to [`revoke_journal`] and [`gc`] as `&env_token`.
pub fn env_token(name: &str) -> Option<ForgeToken> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .map(ForgeToken::new)
}

/// A repo's `provisioned_key` settings from the bottle file.
#[derive(Debug, Clone)]
pub struct ProvisionSettings {
    pub provider: Provider,
    pub api_url: String,
    /// Host variable that contains the forge token; only its name is recorded.
    pub token_env: String,
    pub read_only: bool,
    /// The user's title; the slug and repo name are always appended.
    pub title: Option<String>,
}

/// Name of the directory inside a bottle's state directory that keeps the private keys.
pub const KEY_DIR: &str = "deploy-keys";

/// Provisions the deploy key of one declared repo of a bottle, before the agent starts.
///
/// The forge repository path is taken from `upstream_url` (`git@host:owner/name.git` or
/// `ssh://host/owner/name`). The private key goes to `<bottle_state_dir>/deploy-keys/<repo_name>`
/// and the journal to `<bottle_state_dir>/deploy-keys.json`. The returned entry's
/// `private_key` is the gate's identity file for this repo.
pub async fn provision_repo_key(
    bottle_state_dir: &Path,
    slug: &str,
    repo_name: &str,
    upstream_url: &str,
    settings: &ProvisionSettings,
    token: ForgeToken,
) -> Result<JournalEntry, ForgeError> {
    let repo = crate::forge::repo_from_url(upstream_url).ok_or_else(|| {
        ForgeError::Config(format!(
            "repo '{repo_name}': cannot find owner/name in the upstream URL '{upstream_url}'"
        ))
    })?;
    let forge = connect(settings.provider, &settings.api_url, token)?;
    let request = KeyRequest {
        provider: settings.provider,
        api_url: settings.api_url.clone(),
        repo,
        token_env: settings.token_env.clone(),
        read_only: settings.read_only,
        title: key_title(slug, repo_name, settings.title.as_deref()),
        key_file: repo_name.to_owned(),
    };
    provision_key(
        forge.as_ref(),
        &Journal::in_dir(bottle_state_dir),
        &bottle_state_dir.join(KEY_DIR),
        &request,
    )
    .await
}
