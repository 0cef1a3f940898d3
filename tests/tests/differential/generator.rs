//! Seeded generation of KV operations over a ten-key space.
//!
//! Ten keys keep every range at most ten results long: etcd (Go >= 1.19) sorts such short
//! slices with insertion sort, so ties under a non-key sort keep ascending key order and the
//! oracle's output is well defined.

use cairn_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use cairn_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use cairn_proto::etcdserverpb::request_op::Request;
use cairn_proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use cairn_proto::mvccpb::KeyValue;
use cairn_storage::index::prefix_end;
use cairn_tests::prng::Rng;

use crate::ops::Op;

const KEYS: [&str; 10] = ["a", "a/1", "a/2", "b", "b/1", "b/2", "b/3", "c", "c/1", "d"];
/// Range bounds that are not themselves keys, so ranges start and end between keys too.
const BOUNDS: [&str; 4] = ["a/", "b0", "c/0", "e"];
const PREFIXES: [&str; 5] = ["a", "a/", "b/", "c", "d"];

/// What the generator knows about the store, refreshed from the oracle's responses.
#[derive(Default)]
pub struct State {
    /// Current store revision.
    pub revision: i64,
    /// Latest compaction revision (0 before the first).
    pub compacted: i64,
    /// Live keys at the current revision (for comparands that can actually match).
    pub live: Vec<KeyValue>,
}

pub struct Gen {
    rng: Rng,
}

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen {
            rng: Rng::new(seed),
        }
    }

    /// The next top-level operation.
    pub fn op(&mut self, state: &State) -> Op {
        match self.rng.below(100) {
            0..=29 => Op::Put(self.put()),
            30..=54 => Op::Range(self.range(state)),
            55..=66 => Op::Delete(self.delete()),
            67..=96 => Op::Txn(self.txn(state, 0)),
            _ => Op::Compact(self.compact(state)),
        }
    }

    fn key(&mut self) -> Vec<u8> {
        self.rng.pick(&KEYS).as_bytes().to_vec()
    }

    fn value(&mut self) -> Vec<u8> {
        if self.rng.chance(5) {
            Vec::new()
        } else {
            format!("v{}", self.rng.below(6)).into_bytes()
        }
    }

    /// (key, range_end) for one key, a range, a prefix or from-key.
    fn span(&mut self) -> (Vec<u8>, Vec<u8>) {
        match self.rng.below(10) {
            0..=3 => (self.key(), Vec::new()),
            4..=5 => {
                let all: Vec<&str> = KEYS.iter().chain(BOUNDS.iter()).copied().collect();
                let (a, b) = (*self.rng.pick(&all), *self.rng.pick(&all));
                (a.as_bytes().to_vec(), b.as_bytes().to_vec())
            }
            6..=8 => {
                let p = self.rng.pick(&PREFIXES).as_bytes().to_vec();
                let end = prefix_end(&p);
                (p, end)
            }
            _ => (self.key(), vec![0]),
        }
    }

    fn revision_near(&mut self, state: &State) -> i64 {
        self.rng
            .between((state.compacted - 2).max(0), state.revision + 2)
    }

    fn put(&mut self) -> PutRequest {
        let mut put = PutRequest {
            key: self.key(),
            value: self.value(),
            prev_kv: self.rng.chance(40),
            ..Default::default()
        };
        match self.rng.below(40) {
            0 => put.key.clear(), // "key is not provided"
            1 | 2 => {
                put.ignore_value = true;
                if !self.rng.chance(20) {
                    put.value.clear(); // otherwise "value is provided"
                }
            }
            3 => put.ignore_lease = true,
            4 => put.lease = 0x7ead, // never granted: "requested lease not found"
            _ => {}
        }
        put
    }

    fn range(&mut self, state: &State) -> RangeRequest {
        let (key, range_end) = self.span();
        let mut r = RangeRequest {
            key,
            range_end,
            ..Default::default()
        };
        if self.rng.chance(40) {
            r.limit = self.rng.between(1, 4);
        }
        if self.rng.chance(30) {
            r.revision = self.revision_near(state);
        }
        if self.rng.chance(40) {
            r.sort_order = *self
                .rng
                .pick(&[SortOrder::None, SortOrder::Ascend, SortOrder::Descend])
                as i32;
            r.sort_target = *self.rng.pick(&[
                SortTarget::Key,
                SortTarget::Version,
                SortTarget::Create,
                SortTarget::Mod,
                SortTarget::Value,
            ]) as i32;
        }
        r.serializable = self.rng.chance(20);
        r.keys_only = self.rng.chance(20);
        r.count_only = self.rng.chance(10);
        if self.rng.chance(25) {
            let filter = self.rng.below(4);
            let rev = self.rng.between(0, state.revision + 1);
            match filter {
                0 => r.min_mod_revision = rev,
                1 => r.max_mod_revision = rev,
                2 => r.min_create_revision = rev,
                _ => r.max_create_revision = rev,
            }
        }
        r
    }

    fn delete(&mut self) -> DeleteRangeRequest {
        let (key, range_end) = self.span();
        DeleteRangeRequest {
            key,
            range_end,
            prev_kv: self.rng.chance(50),
        }
    }

    fn compact(&mut self, state: &State) -> CompactionRequest {
        // Mostly a valid past revision; sometimes an old or a future one (both errors).
        let revision = if state.compacted < state.revision && self.rng.chance(80) {
            self.rng.between(state.compacted + 1, state.revision)
        } else {
            self.revision_near(state)
        };
        // Physical, so the backend (and so HashKV) is settled when the call returns.
        CompactionRequest {
            revision,
            physical: true,
        }
    }

    fn txn(&mut self, state: &State, depth: u32) -> TxnRequest {
        let compare = (0..self.rng.between(0, 3))
            .map(|_| self.compare(state))
            .collect();
        let success = (0..self.rng.between(0, 3))
            .map(|_| self.request_op(state, depth))
            .collect();
        let failure = (0..self.rng.between(0, 2))
            .map(|_| self.request_op(state, depth))
            .collect();
        TxnRequest {
            compare,
            success,
            failure,
        }
    }

    fn request_op(&mut self, state: &State, depth: u32) -> RequestOp {
        let request = match self.rng.below(10) {
            0..=3 => Request::RequestRange(self.range(state)),
            4..=6 => Request::RequestPut(self.put()),
            7..=8 => Request::RequestDeleteRange(self.delete()),
            _ if depth == 0 => Request::RequestTxn(self.txn(state, depth + 1)),
            _ => Request::RequestRange(self.range(state)),
        };
        RequestOp {
            request: Some(request),
        }
    }

    fn compare(&mut self, state: &State) -> Compare {
        // Half the time compare against a live key's real field so both outcomes occur.
        let live = if !state.live.is_empty() && self.rng.chance(50) {
            Some(self.rng.pick(&state.live).clone())
        } else {
            None
        };
        let key = live
            .as_ref()
            .map_or_else(|| self.key(), |kv| kv.key.clone());
        let nudge = self.rng.between(-1, 1);
        let target = self.rng.below(5);
        let (target, union) = match target {
            0 => {
                let v = live
                    .as_ref()
                    .map_or_else(|| self.rng.between(0, 3), |kv| kv.version + nudge);
                (CompareTarget::Version, TargetUnion::Version(v))
            }
            1 => {
                let base = live.as_ref().map_or(0, |kv| kv.create_revision);
                (
                    CompareTarget::Create,
                    TargetUnion::CreateRevision(base + nudge),
                )
            }
            2 => {
                let v = live.as_ref().map_or_else(
                    || self.rng.between(0, state.revision),
                    |kv| kv.mod_revision + nudge,
                );
                (CompareTarget::Mod, TargetUnion::ModRevision(v))
            }
            3 => {
                let v = match &live {
                    Some(kv) if nudge == 0 => kv.value.clone(),
                    _ => self.value(),
                };
                (CompareTarget::Value, TargetUnion::Value(v))
            }
            _ => (CompareTarget::Lease, TargetUnion::Lease(0)),
        };
        let result = *self.rng.pick(&[
            CompareResult::Equal,
            CompareResult::Greater,
            CompareResult::Less,
            CompareResult::NotEqual,
        ]);
        let range_end = if self.rng.chance(10) {
            prefix_end(&key)
        } else {
            Vec::new()
        };
        Compare {
            result: result as i32,
            target: target as i32,
            key,
            target_union: Some(union),
            range_end,
        }
    }
}
