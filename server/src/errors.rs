//! The one table from internal errors to gRPC status: etcd's code and exact message
//! (etcd's `api/v3rpc/rpctypes/error.go`), because clients match on both.

use cairn_consensus::{ConsensusError, MembershipError};
use cairn_storage::StoreError;
use tonic::{Code, Status};

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no leader")]
    NoLeader,
    #[error("request is too large")]
    RequestTooLarge,
    #[error("request timed out")]
    Timeout,
    #[error("server stopped: {0}")]
    Stopped(String),
    #[error("watcher range is empty")]
    EmptyWatcherRange,
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("bad leader transferee")]
    BadLeaderTransferee,
    /// MoveLeader sent to a member that does not lead.
    #[error("not leader")]
    NotLeader,
    /// A membership change refused (etcd's member errors).
    #[error(transparent)]
    Membership(MembershipError),
    /// etcd's `v3election.ErrNoLeader`.
    #[error("election: no leader")]
    ElectionNoLeader,
    /// etcd's `concurrency.ErrElectionNotLeader`.
    #[error("election: not leader")]
    ElectionNotLeader,
    /// etcd's `v3election.ErrMissingLeaderKey`.
    #[error("\"leader\" field must be provided")]
    MissingLeaderKey,
    /// etcd's `concurrency.ErrSessionExpired`.
    #[error("mutex: session is expired")]
    SessionExpired,
    /// The watch a lock or election waiter relied on ended.
    #[error("lost watcher waiting for delete")]
    LostWatcher,
    /// An error as etcd's Lock and Election services relay it: they run over an embedded
    /// client whose errors carry no gRPC status, so every error reaches the caller with code
    /// Unknown and the underlying message (checked against etcd 3.4).
    #[error("{0}")]
    Relayed(Box<ApiError>),
    /// An auth check as etcd 3.4's Maintenance service makes it for Snapshot, Defragment,
    /// Hash and HashKV: the auth store's error returned as is, so code Unknown and the
    /// store's own text (`auth: permission denied`, `auth: user name is empty`).
    #[error("auth: {}", auth_store_text(*.0))]
    AuthStore(cairn_storage::AuthError),
}

/// The text of etcd's auth store errors (`auth/store.go`), where it differs from the
/// `rpctypes` one the gRPC services convert it to.
fn auth_store_text(a: cairn_storage::AuthError) -> String {
    match a {
        cairn_storage::AuthError::AuthOldRevision => "revision in header is old".to_string(),
        a => a.to_string(),
    }
}

impl From<cairn_storage::AuthError> for ApiError {
    fn from(e: cairn_storage::AuthError) -> Self {
        ApiError::Store(StoreError::Auth(e))
    }
}

impl From<ConsensusError> for ApiError {
    fn from(e: ConsensusError) -> Self {
        match e {
            ConsensusError::Command(s) => ApiError::Store(s),
            ConsensusError::NoLeader => ApiError::NoLeader,
            ConsensusError::NotLeader => ApiError::NotLeader,
            ConsensusError::Membership(MembershipError::BadLeaderTransferee) => {
                ApiError::BadLeaderTransferee
            }
            ConsensusError::Membership(m) => ApiError::Membership(m),
            ConsensusError::LeaderUnreachable(detail) => {
                tracing::warn!(error = %detail, "request to the leader failed");
                ApiError::Timeout
            }
            other => ApiError::Stopped(other.to_string()),
        }
    }
}

/// etcd's gRPC code of each auth error (`rpctypes/error.go`).
fn auth_code(a: cairn_storage::AuthError) -> Code {
    use cairn_storage::AuthError as A;
    match a {
        A::RootUserNotExist
        | A::RootRoleNotExist
        | A::UserAlreadyExist
        | A::UserNotFound
        | A::RoleAlreadyExist
        | A::RoleNotFound
        | A::RoleNotGranted
        | A::PermissionNotGranted
        | A::AuthNotEnabled => Code::FailedPrecondition,
        A::UserEmpty
        | A::RoleEmpty
        | A::AuthFailed
        | A::PermissionNotGiven
        | A::InvalidAuthMgmt
        | A::AuthOldRevision => Code::InvalidArgument,
        A::PermissionDenied => Code::PermissionDenied,
        A::InvalidAuthToken => Code::Unauthenticated,
        A::NoPasswordUser => Code::Unknown,
    }
}

/// The code and message a client sees for an error.
pub fn code_and_message(e: &ApiError) -> (Code, String) {
    use StoreError as S;
    let fixed = |code, msg: &str| (code, msg.to_string());
    match e {
        ApiError::Store(s) => match s {
            S::Compacted => fixed(
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            S::FutureRevision => fixed(
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            S::LeaseNotFound => fixed(Code::NotFound, "etcdserver: requested lease not found"),
            S::LeaseExists => fixed(Code::FailedPrecondition, "etcdserver: lease already exists"),
            S::LeaseTtlTooLarge => fixed(Code::OutOfRange, "etcdserver: too large lease TTL"),
            S::KeyNotFound => fixed(Code::InvalidArgument, "etcdserver: key not found"),
            S::EmptyKey => fixed(Code::InvalidArgument, "etcdserver: key is not provided"),
            S::ValueProvided => fixed(Code::InvalidArgument, "etcdserver: value is provided"),
            S::LeaseProvided => fixed(Code::InvalidArgument, "etcdserver: lease is provided"),
            S::TooManyOps => fixed(
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            S::DuplicateKey => fixed(
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            S::InvalidSortOption => fixed(Code::InvalidArgument, "etcdserver: invalid sort option"),
            S::NoSpace => fixed(
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
            S::ClusterCorrupt => fixed(Code::DataLoss, "etcdserver: corrupt cluster"),
            // etcd has no rpctypes error for this one: it reaches clients as the store's
            S::Auth(a @ cairn_storage::AuthError::NoPasswordUser) => {
                (Code::Unknown, ApiError::AuthStore(*a).to_string())
            }
            S::Auth(a) => (auth_code(*a), format!("etcdserver: {a}")),
            S::Backend { .. } | S::Corrupt(_) => {
                (Code::Internal, format!("cairn: storage failure: {s}"))
            }
        },
        ApiError::NoLeader => fixed(Code::Unavailable, "etcdserver: no leader"),
        ApiError::RequestTooLarge => {
            fixed(Code::InvalidArgument, "etcdserver: request is too large")
        }
        ApiError::Timeout => fixed(Code::Unavailable, "etcdserver: request timed out"),
        ApiError::Stopped(_) => fixed(Code::Unavailable, "etcdserver: server stopped"),
        ApiError::EmptyWatcherRange => fixed(Code::InvalidArgument, "mvcc: watcher range is empty"),
        ApiError::Unsupported(what) => (Code::Unimplemented, format!("cairn: {what}")),
        ApiError::BadLeaderTransferee => fixed(
            Code::FailedPrecondition,
            "etcdserver: bad leader transferee",
        ),
        ApiError::NotLeader => fixed(Code::FailedPrecondition, "etcdserver: not leader"),
        ApiError::Membership(m) => {
            use MembershipError as M;
            match m {
                M::MemberNotFound => fixed(Code::NotFound, "etcdserver: member not found"),
                M::PeerUrlExists => fixed(
                    Code::FailedPrecondition,
                    "etcdserver: Peer URLs already exists",
                ),
                M::MemberIdExists => fixed(
                    Code::FailedPrecondition,
                    "etcdserver: member ID already exist",
                ),
                M::BadUrls => fixed(
                    Code::InvalidArgument,
                    "etcdserver: given member URLs are invalid",
                ),
                M::NotLearner => fixed(
                    Code::FailedPrecondition,
                    "etcdserver: can only promote a learner member",
                ),
                M::LearnerNotReady => fixed(
                    Code::FailedPrecondition,
                    "etcdserver: can only promote a learner member which is in sync with leader",
                ),
                M::TooManyLearners => fixed(
                    Code::FailedPrecondition,
                    "etcdserver: too many learner members in cluster",
                ),
                M::NotEnoughStarted => fixed(
                    Code::FailedPrecondition,
                    "etcdserver: re-configuration failed due to not enough started members",
                ),
                M::BadLeaderTransferee => fixed(
                    Code::FailedPrecondition,
                    "etcdserver: bad leader transferee",
                ),
            }
        }
        ApiError::ElectionNoLeader => fixed(Code::Unknown, "election: no leader"),
        ApiError::ElectionNotLeader => fixed(Code::Unknown, "election: not leader"),
        ApiError::MissingLeaderKey => fixed(Code::Unknown, "\"leader\" field must be provided"),
        ApiError::SessionExpired => fixed(Code::Unknown, "mutex: session is expired"),
        ApiError::LostWatcher => fixed(Code::Unknown, "lost watcher waiting for delete"),
        ApiError::Relayed(inner) => (Code::Unknown, code_and_message(inner).1),
        ApiError::AuthStore(_) => (Code::Unknown, e.to_string()),
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        if let ApiError::Stopped(detail)
        | ApiError::Store(StoreError::Backend {
            message: detail, ..
        }) = &e
        {
            tracing::error!(error = %detail, "request failed");
        }
        let (code, msg) = code_and_message(&e);
        Status::new(code, msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry, against the code and message etcd's rpctypes gives.
    #[test]
    fn table_matches_etcd() {
        let cases: Vec<(ApiError, Code, &str)> = vec![
            (
                StoreError::Compacted.into(),
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                StoreError::FutureRevision.into(),
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                StoreError::LeaseNotFound.into(),
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                StoreError::LeaseExists.into(),
                Code::FailedPrecondition,
                "etcdserver: lease already exists",
            ),
            (
                StoreError::LeaseTtlTooLarge.into(),
                Code::OutOfRange,
                "etcdserver: too large lease TTL",
            ),
            (
                StoreError::KeyNotFound.into(),
                Code::InvalidArgument,
                "etcdserver: key not found",
            ),
            (
                StoreError::EmptyKey.into(),
                Code::InvalidArgument,
                "etcdserver: key is not provided",
            ),
            (
                StoreError::ValueProvided.into(),
                Code::InvalidArgument,
                "etcdserver: value is provided",
            ),
            (
                StoreError::LeaseProvided.into(),
                Code::InvalidArgument,
                "etcdserver: lease is provided",
            ),
            (
                StoreError::TooManyOps.into(),
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            (
                StoreError::DuplicateKey.into(),
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            (
                StoreError::InvalidSortOption.into(),
                Code::InvalidArgument,
                "etcdserver: invalid sort option",
            ),
            (
                StoreError::NoSpace.into(),
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
            (
                StoreError::ClusterCorrupt.into(),
                Code::DataLoss,
                "etcdserver: corrupt cluster",
            ),
            (
                ApiError::NoLeader,
                Code::Unavailable,
                "etcdserver: no leader",
            ),
            (
                ApiError::RequestTooLarge,
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
            (
                ApiError::Timeout,
                Code::Unavailable,
                "etcdserver: request timed out",
            ),
            (
                ApiError::Stopped("x".into()),
                Code::Unavailable,
                "etcdserver: server stopped",
            ),
            (
                ApiError::BadLeaderTransferee,
                Code::FailedPrecondition,
                "etcdserver: bad leader transferee",
            ),
            (
                ApiError::EmptyWatcherRange,
                Code::InvalidArgument,
                "mvcc: watcher range is empty",
            ),
            (
                ApiError::ElectionNoLeader,
                Code::Unknown,
                "election: no leader",
            ),
            (
                ApiError::ElectionNotLeader,
                Code::Unknown,
                "election: not leader",
            ),
            (
                ApiError::MissingLeaderKey,
                Code::Unknown,
                "\"leader\" field must be provided",
            ),
            (
                ApiError::SessionExpired,
                Code::Unknown,
                "mutex: session is expired",
            ),
            (
                ApiError::LostWatcher,
                Code::Unknown,
                "lost watcher waiting for delete",
            ),
            (
                ApiError::Relayed(Box::new(StoreError::LeaseNotFound.into())),
                Code::Unknown,
                "etcdserver: requested lease not found",
            ),
            (
                ApiError::AuthStore(cairn_storage::AuthError::PermissionDenied),
                Code::Unknown,
                "auth: permission denied",
            ),
            (
                ApiError::AuthStore(cairn_storage::AuthError::AuthOldRevision),
                Code::Unknown,
                "auth: revision in header is old",
            ),
            (
                cairn_storage::AuthError::NoPasswordUser.into(),
                Code::Unknown,
                "auth: authentication failed, password was given for no password user",
            ),
        ];
        for (err, code, msg) in cases {
            let status = Status::from(err);
            assert_eq!((status.code(), status.message()), (code, msg));
        }
        let s = Status::from(ApiError::from(StoreError::Corrupt("row 5".into())));
        assert_eq!(s.code(), Code::Internal);
        assert!(s.message().contains("row 5"));
        let s = Status::from(ApiError::Unsupported("authentication is not supported yet"));
        assert_eq!(
            (s.code(), s.message()),
            (
                Code::Unimplemented,
                "cairn: authentication is not supported yet"
            )
        );
        assert_eq!(
            Status::from(ApiError::from(ConsensusError::NoLeader)).message(),
            "etcdserver: no leader"
        );
        let refused = ConsensusError::Command(StoreError::LeaseNotFound);
        assert_eq!(Status::from(ApiError::from(refused)).code(), Code::NotFound);
    }
}
