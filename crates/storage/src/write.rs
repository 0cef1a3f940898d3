//! One write transaction's worth of MVCC changes (etcd's `storeTxnWrite` plus the applier's
//! Put/DeleteRange/Txn). Every change of one command shares a main revision; reads inside the
//! command see its earlier changes.

use std::time::Instant;

use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::response_op::Response;
use cairn_proto::etcdserverpb::{
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use cairn_proto::mvccpb::KeyValue;
use prost::Message;

use crate::backend::Tables;
use crate::error::{Result, StoreError};
use crate::index::KeyRange;
use crate::lease::Lessor;
use crate::read::{LazyTable, View};
use crate::revision::Revision;
use crate::state::{State, row_bytes};
use crate::txn::{branch, compare_holds, compare_range};

/// Where a command's key-table rows go.
pub(crate) enum Sink<'a, 't> {
    /// The overlay (read back through it, redb read on first use): puts, deletes, txns.
    Overlay(LazyTable<'a>),
    /// A redb write transaction's tables: commands that change the other tables too.
    Tables(&'a mut Tables<'t>),
}

impl<'t> Sink<'_, 't> {
    /// The tables of the redb write transaction, for commands applied with one.
    pub fn tables(&mut self) -> Result<&mut Tables<'t>> {
        match self {
            Sink::Tables(t) => Ok(t),
            Sink::Overlay(_) => Err(StoreError::Backend {
                context: "apply",
                message: "a command that changes more than the key table reached the overlay"
                    .into(),
            }),
        }
    }
}

pub(crate) struct WriteTxn<'a, 'b, 't> {
    pub state: &'a mut State,
    pub sink: &'a mut Sink<'b, 't>,
    pub lessor: &'a mut Lessor,
    pub begin_rev: i64,
    pub changes: Vec<KeyValue>,
    pub now: Instant,
}

/// Which branch each txn took, nested txns included, decided before any change is made.
struct Path {
    succeeded: bool,
    nested: Vec<Path>,
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

impl<'a, 'b, 't> WriteTxn<'a, 'b, 't> {
    pub fn new(
        state: &'a mut State,
        sink: &'a mut Sink<'b, 't>,
        lessor: &'a mut Lessor,
        now: Instant,
    ) -> Self {
        let begin_rev = state.current_rev;
        WriteTxn {
            state,
            sink,
            lessor,
            begin_rev,
            changes: Vec::new(),
            now,
        }
    }

    /// Writes one key table row and counts its bytes.
    fn insert_row(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.state.data_bytes += row_bytes(&key, &value);
        match self.sink {
            Sink::Overlay(_) => self.state.overlay.insert_row(key, value),
            Sink::Tables(t) => {
                t.key.insert(&key, &value)?;
            }
        }
        Ok(())
    }

    /// The revision reads inside this command see.
    fn read_rev(&self) -> i64 {
        if self.changes.is_empty() {
            self.begin_rev
        } else {
            self.begin_rev + 1
        }
    }

    /// A view of the data as this command sees it now.
    pub fn view(&self) -> View<'_> {
        View {
            index: &self.state.index,
            overlay: &self.state.overlay,
            table: match &*self.sink {
                Sink::Overlay(lazy) => lazy,
                Sink::Tables(t) => &t.key,
            },
            current_rev: self.read_rev(),
            compact_rev: self.state.compact_rev,
        }
    }

    /// Writes a new version of `key`; returns the revision.
    pub fn put(&mut self, key: &[u8], value: Vec<u8>, lease: i64) -> Result<i64> {
        let rev = self.begin_rev + 1;
        let (created, version) = match self.state.index.get(key, rev) {
            Some(at) => (at.created.main, at.version + 1),
            None => (rev, 1),
        };
        let idx_rev = Revision::new(rev, self.changes.len() as i64);
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: created,
            mod_revision: rev,
            version,
            value,
            lease,
        };
        self.insert_row(idx_rev.to_bytes(false), kv.encode_to_vec())?;
        self.state.index.put(key, idx_rev);
        self.lessor.move_key(key, lease);
        self.changes.push(kv);
        Ok(rev)
    }

    /// Writes a tombstone for a key that exists.
    fn delete(&mut self, key: &[u8]) -> Result<()> {
        let idx_rev = Revision::new(self.begin_rev + 1, self.changes.len() as i64);
        let kv = KeyValue {
            key: key.to_vec(),
            ..Default::default()
        };
        self.insert_row(idx_rev.to_bytes(true), kv.encode_to_vec())?;
        self.state.index.tombstone(key, idx_rev);
        self.lessor.move_key(key, 0);
        self.changes.push(kv);
        Ok(())
    }

    /// Deletes every key in `range`; returns how many and the resulting revision.
    pub fn delete_range(&mut self, range: &KeyRange) -> Result<(i64, i64)> {
        let (keys, _) = self.state.index.revisions(range, self.read_rev(), 0);
        for (k, _) in &keys {
            self.delete(k)?;
        }
        let rev = if keys.is_empty() && self.changes.is_empty() {
            self.begin_rev
        } else {
            self.begin_rev + 1
        };
        Ok((keys.len() as i64, rev))
    }

    pub fn put_request(&mut self, p: &PutRequest) -> Result<PutResponse> {
        let prev = if p.ignore_value || p.ignore_lease || p.prev_kv {
            self.view().get(&p.key)?
        } else {
            None
        };
        if (p.ignore_value || p.ignore_lease) && prev.is_none() {
            return Err(StoreError::KeyNotFound);
        }
        let value = match (&prev, p.ignore_value) {
            (Some(kv), true) => kv.value.clone(),
            _ => p.value.clone(),
        };
        let lease = match (&prev, p.ignore_lease) {
            (Some(kv), true) => kv.lease,
            _ => p.lease,
        };
        if lease != 0 && !self.lessor.contains(lease) {
            return Err(StoreError::LeaseNotFound);
        }
        let rev = self.put(&p.key, value, lease)?;
        Ok(PutResponse {
            header: header(rev),
            prev_kv: if p.prev_kv { prev } else { None },
        })
    }

    pub fn delete_request(&mut self, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        let range = KeyRange::new(d.key.clone(), d.range_end.clone());
        let prev_kvs = if d.prev_kv {
            self.view().range_kvs(&range, 0, 0)?.0
        } else {
            Vec::new()
        };
        let (deleted, rev) = self.delete_range(&range)?;
        Ok(DeleteRangeResponse {
            header: header(rev),
            deleted,
            prev_kvs,
        })
    }

    fn range_request(&self, r: &RangeRequest) -> Result<RangeResponse> {
        self.view().range(r)
    }

    pub fn txn_request(&mut self, t: &TxnRequest) -> Result<TxnResponse> {
        let path = self.path(t)?;
        if !crate::txn::is_read_only(t) {
            self.check_ops(t, &path, &|this, op| this.check_put(op))?;
        }
        self.check_ops(t, &path, &|this, op| this.check_range(op))?;
        let mut resp = self.apply_txn(t, &path)?;
        let rev = if self.changes.is_empty() {
            self.begin_rev
        } else {
            self.begin_rev + 1
        };
        resp.header = header(rev);
        Ok(resp)
    }

    /// Evaluates every compare on the path against the data before the txn (etcd's
    /// `compareToPath`): nested compares do not see the outer txn's writes.
    fn path(&self, t: &TxnRequest) -> Result<Path> {
        let view = self.view();
        let mut succeeded = true;
        for c in &t.compare {
            let (kvs, _) = view.range_kvs(&compare_range(c), 0, 0)?;
            if !compare_holds(c, &kvs) {
                succeeded = false;
                break;
            }
        }
        let mut nested = Vec::new();
        for op in branch(t, succeeded) {
            if let Some(Request::RequestTxn(inner)) = &op.request {
                nested.push(self.path(inner)?);
            }
        }
        Ok(Path { succeeded, nested })
    }

    fn check_ops(
        &self,
        t: &TxnRequest,
        path: &Path,
        check: &dyn Fn(&Self, &RequestOp) -> Result<()>,
    ) -> Result<()> {
        let mut nested = path.nested.iter();
        for op in branch(t, path.succeeded) {
            match &op.request {
                Some(Request::RequestTxn(inner)) => {
                    let p = nested.next().expect("a path entry per nested txn");
                    self.check_ops(inner, p, check)?;
                }
                _ => check(self, op)?,
            }
        }
        Ok(())
    }

    fn check_put(&self, op: &RequestOp) -> Result<()> {
        let Some(Request::RequestPut(p)) = &op.request else {
            return Ok(());
        };
        if (p.ignore_value || p.ignore_lease) && self.view().get(&p.key)?.is_none() {
            return Err(StoreError::KeyNotFound);
        }
        if p.lease != 0 && !self.lessor.contains(p.lease) {
            return Err(StoreError::LeaseNotFound);
        }
        Ok(())
    }

    fn check_range(&self, op: &RequestOp) -> Result<()> {
        let Some(Request::RequestRange(r)) = &op.request else {
            return Ok(());
        };
        if r.revision == 0 {
            return Ok(());
        }
        self.view().check_rev(r.revision).map(|_| ())
    }

    fn apply_txn(&mut self, t: &TxnRequest, path: &Path) -> Result<TxnResponse> {
        let mut nested = path.nested.iter();
        let mut responses = Vec::new();
        for op in branch(t, path.succeeded) {
            let response = match &op.request {
                Some(Request::RequestRange(r)) => Response::ResponseRange(self.range_request(r)?),
                Some(Request::RequestPut(p)) => Response::ResponsePut(self.put_request(p)?),
                Some(Request::RequestDeleteRange(d)) => {
                    Response::ResponseDeleteRange(self.delete_request(d)?)
                }
                Some(Request::RequestTxn(inner)) => {
                    let p = nested.next().expect("a path entry per nested txn");
                    let mut r = self.apply_txn(inner, p)?;
                    r.header = Some(ResponseHeader::default());
                    Response::ResponseTxn(r)
                }
                None => continue,
            };
            responses.push(ResponseOp {
                response: Some(response),
            });
        }
        Ok(TxnResponse {
            header: None,
            succeeded: path.succeeded,
            responses,
        })
    }
}
