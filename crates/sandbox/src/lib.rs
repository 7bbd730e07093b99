//! The native backend's sandbox: Linux namespaces, seccomp, Landlock and resource
//! limits, set up by a small single-threaded helper process.

use std::process::ExitCode;

/// The first argument that selects the sandbox helper in the `bottle` binary.
pub const INIT_ARG: &str = "__sandbox-init";

/// Runs the sandbox helper. Must be called before any thread is started.
pub fn init_main() -> ExitCode {
    ExitCode::from(125)
}
