//! A fake internet for tests: a throwaway CA, recording HTTPS and HTTP servers on
//! loopback, and clients that speak through an HTTP proxy.
//!
//! Every server binds `127.0.0.1` on an ephemeral port and stops when dropped, so tests
//! send nothing beyond loopback. Give a proxy route `connect: 127.0.0.1:<port>` and the
//! test CA as `upstream_ca` to reach a [`RecordingServer`] under any host name.

mod ca;
pub mod client;
pub mod git;
pub mod scripted;
mod server;

pub use ca::{TestCa, client_config_from_pem, crypto_provider};
pub use server::{
    REDIRECT_PATH, REDIRECT_TARGET, RecordedRequest, RecordingServer, RecordingServerThread,
    RecordsHandle, STREAM_FIRST_CHUNK, STREAM_LAST_CHUNK, STREAM_PATH,
};
