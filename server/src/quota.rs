//! The backend quota (`--quota-backend-bytes`), as etcd's `storage/quota.go` and
//! `v3rpc/quota.go`: before a Put, a Txn with a Put, or a LeaseGrant is proposed, its
//! estimated cost is added to the database file size; if that reaches the quota, this member
//! raises a NOSPACE alarm through consensus and the request fails with "database space
//! exceeded". Once the alarm is raised the storage apply path refuses such writes on every
//! member (see `cairn_storage` apply) until `alarm disarm`, after compaction and defragment.

use cairn_proto::etcdserverpb::alarm_request::AlarmAction;
use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, PutRequest, RequestOp, TxnRequest,
};
use cairn_storage::{Op, StoreError};

use crate::context::Context;
use crate::errors::ApiError;

/// etcd's estimate of a key's metadata in the backend.
const KV_OVERHEAD: i64 = 256;
/// etcd's estimate of a stored lease.
pub const LEASE_OVERHEAD: i64 = 64;

pub fn cost_put(r: &PutRequest) -> i64 {
    KV_OVERHEAD + r.key.len() as i64 + r.value.len() as i64
}

/// The dearer branch of a Txn (nested Txns included); 0 when it has no Put.
pub fn cost_txn(r: &TxnRequest) -> i64 {
    let branch = |ops: &[RequestOp]| -> i64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(Request::RequestPut(p)) => cost_put(p),
                Some(Request::RequestTxn(t)) => cost_txn(t),
                _ => 0,
            })
            .sum()
    };
    branch(&r.success).max(branch(&r.failure))
}

impl Context {
    /// etcd's `quotaAlarmer.check`: refuses a request of `cost` bytes that does not fit under
    /// the quota, raising this member's NOSPACE alarm first. A request that cannot grow the
    /// store (cost 0) always passes. The size is the store's file size (or its rows' bytes when
    /// more, before a flush), measured at most 10 ms ago.
    pub async fn check_quota(&self, cost: i64) -> Result<(), ApiError> {
        if cost == 0 {
            return Ok(());
        }
        let size = self.store.backend_size();
        let quota = self.config.quota_backend_bytes;
        if size.saturating_add(cost) < quota {
            return Ok(());
        }
        let member_id = self.node.member_id;
        let nospace = AlarmType::Nospace as i32;
        // etcd proposes the alarm on every refused request; once ours is in the table that
        // changes nothing, so skip the round trip.
        let raised = self.store.alarms().is_ok_and(|a| {
            a.iter()
                .any(|m| m.member_id == member_id && m.alarm == nospace)
        });
        if !raised {
            tracing::warn!(
                member_id,
                size,
                quota,
                "database space exceeded; raising NOSPACE alarm"
            );
            let req = AlarmRequest {
                action: AlarmAction::Activate as i32,
                member_id,
                alarm: nospace,
            };
            // as in etcd, the request fails with NOSPACE whether or not the alarm went through
            if let Err(e) = self.propose::<AlarmResponse>(Op::Alarm(req)).await {
                tracing::warn!(member_id, error = %e, "could not raise NOSPACE alarm");
            }
        }
        Err(StoreError::NoSpace.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: key.into(),
                value: value.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn costs_match_etcd() {
        assert_eq!(
            cost_put(&PutRequest {
                key: b"k".to_vec(),
                value: vec![0; 10],
                ..Default::default()
            }),
            267
        );
        let read = RequestOp {
            request: Some(Request::RequestRange(Default::default())),
        };
        let read_only = TxnRequest {
            success: vec![read.clone()],
            failure: vec![read],
            ..Default::default()
        };
        assert_eq!(cost_txn(&read_only), 0);
        let nested = TxnRequest {
            success: vec![put("a", "")],
            ..Default::default()
        };
        let t = TxnRequest {
            success: vec![put("k", "v")],
            failure: vec![
                put("k", "vv"),
                RequestOp {
                    request: Some(Request::RequestTxn(nested)),
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            cost_txn(&t),
            259 + 257,
            "the dearer branch, nested Txns included"
        );
    }
}
