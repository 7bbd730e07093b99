//! The docker backend's images: the base image, and the sidecar and agent images that
//! `bottle` builds from it and reuses.

use std::path::Path;

use anyhow::{Context, Result, bail};
use bottle_docker::{ContextFile, Engine};
use sha2::{Digest, Sha256};

use super::{AGENT_ID, BOTTLE_IN_IMAGE};
use crate::launch::LaunchPlan;

/// The base image every derived image is built from, unless overridden.
pub const DEFAULT_BASE_IMAGE: &str = "bot-bottle/base:bookworm";

/// The variable naming another base image, such as `debian:bookworm-slim` pulled with
/// `docker pull`. It must contain git, openssh-client, curl and ca-certificates.
pub const BASE_IMAGE_VAR: &str = "BOT_BOTTLE_DOCKER_BASE";

/// The repository of the sidecar images, tagged with a hash of the `bottle` binary.
const SIDECAR_REPOSITORY: &str = "bot-bottle/sidecar";

/// The images of one launch.
#[derive(Debug)]
pub struct Images {
    pub sidecar: String,
    pub agent: String,
}

/// Removes the sidecar images of other `bottle` binaries than the running one, and the
/// untagged images `bottle` built, except those a container still uses. Returns the
/// removed tags and image ids.
pub async fn remove_stale_sidecar_images(engine: &Engine) -> Result<Vec<String>> {
    let exe_path = std::env::current_exe().context("cannot find the bottle executable")?;
    let exe =
        std::fs::read(&exe_path).with_context(|| format!("cannot read {}", exe_path.display()))?;
    let current = format!("{SIDECAR_REPOSITORY}:{}", short_hash(&exe));
    let mut removed = Vec::new();
    for tag in engine.image_tags(SIDECAR_REPOSITORY).await? {
        if tag != current && engine.remove_image(&tag).await? {
            removed.push(tag);
        }
    }
    removed.extend(engine.remove_untagged_images().await?);
    Ok(removed)
}

/// Returns the runtime for the agent: gVisor's `runsc` when the daemon offers it.
pub async fn agent_runtime(engine: &Engine) -> Result<Option<String>> {
    let runtimes = engine.runtimes().await?;
    Ok(runtimes
        .iter()
        .any(|name| name == bottle_docker::GVISOR_RUNTIME)
        .then(|| bottle_docker::GVISOR_RUNTIME.to_owned()))
}

/// Describes the runtime the agent would run on, for `bottle run --dry-run`.
pub fn describe_runtime() -> String {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return format!("unknown ({err})"),
    };
    runtime.block_on(async {
        match Engine::connect().await {
            Ok(engine) => match agent_runtime(&engine).await {
                Ok(Some(runtime)) => runtime,
                Ok(None) => "runc (gVisor's runsc is not installed)".to_owned(),
                Err(err) => format!("unknown ({err})"),
            },
            Err(err) => format!("unknown ({err})"),
        }
    })
}

/// Returns the base image: `BOT_BOTTLE_DOCKER_BASE` or the locally built default.
fn base_image() -> String {
    std::env::var(BASE_IMAGE_VAR)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| DEFAULT_BASE_IMAGE.to_owned())
}

/// The first 12 hex digits of the SHA-256 of `bytes`.
fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest
        .iter()
        .take(6)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Builds the sidecar image and the agent image unless they exist, holding a file lock
/// so that concurrent launches do not build the same tag twice.
pub async fn ensure_images(
    engine: &Engine,
    plan: &LaunchPlan,
    config_dir: &Path,
) -> Result<Images> {
    let base = base_image();
    if !engine.image_exists(&base).await? {
        bail!(
            "the docker backend's base image {base} is missing; build it with \
             scripts/docker-base, or pull a Debian image that has git, openssh-client, curl \
             and ca-certificates and name it in {BASE_IMAGE_VAR}"
        );
    }

    let exe_path = std::env::current_exe().context("cannot find the bottle executable")?;
    let exe =
        std::fs::read(&exe_path).with_context(|| format!("cannot read {}", exe_path.display()))?;
    let sidecar_tag = format!("{SIDECAR_REPOSITORY}:{}", short_hash(&exe));
    let sidecar_file = format!("FROM {base}\nCOPY bottle {BOTTLE_IN_IMAGE}\n");

    let (agent_tag, agent_file) = match &plan.dockerfile {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the dockerfile {}", path.display()))?;
            (
                format!("bot-bottle/custom:{}", short_hash(text.as_bytes())),
                text,
            )
        }
        None => {
            let text = format!(
                "FROM {base}\nRUN groupadd --gid {AGENT_ID} agent && useradd --uid {AGENT_ID} \
                 --gid {AGENT_ID} --home-dir /home/agent --create-home --shell /bin/bash agent\n"
            );
            (
                format!("bot-bottle/agent:{}", short_hash(text.as_bytes())),
                text,
            )
        }
    };

    let have_sidecar = engine.image_exists(&sidecar_tag).await?;
    let have_agent = engine.image_exists(&agent_tag).await?;
    if have_sidecar && have_agent {
        return Ok(Images {
            sidecar: sidecar_tag,
            agent: agent_tag,
        });
    }

    let lock_path = config_dir.join("state").join(".docker-images.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    // Blocking is fine: nothing else runs on this runtime yet.
    lock.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;

    if !engine.image_exists(&sidecar_tag).await? {
        eprintln!("bottle: building image {sidecar_tag}");
        engine
            .build_image(
                &sidecar_tag,
                &[
                    ContextFile {
                        path: "Dockerfile",
                        contents: sidecar_file.as_bytes(),
                        mode: 0o644,
                    },
                    ContextFile {
                        path: "bottle",
                        contents: &exe,
                        mode: 0o755,
                    },
                ],
            )
            .await?;
    }
    if !engine.image_exists(&agent_tag).await? {
        eprintln!("bottle: building image {agent_tag}");
        engine
            .build_image(
                &agent_tag,
                &[ContextFile {
                    path: "Dockerfile",
                    contents: agent_file.as_bytes(),
                    mode: 0o644,
                }],
            )
            .await?;
    }
    drop(lock);
    Ok(Images {
        sidecar: sidecar_tag,
        agent: agent_tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_hash_is_12_hex_digits() {
        let hash = short_hash(b"bottle");
        assert_eq!(hash.len(), 12);
        assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
