//! Values that remember the file that set them.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// A value and the file that set it, for `bottle info` and the plan's provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// The file that set the value; `None` for a built-in default.
    pub source: Option<PathBuf>,
}

impl<T> Sourced<T> {
    /// Wraps a value set by `file`.
    pub fn new(value: T, file: &Path) -> Sourced<T> {
        Sourced {
            value,
            source: Some(file.to_path_buf()),
        }
    }

    /// Wraps a built-in default.
    pub fn default_value(value: T) -> Sourced<T> {
        Sourced {
            value,
            source: None,
        }
    }

    /// Applies `convert` to the value, keeping the source.
    pub fn map<U>(self, convert: impl FnOnce(T) -> U) -> Sourced<U> {
        Sourced {
            value: convert(self.value),
            source: self.source,
        }
    }
}
