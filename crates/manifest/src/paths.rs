//! Host paths named in bottle files (`dockerfile`, `identity`, `upstream_ca`).

use std::path::{Path, PathBuf};

/// Resolves a path written in `file`: `~/` is the home directory, and a relative path
/// is relative to the directory that holds `file`.
// TODO(ux): check that the path exists, so `bottle check` reports a missing file
// before a launch does.
pub(crate) fn resolve_path(file: &Path, text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("the path is empty".into());
    }
    if text.contains('\0') {
        return Err("the path contains a NUL byte".into());
    }
    if let Some(rest) = text.strip_prefix("~/") {
        let home = std::env::var_os("HOME")
            .ok_or_else(|| format!("cannot expand \"{text}\" because HOME is not set"))?;
        return Ok(PathBuf::from(home).join(rest));
    }
    let path = Path::new(text);
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let directory = file.parent().unwrap_or(Path::new("."));
    Ok(directory.join(path))
}
