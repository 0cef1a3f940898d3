//! Compactions and defrags during the traffic, and what must hold after them: a watch from
//! before the compaction is refused with the compact revision, and a watch from any revision
//! after it gives the same events as the history.
//!
//! A compaction never goes past what every watcher has got (they must deliver the whole
//! history, and one started again after a break must not find its next revision compacted).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_proto::etcdserverpb::kv_client::KvClient;
use cairn_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use cairn_proto::etcdserverpb::{CompactionRequest, DefragmentRequest};

use super::watches::{self, Seen, Stream};
use crate::prng::Rng;

/// The compactions asked for: (revision, acknowledged).
pub type Compactions = Arc<Mutex<Vec<(i64, bool)>>>;

/// Compacts (to what every watcher has got) or defragments a member every second or two
/// until `until`; each is written in `log`.
pub async fn run(
    seed: u64,
    endpoints: Arc<Vec<String>>,
    watchers: Vec<Arc<Mutex<Stream>>>,
    until: Instant,
    compactions: Compactions,
    log: Arc<Mutex<Vec<String>>>,
    start: Instant,
) {
    let mut rng = Rng::new(seed ^ 0xc0ac7);
    let at = |start: Instant| format!("{:>6.2}s", start.elapsed().as_secs_f64());
    loop {
        let wait = Duration::from_millis(rng.between(1000, 2000) as u64);
        if Instant::now() + wait >= until {
            return;
        }
        tokio::time::sleep(wait).await;
        let member = rng.below(endpoints.len() as u64) as usize;
        let Ok(ch) = crate::grpc::channel(&endpoints[member], Duration::from_secs(2)).await else {
            continue;
        };
        if rng.chance(60) {
            let reached = watchers
                .iter()
                .map(|w| w.lock().expect("lock").last().unwrap_or(0))
                .min()
                .unwrap_or(0);
            let done = compactions
                .lock()
                .expect("lock")
                .iter()
                .map(|c| c.0)
                .max()
                .unwrap_or(0);
            if reached <= done + 1 {
                continue;
            }
            let rev = rng.between(done + 1, reached);
            let mut kv = KvClient::new(ch);
            let call = kv.compact(CompactionRequest {
                revision: rev,
                physical: rng.chance(50),
            });
            let ok = matches!(
                tokio::time::timeout(Duration::from_secs(5), call).await,
                Ok(Ok(_))
            );
            log.lock().expect("lock").push(format!(
                "{} compact to {rev} on m{}: {}",
                at(start),
                member + 1,
                if ok { "done" } else { "no answer" }
            ));
            compactions.lock().expect("lock").push((rev, ok));
        } else {
            let mut m = MaintenanceClient::new(ch);
            let call = m.defragment(DefragmentRequest {});
            let ok = matches!(
                tokio::time::timeout(Duration::from_secs(10), call).await,
                Ok(Ok(_))
            );
            log.lock().expect("lock").push(format!(
                "{} defrag m{}: {}",
                at(start),
                member + 1,
                if ok { "done" } else { "no answer" }
            ));
        }
    }
}

/// After the run: on every member, a watch from revision 1 is refused with the compact
/// revision (when a compaction was acknowledged), and watches from a few revisions after it
/// give the history's events from there.
pub async fn check(
    seed: u64,
    endpoints: &[String],
    compactions: &[(i64, bool)],
    history: &[Seen],
    end: i64,
) -> Vec<String> {
    let mut out = Vec::new();
    let acked = compactions.iter().filter(|c| c.1).map(|c| c.0).max();
    let asked = compactions.iter().map(|c| c.0).max().unwrap_or(0);
    let floor = acked.unwrap_or(0);
    if let Some(acked) = acked {
        for (i, ep) in endpoints.iter().enumerate() {
            let got = watch_once(ep, 1, end).await;
            match got.compacted {
                Some(c) if (acked..=asked).contains(&c) => {}
                other => out.push(format!(
                    "m{}: a watch from revision 1 after compacting to {acked} was {}",
                    i + 1,
                    match other {
                        Some(c) => format!("refused at compact revision {c}"),
                        None => format!("not refused ({} events)", got.events.len()),
                    }
                )),
            }
        }
    }
    let mut rng = Rng::new(seed ^ 0x5ea7);
    for _ in 0..3 {
        if end <= asked + 1 {
            break;
        }
        let from = rng.between(asked + 1, end);
        let member = rng.below(endpoints.len() as u64) as usize;
        let got = watch_once(&endpoints[member], from, end).await;
        let want: Vec<Seen> = history.iter().filter(|e| e.0 >= from).cloned().collect();
        out.extend(watches::check(
            &format!(
                "a watch from revision {from} on m{} (compacted to {floor})",
                member + 1
            ),
            &got,
            &want,
        ));
    }
    out
}

/// One watch from `from` until `end` (or 30 s, or a refusal).
async fn watch_once(endpoint: &str, from: i64, end: i64) -> Stream {
    let got = Arc::new(Mutex::new(Stream::default()));
    let done = Arc::new(Mutex::new(Some(end)));
    let _ = tokio::time::timeout(
        Duration::from_secs(30),
        watches::watch(endpoint.to_string(), from, false, got.clone(), done),
    )
    .await;
    got.lock().expect("lock").clone()
}
