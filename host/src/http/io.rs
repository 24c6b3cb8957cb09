//! A connection's socket as the guard sees it: it holds the connection's place in its pool for
//! as long as the socket is open (also after a WebSocket upgrade), reads mark the start of a
//! request's head on a kept-alive connection, and a write that cannot progress for the send
//! timeout (a client that does not read its response or its event stream) fails, which ends
//! the connection. TLS runs on top of it.

use super::guard::{Conn, Reason, Ticket};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A socket with the guard's bookkeeping.
pub(crate) struct GuardedIo<S> {
    inner: S,
    conn: Arc<Conn>,
    send_timeout: Duration,
    /// Running while a write waits for the client.
    stall: Option<Pin<Box<Sleep>>>,
    /// The place in the pool, given up when the socket is dropped.
    _ticket: Option<Ticket>,
}

impl<S> GuardedIo<S> {
    pub(crate) fn new(inner: S, ticket: Ticket, send_timeout: Duration) -> Self {
        Self {
            inner,
            conn: Arc::clone(&ticket.conn),
            send_timeout,
            stall: None,
            _ticket: Some(ticket),
        }
    }

    /// Without a pool (tests of the timing alone).
    #[cfg(test)]
    fn unpooled(inner: S, conn: Arc<Conn>, send_timeout: Duration) -> Self {
        Self {
            inner,
            conn,
            send_timeout,
            stall: None,
            _ticket: None,
        }
    }

    /// A write is pending: fails it once it has waited the send timeout.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.send_timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.conn.note(Reason::SendTimeout);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client did not read what was sent to it in time",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<T>(
        &mut self,
        result: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Pending => self.stalled(cx),
            ready => {
                self.stall = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.conn.read_some();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progressed(result, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progressed(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.progressed(result, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progressed(result, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_client_that_does_not_read_fails_the_write_after_the_send_timeout() {
        let (server, _client) = tokio::io::duplex(1024);
        let conn = Arc::new(Conn::new());
        let mut io = GuardedIo::unpooled(server, Arc::clone(&conn), Duration::from_millis(200));
        let started = std::time::Instant::now();
        let error = io
            .write_all(&vec![b'x'; 64 * 1024])
            .await
            .expect_err("nobody reads");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(conn.reason(), Some(Reason::SendTimeout));
    }

    #[tokio::test]
    async fn a_slow_but_reading_client_is_no_stall() {
        let (server, mut client) = tokio::io::duplex(1024);
        let conn = Arc::new(Conn::new());
        let mut io = GuardedIo::unpooled(server, Arc::clone(&conn), Duration::from_millis(300));
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 512];
            let mut total = 0;
            while total < 8 * 1024 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                total += client.read(&mut buf).await.expect("read");
            }
        });
        io.write_all(&vec![b'x'; 8 * 1024])
            .await
            .expect("progress resets the timer");
        reader.await.expect("reader");
        assert_eq!(conn.reason(), None);
    }
}
