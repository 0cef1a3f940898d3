//! The client library's one error type. Messages name the endpoint or file and say what to
//! do next; a failed call keeps its gRPC status so callers can sort it.
//!
//! Every message already carries its cause's text, so no variant hands the cause out again as
//! `source()`: a binary printing the chain (`anyhow`'s `{:#}`) would print it twice.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Flags or endpoints that cannot work (checked before anything is dialed).
    #[error("{0}")]
    Config(String),
    /// A TLS file or setting (names the file).
    #[error("{0}")]
    Tls(cairn_tls::TlsError),
    /// The endpoint could not be reached, or the TLS handshake failed.
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    /// A call reached the server and failed.
    #[error("{endpoint}: {}", describe(.status))]
    Rpc {
        endpoint: String,
        status: tonic::Status,
    },
    /// No endpoint could serve (each one's reason, in order).
    #[error("{0}")]
    NoEndpoint(String),
    /// A local file could not be written or read.
    #[error("{what} {}: {error}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    /// A snapshot stream that failed or did not check out; nothing was kept.
    #[error("{0}")]
    Snapshot(String),
}

impl From<cairn_tls::TlsError> for ClientError {
    fn from(e: cairn_tls::TlsError) -> Self {
        ClientError::Tls(e)
    }
}

impl ClientError {
    pub fn rpc(endpoint: &str, status: tonic::Status) -> Self {
        ClientError::Rpc {
            endpoint: endpoint.to_string(),
            status,
        }
    }

    /// The gRPC status of a failed call.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            ClientError::Rpc { status, .. } => Some(status),
            _ => None,
        }
    }
}

/// A status as etcdctl prints it: the message alone, or the code's name when it has none. A
/// call that never reached the server (tonic's "transport error") is told by its cause and
/// what that most likely means: under TLS 1.3 a server refusing our client certificate says
/// so only at the first call, not while connecting.
pub fn describe(s: &tonic::Status) -> String {
    if s.message() == "transport error"
        && let Some(cause) = std::error::Error::source(s)
    {
        return with_hint(error_chain(cause));
    }
    if s.message().is_empty() {
        s.code().description().to_string()
    } else {
        s.message().to_string()
    }
}

/// A connection's failure with what it most likely means for the operator (from the one
/// table of TLS failures, `cairn_tls::connector::explain`), unless the text already says,
/// as `cairn_tls`'s handshake errors and [`crate::sniff`] do.
pub(crate) fn with_hint(text: String) -> String {
    match cairn_tls::connector::explain(&text) {
        Some(hint) if !text.contains(hint) && !text.contains(" (the server") => {
            format!("{text} ({hint})")
        }
        _ => text,
    }
}

/// `e` and its causes on one line (tonic's transport errors hide the reason in the chain;
/// layers often repeat their cause's text, which is dropped).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let part = c.to_string();
        if !s.ends_with(&part) && !s.contains(&part) {
            s.push_str(": ");
            s.push_str(&part);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cause is in the message once, not again as `source()`.
    #[test]
    fn causes_are_printed_once() {
        let e = ClientError::File {
            what: "cannot create",
            path: "s.db.part".into(),
            error: std::io::Error::other("disk on fire"),
        };
        assert_eq!(e.to_string(), "cannot create s.db.part: disk on fire");
        assert!(std::error::Error::source(&e).is_none());
        let tls = cairn_tls::TlsError::Config("bad".into());
        assert!(std::error::Error::source(&ClientError::from(tls)).is_none());
    }

    /// A refusal that arrives with the first call (TLS 1.3) says what to do, once.
    #[test]
    fn transport_failures_get_a_hint() {
        let refused =
            with_hint("connection error: received fatal alert: CertificateRequired".into());
        assert!(
            refused.ends_with("(the server requires a client certificate: pass --cert and --key)"),
            "{refused}"
        );
        assert_eq!(with_hint(refused.clone()), refused);
        assert_eq!(with_hint("Connection refused".into()), "Connection refused");
        assert_eq!(
            describe(&tonic::Status::unavailable("etcdserver: no leader")),
            "etcdserver: no leader"
        );
        assert_eq!(
            describe(&tonic::Status::unavailable("")),
            "The service is currently unavailable"
        );
    }
}
