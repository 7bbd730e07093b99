//! Behaviour tests of the native sandbox. They start real bottles through the test helper
//! binary, so they need user namespaces; when those are forbidden, every test fails with
//! the launcher's message, which names what to enable. Run as root, they also re-run the
//! whole suite as the unprivileged user `bottle-test` (see `rootless`).

// The set-up calls mkfifo, pidfd_open and poll through libc.
#![allow(unsafe_code)]

mod common;
mod exec;
mod isolation;
mod lifecycle;
mod network;
mod rootless;
