//! Ordered, pipelined destination txns for the watch phase. Waiting for each txn's answer
//! before sending the next caps a mirror at one destination round trip (plus an fsync) per
//! source revision. Instead up to `depth` txns are in flight, and each is chained to the
//! one before it: besides the fence, it compares the checkpoint's value with exactly what
//! the previous txn writes. A destination that runs them out of order makes the early one
//! fail its compare (and so every later one); the mirror then sends them again from there,
//! the first one alone. So revisions are applied in order, each exactly once, at the rate
//! the destination can commit batches rather than one round trip at a time.

use std::collections::VecDeque;

use cairn_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use cairn_proto::etcdserverpb::response_op::Response;
use cairn_proto::etcdserverpb::{Compare, RangeRequest, RequestOp, TxnRequest};
use futures::stream::{FuturesOrdered, StreamExt};

use crate::batch::Op;
use crate::checkpoint::Checkpoint;
use crate::client::Client;
use crate::destination::checkpoint_put;
use crate::error::Error;
use crate::fence::Fence;

/// A txn sent and not yet answered.
struct Sent {
    /// The checkpoint's revision once it is applied.
    revision: i64,
    /// Source events it completes (counted when acknowledged).
    events: u64,
    req: TxnRequest,
}

/// See `Pipeline::window`.
const GROW_AFTER: usize = 4;
/// See `Pipeline::ceiling`.
const PROBE_AFTER: usize = 1000;

type Answer = Result<cairn_proto::etcdserverpb::TxnResponse, Error>;

pub struct Pipeline {
    dst: Client,
    fence: Fence,
    key: Vec<u8>,
    depth: usize,
    /// The checkpoint value the next txn compares against: what the last one sent writes.
    tail: Vec<u8>,
    sent: VecDeque<Sent>,
    /// Built and waiting for room (after an out-of-order failure).
    queue: VecDeque<Sent>,
    answers: FuturesOrdered<futures::future::BoxFuture<'static, Answer>>,
    /// After an out-of-order failure, send one txn at a time until it is through.
    careful: bool,
    /// Txns allowed in flight now: halved at each reordering, grown by one after
    /// `GROW_AFTER` times as many acknowledgements in a row (a destination that reorders
    /// concurrent requests, as etcd does, ends up with a shallow pipeline).
    window: usize,
    streak: usize,
    /// The window does not grow past this: one less than where the last reordering
    /// happened, raised by one every `PROBE_AFTER` acknowledgements to try again.
    ceiling: usize,
    since_probe: usize,
    stats: std::sync::Arc<crate::progress::Stats>,
}

/// What an acknowledged txn means for the caller.
pub struct Acked {
    pub revision: i64,
    pub events: u64,
}

impl Pipeline {
    /// `current`: the checkpoint's value at the destination now.
    pub fn new(
        dst: Client,
        fence: Fence,
        key: Vec<u8>,
        depth: usize,
        current: Vec<u8>,
        stats: std::sync::Arc<crate::progress::Stats>,
    ) -> Self {
        Pipeline {
            dst,
            fence,
            key,
            depth: depth.max(1),
            tail: current,
            sent: VecDeque::new(),
            queue: VecDeque::new(),
            answers: FuturesOrdered::new(),
            careful: false,
            window: depth.max(1),
            streak: 0,
            ceiling: depth.max(1),
            since_probe: 0,
            stats,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sent.is_empty() && self.queue.is_empty()
    }

    /// True when the caller may hand over another txn without waiting; otherwise the caller
    /// holds on to what it receives, which lets it merge revisions.
    pub fn has_room(&self) -> bool {
        self.sent.len() + self.queue.len() < self.limit()
    }

    fn limit(&self) -> usize {
        if self.careful { 1 } else { self.window }
    }

    /// Moves queued txns in flight while the window allows.
    fn pump(&mut self) {
        while self.sent.len() < self.limit() {
            let Some(s) = self.queue.pop_front() else {
                break;
            };
            let (dst, req) = (self.dst.clone(), s.req.clone());
            self.answers
                .push_back(Box::pin(async move { dst.txn(req).await }));
            self.sent.push_back(s);
        }
    }

    /// Sends `ops` with `checkpoint`, chained to the previous txn.
    pub fn send(&mut self, ops: Vec<Op>, checkpoint: &Checkpoint, events: u64) {
        let value = checkpoint.encode();
        let mut success: Vec<RequestOp> = ops.into_iter().map(Op::into_request).collect();
        success.push(checkpoint_put(&self.key, value.clone()));
        let chain = Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Value as i32,
            key: self.key.clone(),
            range_end: Vec::new(),
            target_union: Some(TargetUnion::Value(std::mem::replace(&mut self.tail, value))),
        };
        let req = TxnRequest {
            compare: vec![self.fence.compare(), chain],
            success,
            failure: vec![self.fence.on_failure()],
        };
        self.push(Sent {
            revision: checkpoint.revision,
            events,
            req,
        });
    }

    fn push(&mut self, s: Sent) {
        self.queue.push_back(s);
        self.pump();
    }

    /// The oldest txn's answer. Cancel-safe (for `select!`); hand it to [`Pipeline::settle`].
    pub async fn answer(&mut self) -> Answer {
        match self.answers.next().await {
            Some(a) => a,
            None => std::future::pending().await,
        }
    }

    /// Takes the oldest txn's answer into account. `Ok(None)`: it ran out of order and
    /// everything from it on is being sent again.
    pub async fn settle(&mut self, answer: Answer) -> Result<Option<Acked>, Error> {
        let front = self.sent.pop_front().expect("a txn in flight");
        let r = answer?;
        if r.succeeded {
            self.careful = false;
            self.streak += 1;
            self.since_probe += 1;
            if self.since_probe >= PROBE_AFTER && self.ceiling < self.depth {
                self.ceiling += 1;
                self.since_probe = 0;
            }
            if self.streak >= GROW_AFTER * self.window && self.window < self.ceiling {
                self.window += 1;
                self.streak = 0;
            }
            self.pump();
            return Ok(Some(Acked {
                revision: front.revision,
                events: front.events,
            }));
        }
        let owner = r.responses.iter().find_map(|op| match &op.response {
            Some(Response::ResponseRange(rr)) => Some(rr.kvs.first().map(|kv| kv.value.clone())),
            _ => None,
        });
        match owner {
            Some(Some(v)) if v == self.fence.value => {}
            Some(v) => return Err(self.fence.lost(v.as_deref())),
            None => return Err(self.fence.lost(None)),
        }
        self.stats
            .txn_reorders_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The fence holds, so the chain broke: this txn ran before its predecessor. Every
        // later one fails the same way; wait for them and send all again, carefully.
        while let Some(a) = self.answers.next().await {
            if matches!(a, Ok(ref r) if r.succeeded) {
                return Err(Error::WatchBroken(
                    "a destination txn applied after its predecessor failed; reloading the checkpoint".into(),
                ));
            }
        }
        let mut again: VecDeque<Sent> = std::iter::once(front).chain(self.sent.drain(..)).collect();
        again.append(&mut self.queue);
        self.queue = again;
        self.careful = true;
        self.ceiling = self.window.saturating_sub(1).max(1);
        self.window = (self.window / 2).max(1);
        self.streak = 0;
        self.since_probe = 0;
        self.pump();
        Ok(None)
    }
}

/// The checkpoint's raw value at the destination (empty when there is none).
pub async fn current_value(dst: &Client, key: &[u8]) -> Result<Vec<u8>, Error> {
    let r = dst
        .range(RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        })
        .await?;
    Ok(r.kvs
        .into_iter()
        .next()
        .map(|kv| kv.value)
        .unwrap_or_default())
}
