//! TLS for every Cairn listener and client, on rustls with ring as the one crypto provider
//! (a second provider in a binary makes rustls' default builders panic, so every config here
//! names its provider).
//!
//! # Layout
//! - [`policy`]: `--tls-min-version`, `--tls-max-version`, `--cipher-suites` (Go's names).
//! - [`pem`]: certificates, keys and CRLs from PEM files; errors name the file.
//! - [`reload`]: files re-read at every handshake, rebuilt when they change.
//! - [`identity`]: allowed common names and host names of a verified certificate.
//! - [`server`]: a listener's `ServerConfig` (client certificates, CRL, ALPN h2 + http/1.1).
//! - [`client`]: a client's `ClientConfig` (CA, client certificate, skip-verify).
//! - [`listener`]: accepting plain or TLS connections, handshakes off the accept loop.
//! - [`connector`]: dialing plain or TLS, as tonic's connector.
//! - [`selfcert`]: `--auto-tls` certificates.
//! - [`error`]: the crate's error type, [`TlsError`].
//! - `testpki` (feature `test-pki`): certificates made by tests.

pub mod client;
pub mod connector;
pub mod error;
pub mod identity;
pub mod listener;
pub mod pem;
pub mod policy;
pub mod reload;
pub mod selfcert;
pub mod server;
#[cfg(feature = "test-pki")]
pub mod testpki;

pub use client::{ClientSettings, client_config};
pub use connector::{ClientStream, Connector};
pub use error::TlsError;
pub use identity::Allowed;
pub use listener::{Acceptor, Listener, ServerStream};
pub use policy::Policy;
pub use server::{ServerSettings, server_config};
