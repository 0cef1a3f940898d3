//! Applying one operation over gRPC and normalizing the outcome for comparison.

use cairn_proto::etcdserverpb::response_op::Response;
use cairn_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
};
use cairn_tests::Clients;

#[derive(Clone, Debug)]
pub enum Op {
    Range(RangeRequest),
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(CompactionRequest),
}

/// A response with headers reduced to the revision, or the gRPC error.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Range(RangeResponse),
    Put(PutResponse),
    Delete(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact(CompactionResponse),
    Error { code: tonic::Code, message: String },
}

impl Outcome {
    /// The header revision of a successful outcome.
    pub fn revision(&self) -> Option<i64> {
        let header = match self {
            Outcome::Range(r) => &r.header,
            Outcome::Put(r) => &r.header,
            Outcome::Delete(r) => &r.header,
            Outcome::Txn(r) => &r.header,
            Outcome::Compact(r) => &r.header,
            Outcome::Error { .. } => return None,
        };
        header.as_ref().map(|h| h.revision)
    }
}

/// Sends `op` and returns its normalized outcome.
pub async fn apply(clients: &mut Clients, op: &Op) -> Outcome {
    let kv = &mut clients.kv;
    let result = match op.clone() {
        Op::Range(r) => kv.range(r).await.map(|r| Outcome::Range(r.into_inner())),
        Op::Put(r) => kv.put(r).await.map(|r| Outcome::Put(r.into_inner())),
        Op::Delete(r) => kv
            .delete_range(r)
            .await
            .map(|r| Outcome::Delete(r.into_inner())),
        Op::Txn(r) => kv.txn(r).await.map(|r| Outcome::Txn(r.into_inner())),
        Op::Compact(r) => kv
            .compact(r)
            .await
            .map(|r| Outcome::Compact(r.into_inner())),
    };
    let mut outcome = result.unwrap_or_else(|status| Outcome::Error {
        code: status.code(),
        message: status.message().to_string(),
    });
    normalize(&mut outcome);
    outcome
}

/// cluster_id, member_id and raft_term legitimately differ between servers; revision must not.
fn header(h: &mut Option<ResponseHeader>) {
    if let Some(h) = h {
        *h = ResponseHeader {
            revision: h.revision,
            ..Default::default()
        };
    }
}

fn normalize(outcome: &mut Outcome) {
    match outcome {
        Outcome::Range(r) => header(&mut r.header),
        Outcome::Put(r) => header(&mut r.header),
        Outcome::Delete(r) => header(&mut r.header),
        Outcome::Txn(r) => normalize_txn(r),
        Outcome::Compact(r) => header(&mut r.header),
        Outcome::Error { .. } => {}
    }
}

fn normalize_txn(txn: &mut TxnResponse) {
    header(&mut txn.header);
    for op in &mut txn.responses {
        match &mut op.response {
            Some(Response::ResponseRange(r)) => header(&mut r.header),
            Some(Response::ResponsePut(r)) => header(&mut r.header),
            Some(Response::ResponseDeleteRange(r)) => header(&mut r.header),
            Some(Response::ResponseTxn(r)) => normalize_txn(r),
            None => {}
        }
    }
}
