//! Accepting a URL as the HTTP/2 `:authority`, as etcdctl 3.4 sends it with `--cluster`.
//!
//! etcdctl's `--cluster` dials each member's advertised client URL, and its grpc-go then sends
//! that whole URL (`http://127.0.0.1:2379`) as `:authority`. Go's server accepts it; the `h2`
//! crate under hyper resets the stream with PROTOCOL_ERROR and has no option to relax that. So
//! every client connection is read through [`AuthorityStream`], which fixes the request before
//! h2 sees it:
//!
//! - After the 24-byte preface it parses frames and reassembles the first header block
//!   (HEADERS + CONTINUATION). If its `:authority` holds `://`, the connection is rewritten:
//!   every header block from then on is decoded with `loona_hpack` (so our decoder's dynamic
//!   table follows the client's encoder) and encoded again with `:authority` cut to `host:port`.
//! - The new blocks use no dynamic table: the first one starts with a table size update to 0
//!   and the encoder's own table is 0 bytes, so every field goes out as a static index or a
//!   literal and the server's decoder table can never disagree with ours.
//! - Anything else (a well-formed authority, HTTP/1.1 for `/health`, `/metrics`, `/version`)
//!   switches the connection to pass-through: bytes go unchanged and unparsed from then on.
//!
//! Only the inbound direction is touched. Malformed input closes the connection. The parsing
//! and rewriting, without I/O, is in `rewrite`; this file only feeds it what the socket reads.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use cairn_proto::coalesce::Coalesce;
use cairn_tls::{Listener, ServerStream};

mod rewrite;

use rewrite::Rewriter;

/// How much is read from the socket at a time while frames are parsed.
const READ_CHUNK: usize = 8 * 1024;

/// A client listener (plain or TLS) whose connections accept a URL as `:authority`. Replies
/// that become ready together leave in one write (`cairn_proto::coalesce`): above TLS, so in
/// one TLS record too.
pub struct AuthorityListener(Listener);

impl AuthorityListener {
    pub fn new(listener: Listener) -> Self {
        Self(listener)
    }
}

impl axum::serve::Listener for AuthorityListener {
    type Io = AuthorityStream<Coalesce<ServerStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // cairn_tls's accept loop sets TCP_NODELAY and backs off on errors such as EMFILE
        let (stream, addr) = self.0.accept().await;
        (AuthorityStream::new(Coalesce::new(stream)), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.0.local_addr())
    }
}

/// A client connection: reads go through the rewriter until it decides the connection needs
/// none; writes go straight to the socket.
pub struct AuthorityStream<S> {
    inner: S,
    state: State,
    /// Bytes produced for the server and not yet read by it, from `out_pos` on.
    out: Vec<u8>,
    out_pos: usize,
}

enum State {
    Parsing(Box<Rewriter>),
    PassThrough,
    Failed,
}

/// What the services learn about a client connection: the common name of its verified
/// client certificate (etcd's CN user under `--client-cert-auth`), as axum's `ConnectInfo`.
#[derive(Clone, Debug, Default)]
pub struct ClientCert(pub Option<String>);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, AuthorityListener>>
    for ClientCert
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, AuthorityListener>) -> Self {
        ClientCert(stream.io().inner.get_ref().peer_common_name())
    }
}

impl<S> AuthorityStream<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            state: State::Parsing(Box::default()),
            out: Vec::new(),
            out_pos: 0,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.out_pos < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.out_pos);
                buf.put_slice(&this.out[this.out_pos..this.out_pos + n]);
                this.out_pos += n;
                if this.out_pos == this.out.len() {
                    this.out = Vec::new();
                    this.out_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let rewriter = match &mut this.state {
                State::Parsing(r) => r,
                State::PassThrough => return Pin::new(&mut this.inner).poll_read(cx, buf),
                State::Failed => return Poll::Ready(Err(io::ErrorKind::InvalidData.into())),
            };
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                rewriter.end(&mut this.out);
                this.state = State::PassThrough;
                continue;
            }
            match rewriter.feed(read.filled(), &mut this.out) {
                Ok(()) if rewriter.passes_through() => this.state = State::PassThrough,
                Ok(()) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "closing a client connection");
                    this.state = State::Failed;
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityStream<S> {
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
mod tests;
