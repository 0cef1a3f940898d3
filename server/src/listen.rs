//! Listening: every listen URL becomes a `cairn_tls::Listener` (plain, or TLS with the
//! acceptor of its kind), served by axum. Client listeners also go through
//! [`crate::authority`]; peer and metrics listeners are served as they come.

use std::io;
use std::net::SocketAddr;

use anyhow::Context as _;
use cairn_tls::{Acceptor, Listener, ServerStream};
use tokio::net::TcpListener;

use crate::config::Listen;

/// Binds every URL of one kind; `what` names the kind in the error ("client", "peers").
pub async fn bind(urls: &[Listen], what: &str) -> anyhow::Result<Vec<(TcpListener, bool)>> {
    let mut out = Vec::new();
    for l in urls {
        let tcp = TcpListener::bind(l.addr).await.with_context(|| {
            format!(
                "cannot listen for {what} on {} (is another server using it?)",
                l.addr
            )
        })?;
        out.push((tcp, l.tls));
    }
    Ok(out)
}

/// `tcp` as a listener of connections, with TLS when `tls` (validated: the acceptor exists).
pub fn accept(
    tcp: TcpListener,
    tls: bool,
    acceptor: &Option<Acceptor>,
    what: &'static str,
) -> anyhow::Result<Listener> {
    let acceptor = match (tls, acceptor) {
        (false, _) => None,
        (true, Some(a)) => Some(a.clone()),
        (true, None) => anyhow::bail!("an https:// {what} URL without TLS settings"),
    };
    Ok(Listener::new(tcp, acceptor, what)?)
}

/// A listener as axum serves it: connections as they come (peer and metrics listeners).
pub struct Plain(pub Listener);

impl axum::serve::Listener for Plain {
    type Io = ServerStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.0.accept().await
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.0.local_addr())
    }
}
