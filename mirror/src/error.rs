//! The mirror's one error type. Transient errors (network, leader changes, timeouts) are
//! retried by the engine with backoff; the rest end the mirror with one clear message.

use std::fmt;

/// Which cluster an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Source,
    Destination,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A gRPC call failed; `status` says whether it is worth retrying.
    #[error("{side} {endpoint}: {}{}", describe(.status), permission_hint(*.side, .status))]
    Rpc {
        side: Side,
        endpoint: String,
        status: tonic::Status,
    },
    /// No endpoint of one side could be reached.
    #[error("cannot connect to any {side} endpoint ({endpoints}): {reason}")]
    Connect {
        side: Side,
        endpoints: String,
        reason: String,
    },
    /// A TLS or credentials file could not be used.
    #[error("{0}")]
    Config(String),
    /// The source answered that the revision we need is compacted.
    #[error("source revision {wanted} is compacted (source compacted through {compacted})")]
    Compacted { wanted: i64, compacted: i64 },
    /// Something forces a full copy: a destination lease lost while the mirror was down, or
    /// the source moved behind the checkpoint (restored from a backup).
    #[error("{0}")]
    NeedResync(String),
    /// The source watch went silent, was canceled, or the stream ended.
    #[error("source watch: {0}")]
    WatchBroken(String),
    /// Our claim on the destination prefix lapsed (lease expired); re-acquire and reload.
    #[error("the mirror's claim on the destination lapsed (owner key {owner_key}); re-acquiring")]
    FenceLost { owner_key: String },
    /// Another mirror holds the destination prefix.
    #[error(
        "another make-mirror ({owner}) is writing to this destination prefix (owner key {owner_key}; \
         {why}); stop it first, or give this one another --dest-prefix"
    )]
    Fenced {
        owner: String,
        owner_key: String,
        why: String,
    },
    /// The destination's checkpoint belongs to another source or prefix.
    #[error("{0}")]
    CheckpointMismatch(String),
    /// The destination holds a checkpoint this version cannot read.
    #[error("checkpoint {key}: {reason}")]
    BadCheckpoint { key: String, reason: String },
}

fn describe(s: &tonic::Status) -> String {
    if s.message().is_empty() {
        format!("{:?}", s.code())
    } else {
        s.message().to_string()
    }
}

/// What each side's user must be allowed, after a permission refusal.
fn permission_hint(side: Side, s: &tonic::Status) -> &'static str {
    match (s.code(), side) {
        (tonic::Code::PermissionDenied, Side::Source) => {
            " (the source user needs READ on the mirrored prefix)"
        }
        (tonic::Code::PermissionDenied, Side::Destination) => {
            " (the destination user needs WRITE on the destination prefix and READWRITE on \
             the prefix __cairn_mirror__/, where mirrors keep their checkpoint and claim)"
        }
        _ => "",
    }
}

impl Error {
    pub fn rpc(side: Side, endpoint: &str, status: tonic::Status) -> Self {
        let compacted = status.code() == tonic::Code::OutOfRange
            && status
                .message()
                .contains("required revision has been compacted");
        if side == Side::Source && compacted {
            return Error::Compacted {
                wanted: 0,
                compacted: 0,
            };
        }
        Error::Rpc {
            side,
            endpoint: endpoint.to_string(),
            status,
        }
    }

    /// True for a refusal by `side`'s permission check.
    pub fn is_permission_denied(&self, side: Side) -> bool {
        matches!(self, Error::Rpc { side: s, status, .. }
            if *s == side && status.code() == tonic::Code::PermissionDenied)
    }

    /// True when retrying (after reconnecting, with backoff) may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Rpc { status, .. } => transient_status(status),
            Error::Connect { .. }
            | Error::Compacted { .. }
            | Error::NeedResync(_)
            | Error::WatchBroken(_)
            | Error::FenceLost { .. } => true,
            Error::Config(_)
            | Error::Fenced { .. }
            | Error::CheckpointMismatch(_)
            | Error::BadCheckpoint { .. } => false,
        }
    }
}

/// Codes a healthy cluster can return while a member restarts, loses its leader, runs out
/// of space for a moment, or a connection drops; everything else is a mistake to report.
fn transient_status(s: &tonic::Status) -> bool {
    use tonic::Code::*;
    match s.code() {
        Unavailable | DeadlineExceeded | Aborted | Cancelled | ResourceExhausted | Internal
        | Unknown => true,
        // An expired simple token: reconnecting authenticates again.
        Unauthenticated => s.message().contains("invalid auth token"),
        // "future revision": a member behind the one we read from; another read catches up.
        OutOfRange => s.message().contains("future revision"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let e = |code, msg: &str| Error::rpc(Side::Destination, "x", tonic::Status::new(code, msg));
        assert!(e(tonic::Code::Unavailable, "etcdserver: no leader").is_transient());
        assert!(
            e(
                tonic::Code::Unauthenticated,
                "etcdserver: invalid auth token"
            )
            .is_transient()
        );
        assert!(
            !e(
                tonic::Code::PermissionDenied,
                "etcdserver: permission denied"
            )
            .is_transient()
        );
        assert!(
            !e(
                tonic::Code::InvalidArgument,
                "etcdserver: too many operations"
            )
            .is_transient()
        );
        let c = Error::rpc(
            Side::Source,
            "x",
            tonic::Status::out_of_range("etcdserver: mvcc: required revision has been compacted"),
        );
        assert!(matches!(c, Error::Compacted { .. }));
    }
}
