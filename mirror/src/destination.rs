//! Writing to the destination: every txn is fenced (the owner key still holds our ID) and,
//! when it ends a unit of progress, carries the checkpoint put.

use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::response_op::Response;
use cairn_proto::etcdserverpb::{PutRequest, RangeRequest, RequestOp, TxnRequest, TxnResponse};
use cairn_proto::mvccpb::KeyValue;

use crate::batch::Op;
use crate::checkpoint::Checkpoint;
use crate::client::Client;
use crate::error::Error;
use crate::fence::Fence;

/// Applies `ops` (and the checkpoint, when given) in one fenced txn; returns the
/// destination revision.
pub async fn commit(
    dest: &Client,
    fence: &Fence,
    ops: Vec<Op>,
    checkpoint: Option<(&[u8], &Checkpoint)>,
) -> Result<i64, Error> {
    let r = commit_txn(dest, fence, ops, checkpoint).await?;
    Ok(r.header.map(|h| h.revision).unwrap_or(0))
}

/// [`commit`], answering the whole txn response (what each operation did).
pub async fn commit_txn(
    dest: &Client,
    fence: &Fence,
    ops: Vec<Op>,
    checkpoint: Option<(&[u8], &Checkpoint)>,
) -> Result<TxnResponse, Error> {
    let mut success: Vec<RequestOp> = ops.into_iter().map(Op::into_request).collect();
    if let Some((key, c)) = checkpoint {
        success.push(checkpoint_put(key, c.encode()));
    }
    let r = dest
        .txn(TxnRequest {
            compare: vec![fence.compare()],
            success,
            failure: vec![fence.on_failure()],
        })
        .await?;
    if !r.succeeded {
        return Err(fence.lost(first_range_kv(&r).map(|kv| kv.value.as_slice())));
    }
    Ok(r)
}

/// The operation that writes the checkpoint (its value already encoded).
pub fn checkpoint_put(key: &[u8], value: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: key.to_vec(),
            value,
            ..Default::default()
        })),
    }
}

/// The checkpoint stored at `key`, if any, and the destination revision it was read at.
pub async fn load_checkpoint(
    dest: &Client,
    key: &[u8],
) -> Result<(Option<Checkpoint>, i64), Error> {
    let r = dest
        .range(RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        })
        .await?;
    let rev = r.header.as_ref().map(|h| h.revision).unwrap_or(0);
    match r.kvs.first() {
        Some(kv) => Ok((Some(Checkpoint::decode(key, &kv.value)?), rev)),
        None => Ok((None, rev)),
    }
}

/// The first key-value read by a txn's range operation (the owner key on a fence failure).
pub fn first_range_kv(r: &TxnResponse) -> Option<&KeyValue> {
    r.responses.iter().find_map(|op| match &op.response {
        Some(Response::ResponseRange(rr)) => rr.kvs.first(),
        _ => None,
    })
}
