//! Listeners the proxy and the git gate accept connections on: TCP on the native
//! backend, where the sockets live in the bottle's network namespace, and unix sockets
//! on the docker backend, where a bridge inside the bottle forwards to them.

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

/// A listening socket that yields byte streams.
pub trait Accept: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Accepts the next connection.
    fn accept_stream(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Describes the listening address for the start-up log line.
    fn describe(&self) -> String;

    /// Prepares an accepted stream; TCP turns off Nagle's algorithm.
    fn tune(_stream: &Self::Stream) {}
}

impl Accept for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;

    async fn accept_stream(&self) -> io::Result<Self::Stream> {
        self.accept().await.map(|(stream, _)| stream)
    }

    fn describe(&self) -> String {
        self.local_addr()
            .map_or_else(|_| "tcp".to_owned(), |address| address.to_string())
    }

    fn tune(stream: &Self::Stream) {
        let _ = stream.set_nodelay(true);
    }
}

impl Accept for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;

    async fn accept_stream(&self) -> io::Result<Self::Stream> {
        self.accept().await.map(|(stream, _)| stream)
    }

    fn describe(&self) -> String {
        self.local_addr()
            .ok()
            .and_then(|address| address.as_pathname().map(|path| path.display().to_string()))
            .unwrap_or_else(|| "unix".to_owned())
    }
}
