//! Telling a client why the server will not talk to it.
//!
//! Connecting does not wait for the server's first answer, so two refusals are noticed only
//! by the first call, and by then hyper has often lost the reason ("operation was canceled",
//! "http2 error" or "broken pipe", depending on who closed first):
//! - over `http://`, a server that speaks TLS on the port;
//! - over TLS 1.3, a server that refuses our client certificate: it checks it after the
//!   handshake and says so in its first record (an alert).
//!
//! [`FirstAnswer`] watches a connection until the server's first bytes: a TLS record or an
//! HTTP/1.x answer on a plain connection (Go's and Cairn's "Client sent an HTTP request to
//! an HTTPS server"), a close before any answer, or a TLS alert, fail the connection and
//! leave the reason in the channel's [`Verdict`]; [`Explain`] answers the channel's failed
//! calls with it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::with_hint;

/// What a plain connection to a TLS port most likely means, and what to do.
pub const TLS_PORT_HINT: &str =
    "the server may be serving TLS on this port: use https:// or pass --cacert";

/// Why a channel's last connection was refused, if it was; shared by the channel's
/// connections (tonic reconnects) and its calls.
#[derive(Clone, Default)]
pub struct Verdict(Arc<Mutex<Option<String>>>);

impl Verdict {
    pub fn get(&self) -> Option<String> {
        // a std mutex: held only to copy or store the text, never across an await
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, why: Option<String>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }
}

/// A stream whose first answer, when it is a refusal, fails it with the reason.
pub struct FirstAnswer<S> {
    inner: S,
    /// Not TLS: the first bytes must be HTTP/2.
    plain: bool,
    /// Still waiting for the server's first bytes.
    waiting: bool,
    verdict: Verdict,
}

impl<S> FirstAnswer<S> {
    pub fn new(inner: S, plain: bool, verdict: Verdict) -> Self {
        FirstAnswer {
            inner,
            plain,
            waiting: true,
            verdict,
        }
    }

    /// Fails the connection with `what`, and tells the channel's calls.
    fn refuse(&self, what: &str) -> io::Error {
        let e = refused(what);
        self.verdict.set(Some(e.to_string()));
        e
    }

    /// A write or read failing before the server said anything: a plain connection hung up
    /// on our preface, or a TLS one got an alert (its text gets the hint).
    fn hung_up(&self, e: io::Error) -> io::Error {
        let closed = matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        );
        if self.plain && closed {
            return self.refuse("closed the connection without an HTTP/2 answer");
        }
        if closed {
            // TLS 1.3: a server refusing our certificate sends an alert and hangs up, and our
            // next write may fail before the alert is read
            let why = format!(
                "the server closed the connection right after the TLS handshake ({e}; it most \
                 likely refused our client certificate or wants one: pass --cert and --key \
                 signed by its CA)"
            );
            self.verdict.set(Some(why.clone()));
            return io::Error::new(e.kind(), why);
        }
        let text = e.to_string();
        let hinted = with_hint(text.clone());
        if self.plain || hinted == text {
            return e;
        }
        self.verdict
            .set(Some(format!("the server refused the connection: {hinted}")));
        io::Error::new(e.kind(), hinted)
    }

    /// A write's result, its failure explained while no answer has come.
    fn written(&self, r: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match r {
            Poll::Ready(Err(e)) if self.waiting => Poll::Ready(Err(self.hung_up(e))),
            r => r,
        }
    }
}

/// What the server's first bytes say, when they rule out HTTP/2 (whose first frame is
/// SETTINGS, starting with a 3-byte length).
fn not_http2(first: &[u8]) -> Option<&'static str> {
    match first {
        [0x14..=0x17, 0x03, ..] => Some("answered in TLS, not HTTP/2"),
        [b'H', b'T', b'T', b'P', ..] => Some("answered in HTTP/1.x, not HTTP/2"),
        _ => None,
    }
}

fn refused(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the server {what} ({TLS_PORT_HINT})"),
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstAnswer<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.waiting {
            return r;
        }
        match r {
            Poll::Ready(Ok(())) => {
                let got = &buf.filled()[before..];
                if self.plain && got.is_empty() {
                    return Poll::Ready(Err(
                        self.refuse("closed the connection without an HTTP/2 answer")
                    ));
                }
                if let Some(what) = not_http2(got).filter(|_| self.plain) {
                    return Poll::Ready(Err(self.refuse(what)));
                }
                self.waiting = false;
                self.verdict.set(None);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.hung_up(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstAnswer<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.written(r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.written(r)
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

/// A channel whose failed calls say why the server refused the connection, when
/// [`FirstAnswer`] found out: hyper often reports only "operation was canceled".
#[derive(Clone)]
pub struct Explain<S> {
    inner: S,
    verdict: Verdict,
}

impl<S> Explain<S> {
    pub fn new(inner: S, verdict: Verdict) -> Self {
        Explain { inner, verdict }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn explained(verdict: &Verdict, e: impl Into<BoxError>) -> BoxError {
    match verdict.get() {
        Some(why) => Box::new(io::Error::new(io::ErrorKind::InvalidData, why)),
        None => e.into(),
    }
}

impl<S, Req> tower_service::Service<Req> for Explain<S>
where
    S: tower_service::Service<Req>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let verdict = &self.verdict;
        self.inner.poll_ready(cx).map_err(|e| explained(verdict, e))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let call = self.inner.call(req);
        let verdict = self.verdict.clone();
        Box::pin(async move { call.await.map_err(|e| explained(&verdict, e)) })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn first_read(answer: &[u8], plain: bool) -> io::Result<Vec<u8>> {
        let (client, mut server) = tokio::io::duplex(1024);
        server.write_all(answer).await?;
        drop(server);
        let mut s = FirstAnswer::new(client, plain, Verdict::default());
        let mut got = vec![0; 64];
        let n = s.read(&mut got).await?;
        got.truncate(n);
        Ok(got)
    }

    #[tokio::test]
    async fn a_tls_or_http1_answer_is_named() {
        let alert = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46];
        let e = first_read(&alert, true).await.unwrap_err().to_string();
        assert!(
            e.contains("answered in TLS") && e.contains(TLS_PORT_HINT),
            "{e}"
        );
        let go =
            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
        let e = first_read(go, true).await.unwrap_err().to_string();
        assert!(e.contains("HTTP/1.x"), "{e}");
        let e = first_read(b"", true).await.unwrap_err().to_string();
        assert!(e.contains("closed the connection"), "{e}");
    }

    /// The channel's calls learn the reason, and forget it once a connection answers.
    #[tokio::test]
    async fn the_verdict_is_kept_for_the_calls() {
        let (client, mut server) = tokio::io::duplex(1024);
        server
            .write_all(b"HTTP/1.1 400 Bad Request\r\n")
            .await
            .unwrap();
        let verdict = Verdict::default();
        let mut s = FirstAnswer::new(client, true, verdict.clone());
        assert!(s.read(&mut [0; 64]).await.is_err());
        assert!(verdict.get().is_some_and(|v| v.contains(TLS_PORT_HINT)));
        let e = explained(&verdict, io::Error::other("operation was canceled"));
        assert!(e.to_string().contains("answered in HTTP/1.x"), "{e}");
        let (client, mut server) = tokio::io::duplex(1024);
        server
            .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
            .await
            .unwrap();
        let mut s = FirstAnswer::new(client, true, verdict.clone());
        assert_eq!(s.read(&mut [0; 64]).await.unwrap(), 9);
        assert!(verdict.get().is_none());
    }

    #[tokio::test]
    async fn http2_and_tls_connections_pass_untouched() {
        let settings = [0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00];
        assert_eq!(first_read(&settings, true).await.unwrap(), settings);
        let alert = [0x15, 0x03, 0x03];
        assert_eq!(first_read(&alert, false).await.unwrap(), alert);
    }

    /// A TLS stream reading an alert (as rustls reports it) gets the hint, and so do the calls.
    #[test]
    fn a_tls_alert_is_explained() {
        let verdict = Verdict::default();
        let s = FirstAnswer::new((), false, verdict.clone());
        let alert = io::Error::new(
            io::ErrorKind::InvalidData,
            "received fatal alert: CertificateRequired",
        );
        let e = s.hung_up(alert).to_string();
        assert!(e.contains("pass --cert and --key"), "{e}");
        assert!(
            verdict
                .get()
                .is_some_and(|v| v.starts_with("the server refused the connection"))
        );
        let closed = s
            .hung_up(io::Error::from(io::ErrorKind::BrokenPipe))
            .to_string();
        assert!(closed.contains("right after the TLS handshake"), "{closed}");
        let other = s.hung_up(io::Error::other("timed out"));
        assert_eq!(other.to_string(), "timed out");
    }
}
