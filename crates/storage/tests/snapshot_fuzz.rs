//! A fuzz-style test of the snapshot reader on stable Rust: thousands of deterministic
//! mutations of a valid snapshot (bit flips, overwrites, truncations, insertions, splices,
//! moved chunks), each read with `read_header` (what `status` does) and `verify`.
//!
//! - A raw mutation must never panic and must always be refused: the SHA-256 covers every
//!   byte, so no changed file may pass.
//! - A "re-sealed" mutation also fixes the header CRC and the digest, so the checks behind
//!   them (header decode, zstd frame, records, counts, HashKV) face the damage themselves:
//!   it must never panic; it may be accepted only if it still decodes to a consistent file.
//!
//! Failures print the seed and case number; `SNAPSHOT_FUZZ_SEED=<n>` and
//! `SNAPSHOT_FUZZ_CASES=<n>` rerun or widen the search.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::*;
use cairn_storage::snapshot::format::reseal;
use cairn_storage::snapshot::{SnapshotSource, read_header, verify};
use cairn_storage::{Op, Store, StoreOptions};
use common::{apply, compact, put};

/// SplitMix64: a seeded, reproducible sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// An offset, half the time inside the magic/length/header/CRC prefix.
    fn offset(&mut self, len: usize, prefix: usize) -> usize {
        if self.below(2) == 0 {
            self.below(prefix.min(len))
        } else {
            self.below(len)
        }
    }
}

/// A small snapshot with every kind of content: history, a tombstone, a compaction, a lease.
fn small_snapshot(dir: &Path) -> Vec<u8> {
    let s = Store::open(&dir.join("kv.redb"), StoreOptions::default()).unwrap();
    apply(&s, Op::LeaseGrant(LeaseGrantRequest { id: 7, ttl: 60 }));
    for i in 0..40 {
        let key = format!("k/{:02}", i % 15);
        let lease = if i % 6 == 0 { 7 } else { 0 };
        apply(&s, put(&key, format!("value {i}"), lease));
    }
    apply(
        &s,
        Op::DeleteRange(DeleteRangeRequest {
            key: "k/03".into(),
            range_end: "k/05".into(),
            ..Default::default()
        }),
    );
    apply(&s, compact(20));
    let source = SnapshotSource {
        cluster_id: 1,
        members: vec![],
        server_version: "3.5.0 (cairn fuzz)".into(),
    };
    let mut out = Vec::new();
    s.write_snapshot(&source, 3, &mut out, &mut |_| {}).unwrap();
    out
}

/// One mutation of `good`; the name says what was done, for the failure message.
fn mutate(rng: &mut Rng, good: &[u8], prefix: usize) -> (String, Vec<u8>) {
    let mut b = good.to_vec();
    let len = b.len();
    let what = match rng.below(7) {
        0 => {
            let at = rng.offset(len, prefix);
            let bit = rng.below(8);
            b[at] ^= 1 << bit;
            format!("flip bit {bit} at {at}")
        }
        1 => {
            let at = rng.offset(len, prefix);
            let n = 1 + rng.below(8).min(len - at - 1);
            let new = rng.bytes(n);
            b[at..at + n].copy_from_slice(&new);
            format!("overwrite {n} bytes at {at}")
        }
        2 => {
            let at = rng.offset(len, prefix);
            b.truncate(at);
            format!("truncate to {at}")
        }
        3 => {
            let at = rng.offset(len, prefix);
            // 512 keeps the size rule, so the deeper checks must catch it
            let n = if rng.below(3) == 0 {
                512
            } else {
                1 + rng.below(64)
            };
            let new = rng.bytes(n);
            b.splice(at..at, new);
            format!("insert {n} bytes at {at}")
        }
        4 => {
            let at = rng.offset(len, prefix);
            let cut = rng.below(64).min(len - at);
            let n = rng.below(64);
            let new = rng.bytes(n);
            b.splice(at..at + cut, new);
            format!("replace {cut} bytes at {at} with {n}")
        }
        5 => {
            let from = rng.below(len);
            let n = 1 + rng.below(256).min(len - from - 1);
            let to = rng.below(len - n);
            let chunk = good[from..from + n].to_vec();
            b[to..to + n].copy_from_slice(&chunk);
            format!("copy {n} bytes from {from} to {to}")
        }
        _ => {
            let n = 1 + rng.below(len - 1);
            b = [&good[len - n..], &good[..len - n]].concat();
            format!("rotate by {n}")
        }
    };
    (what, b)
}

#[test]
fn mutated_snapshots_never_panic_and_are_refused() {
    let seed: u64 = std::env::var("SNAPSHOT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cafe);
    let cases: usize = std::env::var("SNAPSHOT_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24_000);
    // a bound on wall time for slow machines; the count is what makes runs comparable
    let budget = Duration::from_secs(30);

    let dir = tempfile::tempdir().unwrap();
    let good = small_snapshot(dir.path());
    let path = dir.path().join("case.snap");
    std::fs::write(&path, &good).unwrap();
    let info = read_header(&path).unwrap();
    verify(&path, &mut |_| {}).expect("the unmutated snapshot verifies");
    let prefix = info.body_offset as usize + 16;

    let mut rng = Rng(seed);
    let started = Instant::now();
    let (mut refused, mut resealed_accepted, mut done) = (0usize, 0usize, 0usize);
    for case in 0..cases {
        if started.elapsed() > budget {
            break;
        }
        let (mut what, mut bytes) = mutate(&mut rng, &good, prefix);
        let resealed = case % 4 == 3;
        if resealed {
            reseal(&mut bytes);
            what += ", resealed";
        }
        std::fs::write(&path, &bytes).unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let header = read_header(&path);
            let full = verify(&path, &mut |_| {});
            (header.is_ok(), full.map(|(_, s)| s))
        }));
        let Ok((header_ok, full)) = outcome else {
            panic!("seed {seed} case {case} ({what}): the reader panicked");
        };
        if full.is_ok() {
            assert!(
                header_ok,
                "seed {seed} case {case} ({what}): verify accepted what read_header refused"
            );
        }
        match full {
            Err(_) => refused += 1,
            Ok(_) if bytes == good => {}
            Ok(summary) => {
                assert!(
                    resealed,
                    "seed {seed} case {case} ({what}): a changed file passed verify"
                );
                // only a change that still decodes consistently may pass once resealed
                let h = read_header(&path).unwrap().header;
                assert_eq!(summary.hash, h.hash, "seed {seed} case {case} ({what})");
                resealed_accepted += 1;
            }
        }
        done += 1;
    }
    eprintln!(
        "snapshot fuzz: seed {seed}, {done} cases in {:?}: {refused} refused, {resealed_accepted} resealed ones accepted",
        started.elapsed()
    );
    assert!(
        done >= cases.min(500),
        "only {done} cases ran within {budget:?}"
    );
}
