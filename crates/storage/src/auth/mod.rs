//! etcd's authentication and authorization in the store: users, roles and key permissions
//! kept in the `authUsers`/`authRoles` tables and the `meta` table (`authEnabled`,
//! `authRevision`), changed only by replicated commands, and checked on every member.
//!
//! # Layout
//! - [`perms`]: key permissions as intervals, merged per user; coverage checks. Pure.
//! - [`view`]: [`AuthView`], the immutable state every check reads.
//! - [`check`]: the checks made when a client's KV, lease, compaction or alarm command is
//!   applied (etcd's `authApplierV3`).
//! - `apply`: applying an auth command with etcd's rules and errors.
//! - [`ops`]: what an auth command carries and returns.
//! - [`tokens`]: simple tokens with a sliding TTL.
//!
//! Passwords are bcrypt hashes made by the server before the command is proposed; this crate
//! never sees a password.

pub(crate) mod apply;
pub(crate) mod check;
pub mod ops;
pub mod perms;
pub mod tokens;
pub mod view;

use std::collections::BTreeMap;

use cairn_proto::authpb::{Role, User};
use prost::Message;

pub use tokens::{SimpleTokens, TokenInfo};
pub use view::{AuthView, Need, ROOT};

use crate::backend::ReadTx;
use crate::error::{Result, StoreError};
use crate::schema::{AUTH_ENABLED, AUTH_REVISION};

/// The auth state of a database, from its tables (a fresh store: disabled, revision 1).
pub(crate) fn load(txn: &ReadTx) -> Result<AuthView> {
    let meta = txn.meta()?;
    let enabled = meta.get(AUTH_ENABLED)?.is_some_and(|v| v == [1]);
    let revision = match meta.get(AUTH_REVISION)? {
        Some(v) => u64::from_be_bytes(
            v.as_slice()
                .try_into()
                .map_err(|_| StoreError::Corrupt("authRevision is not 8 bytes".into()))?,
        ),
        None => 1,
    };
    let mut users = BTreeMap::new();
    if let Some(t) = txn.users()? {
        t.each(|name, v| {
            let user =
                User::decode(v).map_err(|e| StoreError::Corrupt(format!("user {name}: {e}")))?;
            users.insert(name.to_string(), user);
            Ok(())
        })?;
    }
    let mut roles = BTreeMap::new();
    if let Some(t) = txn.roles()? {
        t.each(|name, v| {
            let role =
                Role::decode(v).map_err(|e| StoreError::Corrupt(format!("role {name}: {e}")))?;
            roles.insert(name.to_string(), role);
            Ok(())
        })?;
    }
    Ok(AuthView::new(enabled, revision, users, roles))
}
