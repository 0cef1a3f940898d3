//! The client library's one error type. Messages name the endpoint or file and say what to
//! do next; a failed call keeps its gRPC status so callers can sort it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Flags or endpoints that cannot work (checked before anything is dialed).
    #[error("{0}")]
    Config(String),
    /// A TLS file or setting (names the file).
    #[error(transparent)]
    Tls(#[from] cairn_tls::TlsError),
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
    #[error("{what} {}: {source}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A snapshot stream that failed or did not check out; nothing was kept.
    #[error("{0}")]
    Snapshot(String),
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

/// A status as etcdctl prints it: the message alone, or the code's name when it has none.
pub fn describe(s: &tonic::Status) -> String {
    if s.message().is_empty() {
        s.code().description().to_string()
    } else {
        s.message().to_string()
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
