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
use redb::ReadableTable;

pub use tokens::{SimpleTokens, TokenInfo};
pub use view::{AuthView, Need, ROOT};

use crate::backend::{AUTH_ENABLED, AUTH_REVISION, AUTH_ROLES, AUTH_USERS};
use crate::error::{Result, StoreError, backend};

/// The auth state of a database, from its tables (a fresh store: disabled, revision 1).
pub(crate) fn load(txn: &redb::ReadTransaction) -> Result<AuthView> {
    let meta = txn
        .open_table(crate::backend::META)
        .map_err(backend("open meta table"))?;
    let enabled = meta
        .get(AUTH_ENABLED)
        .map_err(backend("read meta"))?
        .is_some_and(|v| v.value() == [1]);
    let revision = match meta.get(AUTH_REVISION).map_err(backend("read meta"))? {
        Some(v) => u64::from_be_bytes(
            v.value()
                .try_into()
                .map_err(|_| StoreError::Corrupt("authRevision is not 8 bytes".into()))?,
        ),
        None => 1,
    };
    let mut users = BTreeMap::new();
    match txn.open_table(AUTH_USERS) {
        Ok(t) => {
            for row in t.iter().map_err(backend("scan authUsers"))? {
                let (k, v) = row.map_err(backend("scan authUsers"))?;
                let user = User::decode(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("user {}: {e}", k.value())))?;
                users.insert(k.value().to_string(), user);
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(backend("open authUsers")(e)),
    }
    let mut roles = BTreeMap::new();
    match txn.open_table(AUTH_ROLES) {
        Ok(t) => {
            for row in t.iter().map_err(backend("scan authRoles"))? {
                let (k, v) = row.map_err(backend("scan authRoles"))?;
                let role = Role::decode(v.value())
                    .map_err(|e| StoreError::Corrupt(format!("role {}: {e}", k.value())))?;
                roles.insert(k.value().to_string(), role);
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(backend("open authRoles")(e)),
    }
    Ok(AuthView::new(enabled, revision, users, roles))
}
