//! Installing a provider's pinned CLI with npm, outside every bottle.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::ProviderError;
use crate::spec::NpmPackage;

/// Mount point of the install directory inside the bottle, bound read-only.
pub const AGENT_MOUNT: &str = "/opt/bottle/agent";

/// Returns the install directory of `package`: `<config>/cache/agents/<name>-<version>`,
/// where `<name>` is the package name without its scope.
pub fn install_dir(config_dir: &Path, package: &NpmPackage) -> PathBuf {
    let name = package.npm.rsplit('/').next().unwrap_or(&package.npm);
    config_dir
        .join("cache/agents")
        .join(format!("{name}-{}", package.version))
}

/// Installs `package` into `dir` with `npm` unless its executable is already there, and
/// returns `dir`. Install scripts do not run: they would run package code on the host.
/// The install goes to a sibling directory first and is renamed into place, so an
/// interrupted install never looks complete.
pub fn ensure_installed(dir: &Path, package: &NpmPackage) -> Result<PathBuf, ProviderError> {
    let fail = |reason: String| ProviderError::Install {
        package: package.npm.clone(),
        version: package.version.clone(),
        dir: dir.to_path_buf(),
        reason,
    };
    if dir.join(package.bin_path()).exists() {
        return Ok(dir.to_path_buf());
    }

    let parent = dir
        .parent()
        .ok_or_else(|| fail("the directory has no parent".to_owned()))?;
    std::fs::create_dir_all(parent).map_err(|err| fail(format!("cannot create {err}")))?;
    let staging = parent.join(format!(
        ".{}.partial-{}",
        dir.file_name()
            .map(|name| name.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&staging);

    tracing::info!(package = %package.npm, version = %package.version, "installing the agent CLI");
    let output = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--prefix",
        ])
        .arg(&staging)
        .arg(format!("{}@{}", package.npm, package.version))
        .output()
        .map_err(|err| fail(format!("cannot run npm ({err}); install Node.js and npm")))?;
    if !output.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last_lines: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(fail(format!(
            "npm install failed ({}): {}",
            output.status,
            last_lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )));
    }
    if !staging.join(package.bin_path()).exists() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(fail(format!(
            "npm installed the package, but {} is missing; the package may need a platform \
             binary that the registry does not have for this machine",
            package.bin_path()
        )));
    }
    match std::fs::rename(&staging, dir) {
        Ok(()) => Ok(dir.to_path_buf()),
        // Another launch finished the same install first.
        Err(_) if dir.join(package.bin_path()).exists() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(dir.to_path_buf())
        }
        Err(err) => Err(fail(format!("cannot move the install into place: {err}"))),
    }
}
