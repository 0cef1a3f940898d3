//! The redb tables and small helpers over them. Nothing outside this crate sees redb.
//!
//! | table   | key                          | value                                   |
//! |---------|------------------------------|-----------------------------------------|
//! | `key`   | 17/18-byte revision (etcd's) | protobuf `mvccpb.KeyValue` (etcd's)      |
//! | `meta`  | name                         | bytes (compact revisions, raft state)   |
//! | `lease` | lease ID                     | protobuf `LeaseRecord`                  |
//! | `alarm` | member ID ++ alarm type      | empty                                   |
//! | `authUsers` | user name                | protobuf `authpb.User` (etcd's)         |
//! | `authRoles` | role name                | protobuf `authpb.Role` (etcd's)         |
//!
//! `meta` also holds etcd's `authEnabled` (one byte, 1 = on) and `authRevision` (u64, big
//! endian).

use redb::{ReadableTable, TableDefinition};

use crate::error::{Result, backend};
use crate::revision::Revision;

pub(crate) const KEY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("key");
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const LEASE: TableDefinition<i64, &[u8]> = TableDefinition::new("lease");
pub(crate) const ALARM: TableDefinition<&[u8], ()> = TableDefinition::new("alarm");
pub(crate) const AUTH_USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("authUsers");
pub(crate) const AUTH_ROLES: TableDefinition<&str, &[u8]> = TableDefinition::new("authRoles");

/// etcd's meta keys of the auth switch and the auth revision.
pub(crate) const AUTH_ENABLED: &str = "authEnabled";
pub(crate) const AUTH_REVISION: &str = "authRevision";

/// etcd's meta key names for compaction progress (17-byte revision encoding, sub 0).
pub(crate) const SCHEDULED_COMPACT_REV: &str = "scheduledCompactRev";
pub(crate) const FINISHED_COMPACT_REV: &str = "finishedCompactRev";

/// A lease as stored: etcd's `leasepb.Lease` fields that matter after a restart.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseRecord {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
}

/// The fields of a stored `mvccpb.KeyValue` the index needs: the same tags without the
/// value, so rebuilding the index at open does not copy every value (prost skips tag 5).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct KeyValueHead {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(int64, tag = "2")]
    pub create_revision: i64,
    #[prost(int64, tag = "4")]
    pub version: i64,
    #[prost(int64, tag = "6")]
    pub lease: i64,
}

/// Reads a revision stored under a meta key, if any.
pub(crate) fn meta_revision<T: ReadableTable<&'static str, &'static [u8]>>(
    meta: &T,
    name: &str,
) -> Result<Option<i64>> {
    let v = meta.get(name).map_err(backend("read meta"))?;
    Ok(v.and_then(|v| Revision::from_bytes(v.value()).map(|(r, _)| r.main)))
}

pub(crate) fn alarm_key(member_id: u64, alarm: i32) -> Vec<u8> {
    let mut k = member_id.to_be_bytes().to_vec();
    k.extend_from_slice(&alarm.to_be_bytes());
    k
}

pub(crate) fn alarm_from_key(k: &[u8]) -> Option<(u64, i32)> {
    let member = u64::from_be_bytes(k.get(0..8)?.try_into().ok()?);
    let alarm = i32::from_be_bytes(k.get(8..12)?.try_into().ok()?);
    Some((member, alarm))
}
