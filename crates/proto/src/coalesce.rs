//! Messages that become ready together leave in one socket write.
//!
//! On the server a batch of writes completes at once: one raft entry answers up to a thousand
//! requests, and each answer is finished by its own task; on a client, the answers of one read
//! let many callers send their next request at once. Tokio runs a task that another one wakes
//! next, on the same thread, so the HTTP/2 connection task would run after every single
//! message and write it alone: one `writev`, one TCP segment and one receive on the other side
//! each (measured: about as many writes as replies under a 100-client put load).
//!
//! [`Coalesce`] makes a connection's first write of each burst yield once: the write returns
//! `Pending` after waking its own task, which tokio then queues behind the tasks already
//! waiting to run, so the messages finished in the meantime join the same write. The next
//! attempt goes through; a completed flush ends the burst. A lone message pays one
//! reschedule. The server wraps its client connections in it, `cairnutl bench` its channels.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::stages::{self, Stage};

/// A stream whose writes wait one turn of the scheduler before each burst.
pub struct Coalesce<S> {
    inner: S,
    /// This burst has yielded its turn; cleared by a completed flush.
    yielded: bool,
}

impl<S> Coalesce<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            yielded: false,
        }
    }

    /// The stream written to.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// `Pending` once per burst (with the task woken to come back), then ready to write.
    fn wait_turn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesce<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            stages::mark(Stage::Read);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesce<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.wait_turn(cx));
        stages::mark(Stage::Written);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.wait_turn(cx));
        stages::mark(Stage::Written);
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = ready!(Pin::new(&mut self.inner).poll_flush(cx));
        self.yielded = false;
        Poll::Ready(flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    use tokio::io::AsyncWriteExt;

    use super::*;

    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn write(s: &mut Coalesce<Vec<u8>>, cx: &mut Context<'_>, b: &[u8]) -> Poll<usize> {
        Pin::new(s).poll_write(cx, b).map(|r| r.unwrap())
    }

    #[test]
    fn first_write_of_each_burst_yields_once_and_wakes_its_task() {
        let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut s = Coalesce::new(Vec::new());

        assert_eq!(write(&mut s, &mut cx, b"ab"), Poll::Pending);
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            1,
            "the yield must wake the task"
        );
        assert!(s.inner.is_empty(), "nothing written while yielding");
        assert_eq!(write(&mut s, &mut cx, b"ab"), Poll::Ready(2));
        assert_eq!(write(&mut s, &mut cx, b"cd"), Poll::Ready(2), "same burst");
        assert!(matches!(
            Pin::new(&mut s).poll_flush(&mut cx),
            Poll::Ready(Ok(()))
        ));

        assert_eq!(write(&mut s, &mut cx, b"ef"), Poll::Pending, "a new burst");
        assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
        assert_eq!(write(&mut s, &mut cx, b"ef"), Poll::Ready(2));
        assert_eq!(s.inner, b"abcdef");
    }

    #[tokio::test]
    async fn writes_arrive_whole_through_an_async_writer() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut w = Coalesce::new(a);
        for chunk in [&b"hello "[..], b"world"] {
            w.write_all(chunk).await.unwrap();
            w.flush().await.unwrap();
        }
        drop(w);
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut b, &mut got)
            .await
            .unwrap();
        assert_eq!(got, b"hello world");
    }
}
