//! Dialing: TCP, then TLS for `https://` URIs, as a tower service that tonic's
//! `Endpoint::connect_with_connector` takes. The one way every Cairn client (peers, cairnutl,
//! the mirror, the tests) opens a connection.
//!
//! tonic's own TLS features stay off in this workspace: with them on, tonic refuses `https://`
//! URIs that come through a custom connector.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Opens connections; `tls` is what `https://` URIs get.
#[derive(Clone, Default)]
pub struct Connector {
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Connector {
    /// Plain TCP only: an `https://` URI fails with an error that says TLS is not configured.
    pub fn plain() -> Self {
        Connector { tls: None }
    }

    pub fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Connector { tls }
    }

    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Connects to `uri`'s host and port, with TLS when its scheme is `https`.
    pub async fn connect(&self, uri: &Uri) -> io::Result<ClientStream> {
        let host = uri
            .host()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("{uri} has no host"))
            })?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        // small requests must not wait for the server's delayed ACK (Nagle)
        tcp.set_nodelay(true)?;
        if !https {
            return Ok(ClientStream::Plain(tcp));
        }
        let Some(config) = &self.tls else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{uri} is https:// but no TLS settings were given"),
            ));
        };
        let name = ServerName::try_from(host.clone()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{host:?} is not a valid TLS server name: {e}"),
            )
        })?;
        let tls = tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| handshake_error(&host, port, e))?;
        Ok(ClientStream::Tls(Box::new(tls)))
    }
}

/// The handshake's error with what it most likely means for the operator.
fn handshake_error(host: &str, port: u16, e: io::Error) -> io::Error {
    let text = e.to_string();
    let hint = explain(&text)
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    io::Error::new(
        e.kind(),
        format!("TLS handshake with {host}:{port} failed: {text}{hint}"),
    )
}

/// What a TLS failure seen by a client most likely means, from rustls' error text (the
/// handshake's, or an alert the server sent after it, which TLS 1.3 reports at the first
/// read).
pub fn explain(error: &str) -> Option<&'static str> {
    let hints: [(&[&str], &str); 9] = [
        (
            &["UnknownIssuer"],
            "the server's certificate is not signed by a trusted CA: pass the cluster's CA with --cacert",
        ),
        (
            &["NotValidForName"],
            "the server's certificate does not list this host name or IP address among its SANs",
        ),
        (
            &["invalid peer certificate: Expired", "certificate expired"],
            "the server's certificate has expired",
        ),
        (
            &["alert: CertificateRequired"],
            "the server requires a client certificate: pass --cert and --key",
        ),
        (
            &["alert: CertificateExpired"],
            "the server refused our client certificate: it has expired",
        ),
        (
            &["alert: CertificateRevoked"],
            "the server refused our client certificate: it is revoked",
        ),
        (
            &[
                "alert: UnknownCA",
                "alert: BadCertificate",
                "alert: CertificateUnknown",
            ],
            "the server refused our client certificate: is it signed by the server's trusted CA, and for a name it allows?",
        ),
        (
            &["alert: ProtocolVersion", "alert: HandshakeFailure"],
            "no TLS version or cipher suite in common with the server",
        ),
        (
            &["InvalidContentType", "corrupt message"],
            "the server does not seem to speak TLS on this port: try http://",
        ),
    ];
    hints
        .iter()
        .find(|(needles, _)| needles.iter().any(|n| error.contains(n)))
        .map(|(_, hint)| *hint)
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<ClientStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(&uri).await.map(TokioIo::new) })
    }
}

/// A client connection, plain or TLS.
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

macro_rules! delegate_io {
    ($ty:ident) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::Plain(s) => Pin::new(s).poll_read(cx, buf),
                    $ty::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
                }
            }
        }

        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $ty::Plain(s) => Pin::new(s).poll_write(cx, buf),
                    $ty::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
                }
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                match self.get_mut() {
                    $ty::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
                    $ty::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
                }
            }

            fn is_write_vectored(&self) -> bool {
                match self {
                    $ty::Plain(s) => s.is_write_vectored(),
                    $ty::Tls(s) => s.is_write_vectored(),
                }
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::Plain(s) => Pin::new(s).poll_flush(cx),
                    $ty::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
                }
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() {
                    $ty::Plain(s) => Pin::new(s).poll_shutdown(cx),
                    $ty::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
                }
            }
        }
    };
}

pub(crate) use delegate_io;

delegate_io!(ClientStream);
