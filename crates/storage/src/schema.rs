//! What the store's tables hold, beside redb (`backend/`): the record encodings and the
//! `meta` names shared with etcd's backend. Table layout: `backend/tables.rs`.
//!
//! `meta` also holds etcd's `authEnabled` (one byte, 1 = on) and `authRevision` (u64, big
//! endian).

use crate::revision::Revision;

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
    /// Seconds left when written by a point-in-time restore (etcd's `RemainingTTL`, which
    /// its checkpoints write): the member's first clock for the lease starts from it
    /// instead of the TTL, once, and the store clears it when it opens (0: none).
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
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

/// The revision a meta value holds (17-byte revision encoding), if it is one.
pub(crate) fn meta_revision(value: Option<Vec<u8>>) -> Option<i64> {
    value.and_then(|v| Revision::from_bytes(&v).map(|(r, _)| r.main))
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
