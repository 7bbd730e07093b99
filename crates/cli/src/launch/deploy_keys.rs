//! Deploy keys created per bottle through a forge's API: registered before the agent
//! starts and revoked after the agent and the sidecar have stopped.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use bottle_forge::{ForgeToken, Journal, RevokeReport};

use super::PlannedRepo;

/// Registers a deploy key for every repo that requests one, records each in the
/// bottle's journal before it is used, and points the repo's identity at the private
/// key. Returns the secret values involved (forge tokens and key material), which the
/// sidecar must watch for.
pub fn provision(
    repos: &mut [PlannedRepo],
    state_dir: &Path,
    slug: &str,
    host_var: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>> {
    let mut secrets = Vec::new();
    if repos.iter().all(|repo| repo.provision.is_none()) {
        return Ok(secrets);
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime for the forge API")?;
    for repo in repos.iter_mut() {
        let Some(settings) = &repo.provision else {
            continue;
        };
        let name = repo.gate.name.clone();
        let token = host_var(&settings.token_env)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "git-gate.repos.{name}.provisioned_key.token_env names {}, which is not set; \
                 export the forge token as {}",
                    settings.token_env,
                    settings.token_env
                )
            })?;
        secrets.push(token.clone());

        let entry = runtime
            .block_on(bottle_forge::provision_repo_key(
                state_dir,
                slug,
                &name,
                &repo.gate.url,
                settings,
                ForgeToken::new(token),
            ))
            .with_context(|| format!("cannot register a deploy key for repo {name}"))?;
        repo.gate.identity = entry.private_key.clone();
        secrets.push(
            std::fs::read_to_string(&entry.private_key)
                .context("cannot read the generated deploy key")?,
        );
    }
    Ok(secrets)
}

/// Revokes every deploy key in the bottle's journal. Keys that cannot be revoked stay
/// in the journal for `bottle gc`, and the error names each repo and key id.
pub fn revoke(state_dir: &Path) -> Result<()> {
    let journal = Journal::in_dir(state_dir);
    if !journal.path().exists() {
        return Ok(());
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime for the forge API")?;
    let report = runtime.block_on(bottle_forge::revoke_journal(
        &journal,
        &bottle_forge::env_token,
    ));
    check(&report, "bottle gc")
}

/// Turns a revocation report into an error that lists every key left behind.
pub fn check(report: &RevokeReport, retry: &str) -> Result<()> {
    if report.is_clean() {
        return Ok(());
    }
    let mut lines = Vec::new();
    for (entry, error) in &report.failed {
        let key_id = entry
            .key_id
            .map_or_else(|| "unknown".to_owned(), |id| id.to_string());
        lines.push(format!("  repo {} key id {key_id}: {error}", entry.repo));
    }
    for error in &report.unreadable {
        lines.push(format!("  {error}"));
    }
    bail!(
        "deploy keys were not revoked; they stay recorded, and `{retry}` retries them:\n{}",
        lines.join("\n")
    )
}
