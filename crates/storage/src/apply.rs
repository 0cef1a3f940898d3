//! Applying replicated commands: one redb write transaction per batch, committed without
//! fsync (the raft log is the durable record; see `Store::flush`), with the caller's raft
//! metadata written in the same transaction so data and applied index never disagree.
//!
//! While a NOSPACE alarm is raised (by any member) the store is *capped*, as etcd's
//! `applierV3Capped`: Puts, Txns with a Put anywhere, and LeaseGrants fail with
//! [`StoreError::NoSpace`] without writing; everything else (reads, deletes, compaction, lease
//! revocation, alarms) still applies. Every member decides this from its replicated alarm
//! table, so all of them refuse the same entries.

use std::sync::{Arc, Mutex, MutexGuard, RwLockWriteGuard};
use std::time::Instant;

use cairn_proto::etcdserverpb::alarm_request::AlarmAction;
use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, CompactionResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseRevokeResponse, ResponseHeader, TxnRequest,
};
use cairn_proto::mvccpb::Event;
use prost::Message;

use crate::auth::SimpleTokens;
use crate::backend::{Backend, WriteTx};
use crate::command::{AuthOp, Command, CommandResponse, Op, RequestAuth};
use crate::error::{AuthError, Result, StoreError};
use crate::index::KeyRange;
use crate::lease::Lessor;
use crate::lease::MAX_LEASE_TTL;
use crate::locks::{lock, read_lock, write_lock};
use crate::read::LazyTable;
use crate::schema::{LeaseRecord, alarm_key};
use crate::state::{Raised, State};
use crate::store::Store;
use crate::watch::event_of;
use crate::write::{Sink, WriteTxn};

/// etcd's default `--warning-apply-duration`.
const WARN_APPLY: std::time::Duration = std::time::Duration::from_millis(100);

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

impl Store {
    /// Applies a batch of commands in order (`None` = an entry without a command). The outer
    /// error is a storage failure (fatal for the member); the inner ones are the commands' own.
    pub fn apply(
        &self,
        batch: &[Option<Command>],
        meta: &[(&str, Vec<u8>)],
    ) -> Result<Vec<Result<CommandResponse>>> {
        // The backend's writer is never waited for under the state lock: every read and write
        // of the member would wait with it (a compaction applied during a durable flush of a
        // large store stalled the member for the flush's 200-300 ms). So: try under the locks,
        // and when the writer is taken, wait for it without them and try again.
        loop {
            let state = write_lock(&self.state);
            let lessor = lock(&self.lessor);
            let db = read_lock(&self.db);
            if let Some(applied) = self.apply_holding(state, lessor, &db, batch, meta) {
                return applied;
            }
            db.wait_for_writer()?;
        }
    }

    /// [`Store::apply`] if it can run without waiting for anything (a read or keep-alive
    /// holding a lock, a commit or defragment holding redb's writer): `None` when it would
    /// wait. Lets a caller on an async runtime apply a small batch in place and hand only the
    /// rest to a blocking thread.
    pub fn try_apply(
        &self,
        batch: &[Option<Command>],
        meta: &[(&str, Vec<u8>)],
    ) -> Option<Result<Vec<Result<CommandResponse>>>> {
        let state = self.state.try_write().ok()?;
        let lessor = self.lessor.try_lock().ok()?;
        let db = self.db.try_read().ok()?;
        self.apply_holding(state, lessor, &db, batch, meta)
    }

    /// Puts, deletes and txns go to the overlay (no redb transaction on the reply's path);
    /// a batch with anything else, or with too much pending already, is written to redb in
    /// one transaction together with the pending rows. `None`: that transaction is needed and
    /// the backend's writer is taken (nothing was applied).
    fn apply_holding(
        &self,
        mut state: RwLockWriteGuard<'_, State>,
        mut lessor: MutexGuard<'_, Lessor>,
        db: &Backend,
        batch: &[Option<Command>],
        meta: &[(&str, Vec<u8>)],
    ) -> Option<Result<Vec<Result<CommandResponse>>>> {
        // the hub's epoch of the data this batch writes to (an install replaces data and
        // epoch together under the state lock); a late notification of replaced data is dropped
        let epoch = self.hub.epoch();
        let now = Instant::now();
        let held = now;
        let tokens = &self.tokens;
        let applied = if overlay_takes(&state, batch) {
            let sink = Sink::Overlay(LazyTable::new(db));
            let applied = run(&mut state, sink, &mut lessor, tokens, batch, now);
            for (name, value) in meta {
                state.overlay.set_meta(name, value);
            }
            self.committer.poke();
            applied
        } else {
            let txn = match db.try_write(false) {
                Ok(Some(txn)) => Ok(txn),
                Ok(None) => return None,
                Err(e) => Err(e),
            };
            txn.and_then(|txn| apply_in_txn(&mut state, txn, &mut lessor, tokens, batch, meta, now))
        };
        let (results, events) = match applied {
            Ok(applied) => applied,
            Err(e) => return Some(Err(e)),
        };
        self.unflushed
            .store(true, std::sync::atomic::Ordering::Release);
        let (current, compact) = (state.current_rev, state.compact_rev);
        if state.compacting.is_some() {
            self.compactor.poke();
        }
        self.publish_auth(&state.auth);
        drop(lessor);
        drop(state);
        if held.elapsed() > WARN_APPLY {
            // etcd's warning, for the same reason: every read and write waited that long
            tracing::warn!(
                took_ms = held.elapsed().as_millis() as u64,
                commands = batch.len(),
                "apply request took too long"
            );
        }
        self.hub.notify(&events, current, compact, epoch);
        Some(Ok(results))
    }
}

type Applied = (Vec<Result<CommandResponse>>, Vec<Event>);

/// Whether a batch can be applied to the overlay: only key-table changes, and the overlay
/// takes them (see [`crate::overlay::Overlay::takes_more`]).
fn overlay_takes(state: &State, batch: &[Option<Command>]) -> bool {
    state.overlay.takes_more()
        && batch.iter().all(|cmd| match cmd {
            Some(Command { op: Some(op), .. }) => {
                matches!(op, Op::Put(_) | Op::DeleteRange(_) | Op::Txn(_))
            }
            _ => true,
        })
}

/// Applies a batch in one redb transaction that first takes the overlay's pending rows, and
/// commits it (without fsync); the pending rows are forgotten once the commit has landed.
fn apply_in_txn(
    state: &mut State,
    txn: WriteTx,
    lessor: &mut Lessor,
    tokens: &Mutex<SimpleTokens>,
    batch: &[Option<Command>],
    meta: &[(&str, Vec<u8>)],
    now: Instant,
) -> Result<Applied> {
    let applied = {
        let mut tables = txn.tables()?;
        state.overlay.write_to(&mut tables)?;
        let applied = run(state, Sink::Tables(&mut tables), lessor, tokens, batch, now)?;
        for (name, value) in meta {
            tables.meta.insert(name, value)?;
        }
        state.raised = Raised::read(&tables.alarm)?;
        applied
    };
    txn.commit("commit apply")?;
    state.overlay.clear();
    Ok(applied)
}

/// Applies each command in order through `sink`; the changes of each command that changed
/// anything share the next revision.
fn run(
    state: &mut State,
    mut sink: Sink<'_, '_>,
    lessor: &mut Lessor,
    tokens: &Mutex<SimpleTokens>,
    batch: &[Option<Command>],
    now: Instant,
) -> Result<Applied> {
    let mut results = Vec::with_capacity(batch.len());
    let mut events = Vec::new();
    for cmd in batch {
        let Some(Command {
            op: Some(op),
            auth: who,
        }) = cmd
        else {
            results.push(Ok(CommandResponse::Empty));
            continue;
        };
        if state.raised.corrupt && !matches!(op, Op::Alarm(_)) {
            results.push(Err(StoreError::ClusterCorrupt));
            continue;
        }
        if state.raised.nospace && refused_when_capped(op) {
            results.push(Err(StoreError::NoSpace));
            continue;
        }
        // a client's command is checked against the auth state as of this point in the log
        if let Some(who) = who
            && let Err(e) = crate::auth::check::command(&state.auth, who, op, lessor)
        {
            results.push(Err(e.into()));
            continue;
        }
        let mut w = WriteTxn::new(state, &mut sink, lessor, now);
        let result = match op {
            Op::Auth(a) => auth_op(&mut w, a, who.as_ref(), tokens),
            _ => apply_op(&mut w, op),
        };
        let changes = std::mem::take(&mut w.changes);
        if !changes.is_empty() {
            let rev = state.current_rev + 1;
            state.current_rev = rev;
            events.extend(changes.into_iter().map(|kv| {
                let tombstone = kv.create_revision == 0;
                event_of(kv, rev, tombstone)
            }));
        }
        results.push(result);
        if matches!(op, Op::Alarm(_))
            && let Sink::Tables(tables) = &sink
        {
            state.raised = Raised::read(&tables.alarm)?;
        }
    }
    Ok((results, events))
}

/// What a capped store refuses: anything that could grow it (etcd: a quota cost above 0).
fn refused_when_capped(op: &Op) -> bool {
    match op {
        Op::Put(_) | Op::LeaseGrant(_) => true,
        Op::Txn(t) => txn_has_put(t),
        _ => false,
    }
}

/// A Put in either branch, nested Txns included (deletes alone only shrink the live data).
fn txn_has_put(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .any(|op| match &op.request {
            Some(Request::RequestPut(_)) => true,
            Some(Request::RequestTxn(inner)) => txn_has_put(inner),
            _ => false,
        })
}

fn apply_op(w: &mut WriteTxn<'_, '_, '_>, op: &Op) -> Result<CommandResponse> {
    match op {
        Op::Put(p) => w.put_request(p).map(CommandResponse::Put),
        Op::DeleteRange(d) => w.delete_request(d).map(CommandResponse::DeleteRange),
        Op::Txn(t) => w.txn_request(t).map(CommandResponse::Txn),
        Op::Compact(c) => {
            crate::compactor::check(w.state, c.revision)?;
            crate::compactor::schedule(w.state, w.sink.tables()?, c.revision)?;
            Ok(CommandResponse::Compact(CompactionResponse {
                header: header(w.state.current_rev),
            }))
        }
        Op::LeaseGrant(g) => lease_grant(w, g).map(CommandResponse::LeaseGrant),
        Op::LeaseRevoke(r) => lease_revoke(w, r.id).map(CommandResponse::LeaseRevoke),
        Op::Alarm(a) => alarm(w, a).map(CommandResponse::Alarm),
        Op::Auth(a) => Err(StoreError::Backend {
            context: "apply",
            message: format!("auth command {a:?} reached the KV path"),
        }),
    }
}

/// An auth command: its change goes to the auth tables, and the state's view is replaced.
fn auth_op(
    w: &mut WriteTxn<'_, '_, '_>,
    a: &AuthOp,
    who: Option<&RequestAuth>,
    tokens: &Mutex<SimpleTokens>,
) -> Result<CommandResponse> {
    let req = a.request.as_ref().ok_or(AuthError::PermissionNotGiven)?;
    let view = w.state.auth.clone();
    let (mut response, changed) =
        crate::auth::apply::apply(&view, w.sink.tables()?, tokens, req, who, w.now)?;
    *response.header() = header(w.state.current_rev);
    if let Some(v) = changed {
        w.state.auth = Arc::new(v);
    }
    Ok(CommandResponse::Auth(crate::auth::apply::reply(response)))
}

fn lease_grant(w: &mut WriteTxn<'_, '_, '_>, g: &LeaseGrantRequest) -> Result<LeaseGrantResponse> {
    if w.lessor.contains(g.id) {
        return Err(StoreError::LeaseExists);
    }
    if g.ttl > MAX_LEASE_TTL {
        return Err(StoreError::LeaseTtlTooLarge);
    }
    let ttl = w.lessor.effective_ttl(g.ttl);
    let rec = LeaseRecord {
        id: g.id,
        ttl,
        remaining_ttl: 0,
    };
    w.sink.tables()?.lease.insert(g.id, &rec.encode_to_vec())?;
    w.lessor.insert(g.id, ttl, w.now);
    Ok(LeaseGrantResponse {
        header: header(w.state.current_rev),
        id: g.id,
        ttl,
        error: String::new(),
    })
}

/// Revokes a lease and deletes its keys in one revision, in key order (as etcd does).
fn lease_revoke(w: &mut WriteTxn<'_, '_, '_>, id: i64) -> Result<LeaseRevokeResponse> {
    let lease = w.lessor.revoke(id).ok_or(StoreError::LeaseNotFound)?;
    for key in &lease.keys {
        w.delete_range(&KeyRange::new(key.clone(), vec![]))?;
    }
    w.sink.tables()?.lease.remove(id)?;
    let rev = if w.changes.is_empty() {
        w.begin_rev
    } else {
        w.begin_rev + 1
    };
    Ok(LeaseRevokeResponse {
        header: header(rev),
    })
}

fn alarm(w: &mut WriteTxn<'_, '_, '_>, a: &AlarmRequest) -> Result<AlarmResponse> {
    let member = AlarmMember {
        member_id: a.member_id,
        alarm: a.alarm,
    };
    let key = alarm_key(a.member_id, a.alarm);
    let mut alarms = Vec::new();
    match AlarmAction::try_from(a.action).unwrap_or(AlarmAction::Get) {
        AlarmAction::Get => {}
        AlarmAction::Activate => {
            if a.alarm != 0 {
                w.sink.tables()?.alarm.insert(&key)?;
                alarms.push(member);
            }
        }
        AlarmAction::Deactivate => {
            if w.sink.tables()?.alarm.remove(&key)? {
                alarms.push(member);
            }
        }
    }
    Ok(AlarmResponse {
        header: header(w.state.current_rev),
        alarms,
    })
}

#[cfg(test)]
mod tests {
    use cairn_proto::etcdserverpb::PutRequest;

    use super::*;
    use crate::store::temp_store;

    #[test]
    fn try_apply_never_waits() {
        let (_dir, store) = temp_store();
        let put = [Some(Command::from(Op::Put(PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        })))];
        let grant = [Some(Command::from(Op::LeaseGrant(LeaseGrantRequest {
            id: 7,
            ttl: 60,
        })))];
        {
            let _reading = read_lock(&store.state);
            assert!(
                store.try_apply(&put, &[]).is_none(),
                "a reader holds the state"
            );
        }
        {
            let db = read_lock(&store.db);
            let _writing = db.write(false).unwrap();
            assert!(
                store.try_apply(&grant, &[]).is_none(),
                "a lease grant needs redb's writer, which is taken"
            );
            let applied = store
                .try_apply(&put, &[])
                .expect("a put goes to the overlay");
            assert!(matches!(applied.unwrap()[0], Ok(CommandResponse::Put(_))));
        }
        let applied = store.try_apply(&grant, &[]).expect("nothing to wait for");
        assert!(matches!(
            applied.unwrap()[0],
            Ok(CommandResponse::LeaseGrant(_))
        ));
        assert_eq!(store.current_revision(), 2);
    }
}
