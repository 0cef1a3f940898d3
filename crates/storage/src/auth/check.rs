//! The checks etcd's `authApplierV3` makes when a client's command is applied, on every
//! member, in log order: so a permission revoked before a write in the log refuses it on
//! every member alike.

use cairn_proto::etcdserverpb::alarm_request::AlarmAction;
use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::{RequestOp, TxnRequest};

use super::view::{AuthView, Need};
use crate::command::{Op, RequestAuth};
use crate::error::AuthError;
use crate::lease::Lessor;

/// May `who` run `op`? Auth commands are checked where they are applied (`apply.rs`).
pub(crate) fn command(
    view: &AuthView,
    who: &RequestAuth,
    op: &Op,
    lessor: &Lessor,
) -> Result<(), AuthError> {
    if !view.enabled {
        return Ok(());
    }
    match op {
        Op::Put(p) => {
            view.check(who, &p.key, &[], Need::Write)?;
            // a lease whose keys this user may not write cannot be revoked by it, so it may
            // not attach new keys to it either
            lease_keys(view, who, lessor, p.lease)?;
            if p.prev_kv {
                view.check(who, &p.key, &[], Need::Read)?;
            }
            Ok(())
        }
        Op::DeleteRange(d) => {
            view.check(who, &d.key, &d.range_end, Need::Write)?;
            if d.prev_kv {
                view.check(who, &d.key, &d.range_end, Need::Read)?;
            }
            Ok(())
        }
        Op::Txn(t) => txn(view, who, t),
        Op::LeaseRevoke(r) => lease_keys(view, who, lessor, r.id),
        Op::LeaseGrant(_) => Ok(()),
        // etcd 3.4.42 / 3.5.28 on: compaction is for root only
        Op::Compact(_) => view.check_admin(who),
        Op::Alarm(a) => match AlarmAction::try_from(a.action).unwrap_or(AlarmAction::Get) {
            AlarmAction::Get => Ok(()),
            AlarmAction::Activate | AlarmAction::Deactivate => view.check_admin(who),
        },
        Op::Auth(_) => Ok(()),
    }
}

/// WRITE on every key attached to `lease` (etcd's `checkLeasePuts`).
fn lease_keys(
    view: &AuthView,
    who: &RequestAuth,
    lessor: &Lessor,
    lease: i64,
) -> Result<(), AuthError> {
    if lease == 0 {
        return Ok(());
    }
    if let Some(l) = lessor.get(lease) {
        for key in &l.keys {
            view.check(who, key, &[], Need::Write)?;
        }
    }
    Ok(())
}

/// READ on every compare, then every operation of both branches, nested txns included
/// (etcd's `checkTxnAuth`).
fn txn(view: &AuthView, who: &RequestAuth, t: &TxnRequest) -> Result<(), AuthError> {
    for c in &t.compare {
        view.check(who, &c.key, &c.range_end, Need::Read)?;
    }
    ops(view, who, &t.success)?;
    ops(view, who, &t.failure)
}

fn ops(view: &AuthView, who: &RequestAuth, ops: &[RequestOp]) -> Result<(), AuthError> {
    for op in ops {
        match &op.request {
            Some(Request::RequestRange(r)) => view.check(who, &r.key, &r.range_end, Need::Read)?,
            Some(Request::RequestPut(p)) => {
                view.check(who, &p.key, &[], Need::Write)?;
                if p.prev_kv {
                    view.check(who, &p.key, &[], Need::Read)?;
                }
            }
            Some(Request::RequestDeleteRange(d)) => {
                if d.prev_kv {
                    view.check(who, &d.key, &d.range_end, Need::Read)?;
                }
                view.check(who, &d.key, &d.range_end, Need::Write)?;
            }
            Some(Request::RequestTxn(inner)) => txn(view, who, inner)?,
            None => {}
        }
    }
    Ok(())
}
