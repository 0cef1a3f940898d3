//! Accepting: a TCP listener whose connections come out plain or after a TLS handshake.
//!
//! Handshakes run in their own tasks with a deadline, so a slow or silent client cannot hold
//! up the others; finished connections queue for [`Listener::accept`]. A refused handshake
//! (no client certificate, another CA, revoked, expired, a name not allowed) is logged with
//! the remote address, as etcd's "rejected connection", and the connection is closed; the
//! listener serves on. A plain HTTP/1 request on a TLS port gets Go's answer,
//! `400 Client sent an HTTP request to an HTTPS server.`

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::connector::delegate_io;

/// How long a client gets to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Accepted connections waiting for the server to take them.
const QUEUE: usize = 128;
/// Go's reply to plain HTTP on a TLS port.
const PLAIN_HTTP_REPLY: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// What makes a listener TLS.
#[derive(Clone)]
pub struct Acceptor {
    config: Arc<rustls::ServerConfig>,
    check_client_san: bool,
}

impl Acceptor {
    pub fn new(config: Arc<rustls::ServerConfig>) -> Self {
        Acceptor {
            config,
            check_client_san: false,
        }
    }

    /// Refuse client certificates whose SANs do not cover the address they connect from
    /// (etcd's check on peer listeners; see [`crate::identity::san_covers_remote`]).
    pub fn check_client_san(mut self, on: bool) -> Self {
        self.check_client_san = on;
        self
    }
}

/// A listener of either kind; what it accepts is a [`ServerStream`].
pub struct Listener {
    incoming: mpsc::Receiver<(ServerStream, SocketAddr)>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    /// Serves `tcp`, with TLS when `acceptor` is given. `what` names it in logs ("client",
    /// "peer", "metrics").
    pub fn new(
        tcp: TcpListener,
        acceptor: Option<Acceptor>,
        what: &'static str,
    ) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, incoming) = mpsc::channel(QUEUE);
        let task = tokio::spawn(accept_loop(tcp, acceptor, what, tx));
        Ok(Listener {
            incoming,
            local,
            task,
        })
    }

    pub async fn accept(&mut self) -> (ServerStream, SocketAddr) {
        match self.incoming.recv().await {
            Some(c) => c,
            // the accept loop only ends when this listener is dropped
            None => std::future::pending().await,
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: Option<Acceptor>,
    what: &'static str,
    tx: mpsc::Sender<(ServerStream, SocketAddr)>,
) {
    loop {
        let (stream, addr) = tokio::select! {
            r = tcp.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning
                    tracing::warn!(listener = what, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = tx.closed() => return,
        };
        // small replies must not wait for the client's delayed ACK (Nagle)
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(remote_addr = %addr, error = %e, "could not set TCP_NODELAY");
        }
        match &acceptor {
            None => {
                if tx.send((ServerStream::Plain(stream), addr)).await.is_err() {
                    return;
                }
            }
            Some(acceptor) => {
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        handshake(&acceptor, stream, addr),
                    )
                    .await
                    {
                        Ok(Ok(conn)) => {
                            let _ = tx.send((conn, addr)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(listener = what, remote_addr = %addr, error = %e, "rejected connection")
                        }
                        Err(_) => {
                            tracing::warn!(listener = what, remote_addr = %addr, "rejected connection: no TLS handshake within {HANDSHAKE_TIMEOUT:?}")
                        }
                    }
                });
            }
        }
    }
}

async fn handshake(
    acceptor: &Acceptor,
    mut tcp: TcpStream,
    addr: SocketAddr,
) -> Result<ServerStream, String> {
    let mut first = [0u8; 1];
    let n = tcp.peek(&mut first).await.map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("closed before the TLS handshake".into());
    }
    // a TLS connection starts with a handshake record (22); letters are plain HTTP
    if first[0].is_ascii_uppercase() {
        let _ = tcp.write_all(PLAIN_HTTP_REPLY).await;
        let _ = tcp.shutdown().await;
        return Err("plain-text request on a TLS port (the client must use https://)".into());
    }
    let tls = match tokio_rustls::TlsAcceptor::from(acceptor.config.clone())
        .accept(tcp)
        .into_fallible()
        .await
    {
        Ok(tls) => tls,
        Err((e, tcp)) => {
            linger(tcp).await;
            return Err(format!("TLS handshake failed: {e}"));
        }
    };
    let conn = ServerStream::Tls(Box::new(tls));
    if acceptor.check_client_san
        && let Some(cert) = conn.peer_certificate()
    {
        crate::identity::san_covers_remote(cert, addr.ip()).await?;
    }
    Ok(conn)
}

/// Closes a refused connection so that the client reads our alert. A TLS 1.3 client sends
/// its first request right after its certificate, before it knows it was refused; closing
/// with that request unread makes the kernel send a reset, which can overtake the alert, and
/// the client would only see "connection closed" instead of why.
async fn linger(mut tcp: TcpStream) {
    use tokio::io::AsyncReadExt;
    let _ = tcp.shutdown().await;
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut left = 256 * 1024;
        while left > 0 {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n.min(left),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// A server connection, plain or TLS.
pub enum ServerStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl ServerStream {
    /// The client's verified certificate (TLS with client certificates only).
    pub fn peer_certificate(&self) -> Option<&CertificateDer<'static>> {
        match self {
            ServerStream::Plain(_) => None,
            ServerStream::Tls(s) => s.get_ref().1.peer_certificates()?.first(),
        }
    }

    /// The common name of the client's verified certificate.
    pub fn peer_common_name(&self) -> Option<String> {
        crate::pem::common_name(self.peer_certificate()?)
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, ServerStream::Tls(_))
    }
}

delegate_io!(ServerStream);
