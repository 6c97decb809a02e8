//! Connections a server can cut at shutdown.
//!
//! A graceful shutdown lets every call in flight finish, and the client decides when its call
//! finishes: an upload whose last chunk never comes, or a data-plane stream a peer keeps open,
//! would hold the server (and the state it has open) for ever. A server wraps each accepted
//! connection with [`Sever::wrap`]; once the grace is over ([`Sever::after`]) every read and
//! write of every wrapped connection fails, so the HTTP/2 layer drops the connections and the
//! calls on them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::Connected;

/// The switch that cuts every connection it wrapped; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Sever(CancellationToken);

impl Sever {
    /// A switch not yet thrown.
    pub fn new() -> Self {
        Self::default()
    }

    /// `io`, to be cut with the others.
    pub fn wrap<IO>(&self, io: IO) -> Severable<IO> {
        Severable {
            io,
            severed: Box::pin(self.0.clone().cancelled_owned()),
        }
    }

    /// Cuts every wrapped connection now.
    pub fn now(&self) {
        self.0.cancel();
    }

    /// Cuts every wrapped connection `grace` from now (on a spawned task; needs a tokio runtime).
    pub fn after(&self, grace: Duration) {
        let sever = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            sever.now();
        });
    }
}

/// A connection until its [`Sever`] is thrown; then every read and write fails with
/// `ConnectionAborted`.
pub struct Severable<IO> {
    io: IO,
    severed: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl<IO> std::fmt::Debug for Severable<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Severable").finish_non_exhaustive()
    }
}

impl<IO> Severable<IO> {
    /// Fails once severed; otherwise registers the task to be woken when it is.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.severed.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the coordinator shut down",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Severable<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Severable<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<IO: Connected> Connected for Severable<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_severed_connection_fails_its_pending_read_and_every_later_write() {
        let (ours, mut theirs) = tokio::io::duplex(64);
        let sever = Sever::new();
        let mut conn = sever.wrap(ours);
        theirs.write_all(b"hi").await.unwrap();
        let mut buf = [0; 2];
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        // A read waiting for bytes that never come is woken by the cut.
        let pending = tokio::spawn(async move {
            let mut buf = [0; 1];
            let read = conn.read(&mut buf).await;
            (conn, read)
        });
        sever.now();
        let (mut conn, read) = pending.await.unwrap();
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::ConnectionAborted);
        let write = conn.write_all(b"more").await;
        assert_eq!(write.unwrap_err().kind(), io::ErrorKind::ConnectionAborted);
    }
}
