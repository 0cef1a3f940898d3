//! The top loop: claim the destination prefix, read the checkpoint, copy or resume, watch;
//! on a transient failure, reconnect (the next endpoint) after a backoff and continue from
//! the checkpoint as the destination has it — so nothing is skipped or applied twice, even
//! when a txn's answer was lost. Compaction past the checkpoint, a lost destination lease,
//! or a source that moved behind the checkpoint lead to a full copy with prune.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use cairn_proto::etcdserverpb::RangeRequest;
use rand::Rng;

use crate::checkpoint::{self, Checkpoint, Partial, Resume, SyncState};
use crate::client::{Client, Pool};
use crate::config::Config;
use crate::destination::{commit, load_checkpoint};
use crate::error::{Error, Side};
use crate::fence::{self, Fence};
use crate::keys::show;
use crate::leases::Leases;
use crate::progress::{Event, Phase, Reporter, Stats, spawn_status};
use crate::sync::{Plan, full_sync};
use crate::watch_loop;

/// What every part of a running mirror shares.
pub struct Ctx {
    pub cfg: Config,
    pub src: Arc<Pool>,
    pub dst: Arc<Pool>,
    pub stats: Arc<Stats>,
    pub report: Reporter,
    pub mirror_id: String,
    pub identity: String,
    pub checkpoint_key: Vec<u8>,
    pub owner_key: Vec<u8>,
    pub leases: Option<Leases>,
    source_cluster: AtomicU64,
    attempt: AtomicU32,
}

impl Ctx {
    pub fn checkpoint(
        &self,
        revision: i64,
        sync: Option<SyncState>,
        partial: Option<Partial>,
    ) -> Checkpoint {
        Checkpoint {
            format: checkpoint::FORMAT,
            source_cluster: format!("{:x}", self.source_cluster.load(Relaxed)),
            source_prefix: hex::encode(&self.cfg.keys.source_prefix),
            revision,
            sync,
            partial,
            writer: self.mirror_id.clone(),
            time_ms: checkpoint::now_ms(),
        }
    }

    /// The destination lease a mirrored key gets (0: none).
    pub async fn dest_lease(&self, src: &Client, dst: &Client, lease: i64) -> Result<i64, Error> {
        match &self.leases {
            Some(l) if lease != 0 => l.ensure(src, dst, lease).await,
            _ => Ok(0),
        }
    }

    /// Resets the backoff: the mirror is getting somewhere.
    pub fn progress_made(&self) {
        self.attempt.store(0, Relaxed);
    }
}

/// Runs the mirror until `shutdown` completes (then `Ok`) or a fatal error. Events go to
/// `report`; `stats` can be read meanwhile (status line, metrics).
pub async fn run(
    cfg: Config,
    report: Reporter,
    stats: Arc<Stats>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    cfg.validate()?;
    let mirror_id = format!("{:016x}", rand::rng().random::<u64>());
    let identity = serde_json::json!({
        "mirror_id": mirror_id,
        "host": hostname(),
        "pid": std::process::id(),
        "source": cfg.source.endpoints.join(","),
        "started_ms": checkpoint::now_ms(),
    })
    .to_string();
    let ctx = Arc::new(Ctx {
        src: Arc::new(Pool::new(Side::Source, cfg.source.clone())?),
        dst: Arc::new(Pool::new(Side::Destination, cfg.destination.clone())?),
        checkpoint_key: cfg.keys.state_key("checkpoint"),
        owner_key: cfg.keys.state_key("owner"),
        leases: cfg.with_leases.then(Leases::default),
        cfg,
        stats,
        report,
        mirror_id,
        identity,
        source_cluster: AtomicU64::new(0),
        attempt: AtomicU32::new(0),
    });
    let status = spawn_status(
        ctx.stats.clone(),
        ctx.report.clone(),
        Duration::from_secs(1),
    );
    let lease_task = ctx
        .leases
        .is_some()
        .then(|| tokio::spawn(lease_loop(ctx.clone())));
    let probe = tokio::spawn(probe_source(ctx.clone()));
    let mut held: Option<(Fence, tokio::task::JoinHandle<()>)> = None;
    tokio::pin!(shutdown);
    let result = loop {
        let r = tokio::select! {
            r = session(&ctx, &mut held) => r,
            _ = &mut shutdown => break Ok(()),
        };
        let e = match r {
            Ok(()) => break Ok(()),
            Err(e) if !e.is_transient() => break Err(e),
            Err(e) => e,
        };
        match &e {
            Error::FenceLost { .. } => {
                if let Some((_, task)) = held.take() {
                    task.abort();
                }
            }
            Error::Rpc { side, .. } | Error::Connect { side, .. } => pool(&ctx, *side).invalidate(),
            Error::WatchBroken(_) => ctx.src.invalidate(),
            _ => {}
        }
        let attempt = ctx.attempt.fetch_add(1, Relaxed) + 1;
        let backoff = backoff(attempt);
        ctx.stats.retries_total.fetch_add(1, Relaxed);
        ctx.stats.set_phase(Phase::Retrying);
        let side = match &e {
            Error::Rpc { side, .. } | Error::Connect { side, .. } => Some(*side),
            Error::WatchBroken(_) => Some(Side::Source),
            _ => None,
        };
        (ctx.report)(Event::Retry {
            side,
            error: e.to_string(),
            attempt,
            backoff_ms: backoff.as_millis() as u64,
        });
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = &mut shutdown => break Ok(()),
        }
    };
    status.abort();
    probe.abort();
    if let Some(t) = lease_task {
        t.abort();
    }
    if let Some((f, task)) = held {
        task.abort();
        release(&ctx, &f).await;
    }
    if result.is_ok() {
        (ctx.report)(Event::Stopped {
            mirrored_revision: ctx.stats.mirrored_revision.load(Relaxed),
        });
    }
    result
}

fn pool(ctx: &Ctx, side: Side) -> &Pool {
    match side {
        Side::Source => &ctx.src,
        Side::Destination => &ctx.dst,
    }
}

/// 100 ms doubling to 5 s, with ±25 % jitter so that many mirrors do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let base = 100u64
        .saturating_mul(1 << attempt.min(6).saturating_sub(1))
        .min(5000);
    let jitter = rand::rng().random_range(0.75..1.25);
    Duration::from_millis((base as f64 * jitter) as u64)
}

/// On a clean stop, give the prefix back at once instead of letting the lease run out.
async fn release(ctx: &Ctx, f: &Fence) {
    let Ok(dst) = ctx.dst.get().await else { return };
    let req = cairn_proto::etcdserverpb::LeaseRevokeRequest { id: f.lease };
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        dst.lease().lease_revoke(dst.request(req, true)),
    )
    .await;
}

async fn session(
    ctx: &Arc<Ctx>,
    held: &mut Option<(Fence, tokio::task::JoinHandle<()>)>,
) -> Result<(), Error> {
    let dst = ctx.dst.get().await?;
    let fence = match held {
        Some((f, _)) => f.clone(),
        None => {
            let f = fence::acquire(
                &dst,
                ctx.owner_key.clone(),
                &ctx.identity,
                ctx.cfg.fence_ttl,
            )
            .await?;
            let task = tokio::spawn(fence::keep_alive(ctx.dst.clone(), f.clone()));
            *held = Some((f.clone(), task));
            (ctx.report)(Event::Started {
                mirror_id: ctx.mirror_id.clone(),
                checkpoint_key: show(&ctx.checkpoint_key),
            });
            f
        }
    };
    let (stored, _) = load_checkpoint(&dst, &ctx.checkpoint_key).await?;
    let src = ctx.src.get().await?;
    let (start, end) = ctx.cfg.keys.source_range();
    let head = src
        .range(RangeRequest {
            key: start,
            range_end: end,
            count_only: true,
            ..Default::default()
        })
        .await?;
    let header = head.header.unwrap_or_default();
    ctx.source_cluster.store(header.cluster_id, Relaxed);
    ctx.stats.saw_source(header.revision);
    let resync = |reason: &str| {
        let plan = Resume::Sync {
            revision: 0,
            copied_below: None,
            copy_done: false,
            prune: true,
        };
        (plan, reason.to_string())
    };
    let (mut next, mut reason) = match stored {
        None if ctx.cfg.start_revision > 0 => {
            let rev = ctx.cfg.start_revision;
            let c = ctx.checkpoint(rev, None, None);
            commit(&dst, &fence, Vec::new(), Some((&ctx.checkpoint_key, &c))).await?;
            (
                Resume::Watch {
                    revision: rev,
                    skip: 0,
                },
                String::new(),
            )
        }
        None => (
            Resume::Sync {
                revision: 0,
                copied_below: None,
                copy_done: false,
                prune: ctx.cfg.prune_first_sync,
            },
            "first copy (no checkpoint at the destination)".to_string(),
        ),
        Some(c) => {
            let mine = ctx.checkpoint(0, None, None);
            if c.source_cluster != mine.source_cluster || c.source_prefix != mine.source_prefix {
                if !ctx.cfg.force_resync {
                    return Err(Error::CheckpointMismatch(format!(
                        "the destination's checkpoint {} was written by a mirror of source cluster {} prefix {:?}, not cluster {} prefix {:?}; \
                         if the source was replaced on purpose, pass --force-resync to copy it afresh (destination keys it lacks are deleted)",
                        show(&ctx.checkpoint_key),
                        c.source_cluster,
                        show(&hex::decode(&c.source_prefix).unwrap_or_default()),
                        mine.source_cluster,
                        show(&ctx.cfg.keys.source_prefix),
                    )));
                }
                resync("--force-resync: the checkpoint names another source")
            } else {
                let r = c.resume().map_err(|reason| Error::BadCheckpoint {
                    key: show(&ctx.checkpoint_key),
                    reason,
                })?;
                match r {
                    Resume::Watch { revision, .. } if revision > header.revision => {
                        resync(&format!(
                            "the source is at revision {} but the checkpoint says {revision} is mirrored (source restored from a backup?)",
                            header.revision
                        ))
                    }
                    r => (r, "resuming an interrupted copy".to_string()),
                }
            }
        }
    };
    match &next {
        Resume::Watch { revision, .. } => (ctx.report)(Event::Resuming {
            revision: *revision,
            phase: Phase::Watching,
        }),
        Resume::Sync { revision, .. } if *revision > 0 => (ctx.report)(Event::Resuming {
            revision: *revision,
            phase: Phase::Syncing,
        }),
        _ => {}
    }
    let mut reconciled = false;
    loop {
        let outcome = match next.clone() {
            Resume::Sync {
                revision,
                copied_below,
                copy_done,
                prune,
            } => {
                let plan = Plan {
                    revision,
                    copied_below,
                    copy_done,
                    prune,
                    reason: std::mem::take(&mut reason),
                };
                reconciled = true; // the copy attaches every lease it meets
                full_sync(ctx, &src, &dst, &fence, plan)
                    .await
                    .map(|rev| Resume::Watch {
                        revision: rev,
                        skip: 0,
                    })
            }
            Resume::Watch { revision, skip } => {
                let check = match &ctx.leases {
                    Some(l) if !reconciled => {
                        l.reconcile(&src, &dst, &ctx.cfg.keys, revision).await
                    }
                    _ => Ok(()),
                };
                reconciled = true;
                match check {
                    Ok(()) => watch_loop::run(ctx, &src, &dst, &fence, revision, skip)
                        .await
                        .map(|()| next.clone()),
                    Err(e) => Err(e),
                }
            }
        };
        match outcome {
            Ok(n) => next = n,
            Err(Error::Compacted { wanted, compacted }) => {
                ctx.stats.resyncs_total.fetch_add(1, Relaxed);
                let (n, r) = resync(&format!(
                    "the source compacted past the mirror (needed revision {wanted}, compacted through {compacted})"
                ));
                (next, reason) = (n, r);
            }
            Err(Error::NeedResync(why)) => {
                ctx.stats.resyncs_total.fetch_add(1, Relaxed);
                (next, reason) = resync(&why);
            }
            Err(e) => return Err(e),
        }
        if !reason.is_empty() {
            (ctx.report)(Event::Warning {
                message: format!("full copy with prune: {reason}"),
            });
        }
    }
}

/// Reads the source's revision every second, so that the lag is measured against where the
/// source is, not against what the (possibly backed-up) watch stream has delivered so far.
async fn probe_source(ctx: Arc<Ctx>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(src) = ctx.src.get().await
            && let Ok(rev) = src.current_revision().await
        {
            ctx.stats.saw_source(rev);
        }
    }
}

/// Renews and revokes destination leases (`--with-leases`) in the background.
async fn lease_loop(ctx: Arc<Ctx>) {
    let Some(leases) = &ctx.leases else { return };
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (Ok(src), Ok(dst)) = (ctx.src.get().await, ctx.dst.get().await) else {
            continue;
        };
        let mirrored = ctx.stats.mirrored_revision.load(Relaxed);
        if let Err(e) = leases.tick(&src, &dst, mirrored).await {
            tracing::debug!(error = %e, "lease poll failed; next round retries");
        }
        ctx.stats.leases_active.store(leases.active(), Relaxed);
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
