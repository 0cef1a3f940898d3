//! The storage crate's one error type.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    #[error("requested lease not found")]
    LeaseNotFound,
    #[error("lease already exists")]
    LeaseExists,
    #[error("key not found")]
    KeyNotFound,
    #[error("key is not provided")]
    EmptyKey,
    #[error("value is provided")]
    ValueProvided,
    #[error("lease is provided")]
    LeaseProvided,
    #[error("too many operations in txn request")]
    TooManyOps,
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    #[error("invalid sort option")]
    InvalidSortOption,
    #[error("too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("mvcc: database space exceeded")]
    NoSpace,
    /// A CORRUPT alarm is raised: members disagree on the data.
    #[error("corrupt cluster")]
    ClusterCorrupt,
    #[error("storage backend failed at {context}: {message}")]
    Backend {
        context: &'static str,
        message: String,
    },
    #[error("data dir is corrupt: {0}")]
    Corrupt(String),
    /// etcd's auth errors (users, roles, permissions, tokens).
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// etcd's auth errors (`auth/store.go`), each with etcd's message (without `etcdserver: `).
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AuthError {
    #[error("root user does not exist")]
    RootUserNotExist = 1,
    #[error("root user does not have root role")]
    RootRoleNotExist,
    #[error("user name already exists")]
    UserAlreadyExist,
    #[error("user name is empty")]
    UserEmpty,
    #[error("user name not found")]
    UserNotFound,
    #[error("role name already exists")]
    RoleAlreadyExist,
    #[error("role name not found")]
    RoleNotFound,
    #[error("role name is empty")]
    RoleEmpty,
    #[error("authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("permission not given")]
    PermissionNotGiven,
    #[error("permission denied")]
    PermissionDenied,
    #[error("role is not granted to the user")]
    RoleNotGranted,
    #[error("permission is not granted to the role")]
    PermissionNotGranted,
    #[error("authentication is not enabled")]
    AuthNotEnabled,
    #[error("invalid auth token")]
    InvalidAuthToken,
    #[error("invalid auth management")]
    InvalidAuthMgmt,
    #[error("revision of auth store is old")]
    AuthOldRevision,
    /// Authenticate for a user added with `--no-password` (etcd's `auth.ErrNoPasswordUser`,
    /// which etcd relays unconverted: code Unknown, `auth: ` prefix).
    #[error("authentication failed, password was given for no password user")]
    NoPasswordUser,
}

impl AuthError {
    pub const ALL: [AuthError; 18] = [
        AuthError::RootUserNotExist,
        AuthError::RootRoleNotExist,
        AuthError::UserAlreadyExist,
        AuthError::UserEmpty,
        AuthError::UserNotFound,
        AuthError::RoleAlreadyExist,
        AuthError::RoleNotFound,
        AuthError::RoleEmpty,
        AuthError::AuthFailed,
        AuthError::PermissionNotGiven,
        AuthError::PermissionDenied,
        AuthError::RoleNotGranted,
        AuthError::PermissionNotGranted,
        AuthError::AuthNotEnabled,
        AuthError::InvalidAuthToken,
        AuthError::InvalidAuthMgmt,
        AuthError::AuthOldRevision,
        AuthError::NoPasswordUser,
    ];

    /// A small number for the wire (peer forwarding), stable across releases.
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<AuthError> {
        AuthError::ALL.into_iter().find(|e| e.code() == code)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Wraps any redb error with the step that failed.
pub(crate) fn backend<E: std::fmt::Display>(context: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Backend {
        context,
        message: e.to_string(),
    }
}
