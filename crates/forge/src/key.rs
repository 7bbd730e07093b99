//! Generating deploy key pairs in process.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, LineEnding, PrivateKey};

use crate::error::ForgeError;

/// A generated key pair whose private half is on disk.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The public half as an authorized-keys line: `ssh-ed25519 <base64> <comment>`.
    pub public_key: String,
    /// The private half in OpenSSH format, mode 0600.
    pub private_key: PathBuf,
}

/// Generates an ed25519 key pair and writes the private half to `dir/file_name` with mode
/// 0600. `dir` is created with mode 0700 if it is missing. The file must not exist yet
/// (`create_new`), so a stale or planted file is never reused. `comment` becomes the
/// public key's comment.
pub fn generate_key(
    dir: &Path,
    file_name: &str,
    comment: &str,
) -> Result<GeneratedKey, ForgeError> {
    if file_name.is_empty() || file_name.contains('/') || file_name.starts_with('.') {
        return Err(ForgeError::Config(format!(
            "invalid key file name '{}'",
            file_name.escape_debug()
        )));
    }
    let mut private = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
        .map_err(|error| ForgeError::KeyGeneration(error.to_string()))?;
    private.set_comment(comment);
    let encoded = private
        .to_openssh(LineEnding::LF)
        .map_err(|error| ForgeError::KeyGeneration(error.to_string()))?;
    let public_key = private
        .public_key()
        .to_openssh()
        .map_err(|error| ForgeError::KeyGeneration(error.to_string()))?;

    let path = dir.join(file_name);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| ForgeError::KeyFile {
            path: dir.to_owned(),
            source,
        })?;
    let key_error = |source| ForgeError::KeyFile {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(key_error)?;
    file.write_all(encoded.as_bytes()).map_err(key_error)?;
    file.sync_all().map_err(key_error)?;
    Ok(GeneratedKey {
        public_key,
        private_key: path,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn key_is_private_and_openssh() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let key = generate_key(dir.path(), "widgets", "bottle abc widgets").expect("generate");
        assert!(
            key.public_key.starts_with("ssh-ed25519 AAAA"),
            "{}",
            key.public_key
        );
        assert!(key.public_key.ends_with(" bottle abc widgets"));
        let text = std::fs::read_to_string(&key.private_key).expect("read");
        assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let mode = std::fs::metadata(&key.private_key)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let parsed = PrivateKey::from_openssh(&text).expect("parse");
        assert_eq!(parsed.algorithm(), Algorithm::Ed25519);
    }

    #[test]
    fn missing_dir_is_created_private() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let keys = dir.path().join("state/keys");
        generate_key(&keys, "widgets", "c").expect("generate");
        let mode = std::fs::metadata(&keys).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn existing_file_is_not_replaced() {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("widgets"), "planted").expect("write");
        let error = generate_key(dir.path(), "widgets", "c").expect_err("exists");
        assert!(matches!(error, ForgeError::KeyFile { .. }), "{error}");
        let text = std::fs::read_to_string(dir.path().join("widgets")).expect("read");
        assert_eq!(text, "planted");
    }

    #[test]
    fn two_keys_differ() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let a = generate_key(dir.path(), "a", "c").expect("generate");
        let b = generate_key(dir.path(), "b", "c").expect("generate");
        assert_ne!(a.public_key, b.public_key);
    }

    #[test]
    fn file_name_cannot_leave_dir() {
        let dir = tempfile::tempdir().expect("temporary directory");
        for name in ["", "../x", "a/b", ".hidden"] {
            assert!(generate_key(dir.path(), name, "c").is_err(), "{name:?}");
        }
    }
}
