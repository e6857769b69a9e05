//! A connection that holds a slot of the connection bound for as long as it is open, and must
//! send the HTTP/2 connection preface within [`PREFACE_TIMEOUT`]. HTTP/2 keepalive finds dead peers
//! only once the handshake is done; before it, a client that connects and sends nothing (or a few
//! bytes) would hold its slot forever, and enough of them would lock the driver out.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;
use tonic::transport::server::Connected;

/// How long a new connection has to send the connection preface. Real clients send it with
/// their first write, right after connecting.
pub const PREFACE_TIMEOUT: Duration = Duration::from_secs(10);
/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` (RFC 9113 §3.4).
const PREFACE_LEN: usize = 24;

/// `inner`, plus the permit released when the connection is dropped.
pub struct Limited<T> {
    inner: T,
    _permit: OwnedSemaphorePermit,
    /// Until the preface is in: when it must be, and how many bytes have come.
    preface: Option<(Pin<Box<Sleep>>, usize)>,
}

impl<T> Limited<T> {
    /// Ties `permit` to `inner`'s lifetime.
    pub fn new(inner: T, permit: OwnedSemaphorePermit) -> Self {
        Self {
            inner,
            _permit: permit,
            preface: Some((Box::pin(tokio::time::sleep(PREFACE_TIMEOUT)), 0)),
        }
    }
}

impl<T: Connected> Connected for Limited<T> {
    type ConnectInfo = T::ConnectInfo;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Limited<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let Some((deadline, seen)) = &mut this.preface else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                *seen += buf.filled().len() - before;
                if *seen >= PREFACE_LEN {
                    this.preface = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    tracing::warn!(
                        timeout = ?PREFACE_TIMEOUT,
                        "closing a connection on the provider socket that sent no HTTP/2 preface"
                    );
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no HTTP/2 connection preface within the timeout",
                    )))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Limited<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::Semaphore;

    use super::*;

    fn limited(
        stream: tokio::io::DuplexStream,
        slots: &Arc<Semaphore>,
    ) -> Limited<tokio::io::DuplexStream> {
        let permit = slots.clone().try_acquire_owned().unwrap();
        Limited::new(stream, permit)
    }

    /// Regression: a client that connected and sent nothing held a connection slot forever.
    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_and_frees_its_slot() {
        let slots = Arc::new(Semaphore::new(1));
        let (_client, server) = tokio::io::duplex(64);
        let mut conn = limited(server, &slots);
        let mut buf = [0u8; 8];
        let err = conn.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(conn);
        assert_eq!(slots.available_permits(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_few_bytes_do_not_hold_the_connection_open() {
        let slots = Arc::new(Semaphore::new(1));
        let (mut client, server) = tokio::io::duplex(64);
        let mut conn = limited(server, &slots);
        client.write_all(b"PRI * HTTP/2.0").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(conn.read(&mut buf).await.unwrap(), 14);
        let err = conn.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_preface_a_quiet_connection_is_left_to_keepalive() {
        let slots = Arc::new(Semaphore::new(1));
        let (mut client, server) = tokio::io::duplex(64);
        let mut conn = limited(server, &slots);
        client
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(conn.read(&mut buf).await.unwrap(), PREFACE_LEN);
        // Long past the preface timeout, the connection still waits for data.
        let quiet = tokio::time::timeout(PREFACE_TIMEOUT * 3, conn.read(&mut buf)).await;
        assert!(quiet.is_err(), "still open: {quiet:?}");
        client.write_all(b"x").await.unwrap();
        assert_eq!(conn.read(&mut buf).await.unwrap(), 1);
    }
}
