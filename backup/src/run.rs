//! `backup run`: a full snapshot, then every revision after it from a watch, in segments
//! sealed by size or age; a new full snapshot on schedule; resumes after the last sealed
//! segment (a crash loses at most the open segment, which the watch replays), so the chain
//! never has a gap or a repeat. Works against Cairn and etcd alike (a watch, a snapshot).
//!
//! A watch that can no longer start where the chain ends (the server compacted past it while
//! the backup was down) is a gap no watch can fill: the backup takes a new full snapshot and
//! says so. A revision that arrives out of turn (the server skipped or repeated one) stops
//! the backup with the two revisions named, rather than writing a chain a restore would get
//! wrong.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_client::snapshot::{Output, healthy_endpoint, save};
use cairn_client::{Client, ClientError, Dialer};
use cairn_proto::etcdserverpb::watch_request::RequestUnion;
use cairn_proto::etcdserverpb::{
    LeaseLeasesRequest, LeaseTimeToLiveRequest, RangeRequest, WatchCreateRequest, WatchRequest,
    WatchResponse,
};
use cairn_proto::mvccpb::Event;
use cairn_storage::snapshot::SnapshotFile;
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use crate::crypt::{CryptError, Recipients, SUFFIX, encrypt_file};
use crate::lock::{LockError, StoreLock, lock_dir};
use crate::progress::{Progress, RETRY_PAUSE, Reporter};
use crate::retention::{self, Retention};
use crate::segment::{Change, LeaseSeen, SegmentError, SegmentWriter, parse_sealed_name};
use crate::stats::Stats;
use crate::target::{Target, TargetError};
use crate::timeline::{Timeline, full_name, is_full_name};
use crate::upload::Uploader;

#[derive(Debug)]
pub struct RunConfig {
    pub target: Arc<Target>,
    /// Where segments and full snapshots are written: the target itself when it is a
    /// directory; for an object store, a local directory they wait in until uploaded.
    pub spool: PathBuf,
    /// A new full snapshot this long after the last one.
    pub full_every: Duration,
    /// A segment is sealed at this many compressed bytes...
    pub segment_bytes: u64,
    /// ...or this long after it got its first change (what a crash can lose at most).
    pub segment_age: Duration,
    /// What is removed after each new full snapshot.
    pub retention: Retention,
    /// How long a stopping run goes on uploading what its spool holds.
    pub upload_grace: Duration,
    /// How often a status line is reported (lag, spool).
    pub status_every: Duration,
    /// What the status lines and the metrics page show.
    pub stats: Arc<Stats>,
    /// The public keys every sealed file is encrypted to (`--encrypt-to`), if any.
    pub encrypt: Option<Recipients>,
}

#[derive(Debug, Error)]
pub enum BackupError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Crypt(#[from] CryptError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{}: the snapshot just saved does not open: {why}", path.display())]
    Snapshot { path: PathBuf, why: String },
    #[error(
        "the watch delivered revision {got} after revision {last}: revisions in between are missing, or one came twice; the backup stopped so that it does not write a chain that restores wrong (run it again: it resumes after the last sealed segment)"
    )]
    OutOfTurn { last: i64, got: i64 },
    #[error("the watch was cancelled: {0}")]
    Cancelled(String),
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs until `stop` completes (then seals the open segment, uploads what it can within the
/// grace, and returns) or a failure that retrying cannot fix.
pub async fn run(
    dialer: &Dialer,
    cfg: &RunConfig,
    stop: impl Future<Output = ()>,
    report: &Reporter,
) -> Result<(), BackupError> {
    // the spool (for a directory target, the backup itself) is this process's alone...
    let _spool_lock = lock_dir(&cfg.spool)?;
    // ...and so is an object-store target
    let uploader = if cfg.target.is_remote() {
        let lock = StoreLock::acquire(&cfg.target, &cfg.spool).await?;
        Some(Uploader::start(
            cfg.target.clone(),
            lock,
            cfg.retention,
            report.clone(),
            cfg.stats.clone(),
        ))
    } else {
        None
    };
    let sink = Sink {
        target: cfg.target.clone(),
        uploader,
        retention: cfg.retention,
        report: report.clone(),
        stats: cfg.stats.clone(),
        encrypt: cfg.encrypt.clone(),
    };
    let status = {
        let (stats, report, every) = (cfg.stats.clone(), report.clone(), cfg.status_every);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                report(Progress::Status(stats.status()));
            }
        })
    };
    let result = follow(dialer, cfg, stop, &sink).await;
    status.abort();
    if let Some(uploader) = sink.uploader {
        let left = uploader.finish(cfg.upload_grace).await;
        if left > 0 {
            report(Progress::Spooled {
                files: left,
                spool: cfg.spool.clone(),
            });
        }
    }
    result
}

async fn follow(
    dialer: &Dialer,
    cfg: &RunConfig,
    stop: impl Future<Output = ()>,
    sink: &Sink,
) -> Result<(), BackupError> {
    let report = &sink.report;
    let spooled = Timeline::load(&cfg.spool)?;
    for part in &spooled.unsealed {
        // what it held is after the last sealed segment: the watch delivers it again
        std::fs::remove_file(part).map_err(io_at(part))?;
    }
    // encrypting renames files: read the spool again after
    let spooled = match &cfg.encrypt {
        Some(to) => {
            encrypt_plain_files(&cfg.spool, to)?;
            Timeline::load(&cfg.spool)?
        }
        None => spooled,
    };
    let mut entries = Vec::new();
    let stored = Timeline::from_entries(cfg.target.entries().await?);
    if let Some(chain) = stored.newest() {
        let ms = chain
            .full
            .modified
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        sink.stats.full_stored(chain.full.revision, ms);
        sink.stats.stored(chain.last);
    }
    if cfg.target.is_remote() {
        // files a stopped run left in the spool go first, oldest first
        let mut waiting: Vec<(i64, PathBuf)> = spooled
            .fulls
            .iter()
            .map(|f| (f.revision, f.path.clone()))
            .chain(
                spooled
                    .segments
                    .iter()
                    .map(|s| (s.first - 1, s.path.clone())),
            )
            .collect();
        waiting.sort();
        for (_, path) in waiting {
            sink.stored(path);
        }
        entries = cfg.target.entries().await?;
    }
    entries.extend(crate::target::dir_entries(&cfg.spool)?);
    let timeline = Timeline::from_entries(entries);
    let mut state = match timeline.newest() {
        Some(chain) => {
            report(Progress::Resumed { after: chain.last });
            // the schedule counts from when the newest full snapshot was written
            let age = chain
                .full
                .modified
                .and_then(|t| t.elapsed().ok())
                .unwrap_or_default();
            Position {
                after: chain.last,
                full_at: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
                full_due: age >= cfg.full_every,
                compacted: false,
            }
        }
        None => Position {
            after: 0,
            full_at: Instant::now(),
            full_due: true,
            compacted: false,
        },
    };
    let stop = std::pin::pin!(stop);
    let mut stop = stop;
    loop {
        match pass(dialer, cfg, &mut state, sink, &mut stop).await {
            Ok(Done::Stopped) => return Ok(()),
            Ok(Done::Again) => {}
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retry(why)) => {
                sink.stats.retried();
                report(Progress::Retrying { why });
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_PAUSE) => {}
                    _ = &mut stop => return Ok(()),
                }
            }
        }
    }
}

/// Encrypts the sealed files of `spool` that are not yet: a run stopped between sealing and
/// encrypting, or one without `--encrypt-to` (the plain file goes when its encrypted twin
/// is complete, so the one left by a stop right after the encryption is removed).
fn encrypt_plain_files(spool: &Path, to: &Recipients) -> Result<(), BackupError> {
    for e in crate::target::dir_entries(spool)? {
        let sealed_name = is_full_name(&e.name) || parse_sealed_name(&e.name).is_some();
        if !sealed_name {
            continue;
        }
        let twin = PathBuf::from(format!("{}{SUFFIX}", e.path.display()));
        if twin.exists() {
            std::fs::remove_file(&e.path).map_err(io_at(&e.path))?;
        } else {
            encrypt_file(&e.path, to)?;
        }
    }
    Ok(())
}

/// Where finished files go: a directory target has them already (retention runs after each
/// full snapshot); an object store's go to the uploads. Encrypted first, with `--encrypt-to`.
struct Sink {
    target: Arc<Target>,
    uploader: Option<Uploader>,
    retention: Retention,
    report: Reporter,
    stats: Arc<Stats>,
    encrypt: Option<Recipients>,
}

impl Sink {
    /// The sealed file at `path` as it is kept: encrypted, with `--encrypt-to`.
    async fn keep(&self, path: PathBuf) -> Result<PathBuf, BackupError> {
        let Some(to) = self.encrypt.clone() else {
            return Ok(path);
        };
        let at = path.clone();
        tokio::task::spawn_blocking(move || encrypt_file(&path, &to))
            .await
            .map_err(|e| BackupError::Io {
                path: at,
                source: std::io::Error::other(format!("the encryption stopped: {e}")),
            })?
            .map_err(BackupError::from)
    }

    /// A left-over file of the spool.
    fn stored(&self, path: PathBuf) {
        if let Some(u) = &self.uploader {
            u.send(path);
        }
    }

    /// A segment sealed up to `last`.
    fn sealed(&self, path: PathBuf, last: i64, bytes: u64) {
        self.stats.sealed(last, bytes);
        match &self.uploader {
            Some(u) => u.send(path),
            None => self.stats.stored(last),
        }
    }

    async fn full_stored(&self, path: PathBuf, revision: i64, bytes: u64) {
        self.stats.full_saved(revision, bytes);
        match &self.uploader {
            Some(u) => u.send(path),
            None => {
                self.stats.full_stored(revision, now_ms());
                retention::apply(&self.target, self.retention, &self.report).await
            }
        }
    }

    /// Stops the run when the uploads stopped for good.
    fn check(&self) -> Result<(), BackupError> {
        match self.uploader.as_ref().and_then(Uploader::failure) {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

/// How a pass ended without a failure.
enum Done {
    /// A full snapshot is due: the next pass takes it.
    Again,
    /// `stop` completed; the open segment is sealed.
    Stopped,
}

/// Where the chain stands.
struct Position {
    /// Every revision up to this one is in a full snapshot or a sealed segment.
    after: i64,
    full_at: Instant,
    full_due: bool,
    /// The server compacted past `after`: the next snapshot starts the chain anew.
    compacted: bool,
}

enum Failure {
    /// The connection or the server: try again from `Position::after`.
    Retry(String),
    Fatal(BackupError),
}

impl From<BackupError> for Failure {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::Client(c) => Failure::Retry(c.to_string()),
            other => Failure::Fatal(other),
        }
    }
}

/// One connection's worth: a full snapshot if due, then the watch into segments until the
/// next full snapshot is due, `stop` completes, or something fails. The open segment is
/// sealed before this returns (it is complete up to its last revision), so
/// `Position::after` is always the end of what is sealed.
async fn pass(
    dialer: &Dialer,
    cfg: &RunConfig,
    pos: &mut Position,
    sink: &Sink,
    stop: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<Done, Failure> {
    let report = &sink.report;
    let client = tokio::select! {
        c = healthy_endpoint(dialer) => c.map_err(BackupError::from)?,
        _ = stop.as_mut() => return Ok(Done::Stopped),
    };
    if pos.full_due {
        // a snapshot cut short by `stop` leaves only `full.part`, removed at the next start
        let (revision, bytes, path) = tokio::select! {
            saved = full_snapshot(&client, &cfg.spool, dialer) => saved?,
            _ = stop.as_mut() => return Ok(Done::Stopped),
        };
        let path = sink.keep(path).await?;
        report(Progress::Full {
            revision,
            bytes,
            path: path.clone(),
        });
        sink.full_stored(path, revision, bytes).await;
        // after a scheduled snapshot the watch goes on where it was, so the chain before it
        // reaches it (every revision stays restorable); after a compaction past the chain,
        // or the first snapshot, it starts after the snapshot
        let after = if pos.after == 0 || pos.compacted {
            revision
        } else {
            pos.after
        };
        *pos = Position {
            after,
            full_at: Instant::now(),
            full_due: false,
            compacted: false,
        };
    }
    let (req_tx, req_rx) = mpsc::channel(1);
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: vec![0],
            range_end: vec![0],
            start_revision: pos.after + 1,
            progress_notify: true,
            ..Default::default()
        })),
    };
    req_tx
        .send(create)
        .await
        .map_err(|_| Failure::Retry("the watch request stream closed".into()))?;
    let mut stream = client
        .watch()
        .watch(tonic::Request::new(ReceiverStream::new(req_rx)))
        .await
        .map_err(|s| BackupError::from(client.err(s)))?
        .into_inner();
    let mut open = Open {
        dir: cfg.spool.clone(),
        writer: None,
        first_at: None,
        pending: None,
    };
    let mut look_tick = tokio::time::interval(LOOK_EVERY);
    let mut leases = Leases::default();
    let mut compaction = Compaction::default();
    // a segment is sealed within a quarter of its age limit past it
    let tick = (cfg.segment_age / 4)
        .min(Duration::from_secs(1))
        .max(Duration::from_millis(50));
    let mut ticker = tokio::time::interval(tick);
    let result = loop {
        tokio::select! {
            msg = stream.next() => {
                let resp = match msg {
                    Some(Ok(resp)) => resp,
                    Some(Err(s)) => break Err(Failure::Retry(cairn_client::error::describe(&s))),
                    None => break Err(Failure::Retry("the server closed the watch".into())),
                };
                if let Some(h) = &resp.header {
                    sink.stats.saw_source(h.revision);
                }
                if let Err(e) = leases.learn(&client, &resp).await {
                    break Err(e);
                }
                match on_response(&resp, pos, &mut open, &mut leases, sink) {
                    Ok(true) => {}
                    Ok(false) => break Ok(Done::Again),
                    Err(e) => break Err(e),
                }
                if open.writer.as_ref().is_some_and(|w| w.bytes() >= cfg.segment_bytes)
                    && let Err(e) = open.seal(pos, sink)
                {
                    break Err(e.into());
                }
            }
            _ = ticker.tick() => {
                if open.first_at.is_some_and(|t| t.elapsed() >= cfg.segment_age)
                    && let Err(e) = open.seal(pos, sink)
                {
                    break Err(e.into());
                }
                if let Err(e) = sink.check() {
                    break Err(Failure::Fatal(e));
                }
                if pos.full_at.elapsed() >= cfg.full_every {
                    pos.full_due = true;
                    break Ok(Done::Again);
                }
            }
            _ = look_tick.tick() => {
                let last = open.last_revision(pos);
                let looked = match leases.look(&client).await {
                    Ok(look) => compaction.look(&client, last).await.map(|c| (look, c)),
                    Err(e) => Err(e),
                };
                let look = match looked {
                    Ok((look, None)) => look,
                    Ok((look, Some(compacted_to))) => {
                        let mut look = look.unwrap_or_default();
                        look.compacted_to = compacted_to;
                        Some(look)
                    }
                    Err(e) => break Err(e),
                };
                if let Some(look) = look
                    && let Err(e) = open.observe(look)
                {
                    break Err(e);
                }
            }
            _ = stop.as_mut() => break Ok(Done::Stopped),
        }
    };
    // what was written is complete up to its last revision: sealed, not thrown away
    open.seal(pos, sink)?;
    drop(req_tx);
    result
}

/// Takes one response's events into the open segment; `Ok(false)`: start over with a full
/// snapshot (compacted past the chain).
fn on_response(
    resp: &WatchResponse,
    pos: &mut Position,
    open: &mut Open,
    leases: &mut Leases,
    sink: &Sink,
) -> Result<bool, Failure> {
    if resp.compact_revision != 0 {
        (sink.report)(Progress::Compacted {
            after: pos.after,
            compact_revision: resp.compact_revision,
        });
        pos.full_due = true;
        pos.compacted = true;
        return Ok(false);
    }
    if resp.canceled {
        return Err(Failure::Fatal(BackupError::Cancelled(
            if resp.cancel_reason.is_empty() {
                "no reason given".into()
            } else {
                resp.cancel_reason.clone()
            },
        )));
    }
    let mut rest = resp.events.as_slice();
    while let Some(first) = rest.first() {
        let revision = first.kv.as_ref().map_or(0, |kv| kv.mod_revision);
        let n = rest
            .iter()
            .take_while(|e| e.kv.as_ref().map_or(0, |kv| kv.mod_revision) == revision)
            .count();
        let (events, tail) = rest.split_at(n);
        rest = tail;
        let seen = leases.take_new(events);
        open.append(pos, revision, events, seen, &sink.stats)?;
    }
    Ok(true)
}

/// The segment being written in this pass.
struct Open {
    dir: PathBuf,
    writer: Option<SegmentWriter>,
    first_at: Option<Instant>,
    /// What a look found while no segment was open: written with the next change.
    pending: Option<Look>,
}

impl Open {
    fn append(
        &mut self,
        pos: &Position,
        revision: i64,
        events: &[Event],
        leases: Vec<LeaseSeen>,
        stats: &Stats,
    ) -> Result<(), Failure> {
        let last = self.last_revision(pos);
        if revision != last + 1 {
            return Err(Failure::Fatal(BackupError::OutOfTurn {
                last,
                got: revision,
            }));
        }
        if self.writer.is_none() {
            self.writer =
                Some(SegmentWriter::create(&self.dir, pos.after).map_err(BackupError::from)?);
            self.first_at = Some(Instant::now());
            stats.opened(revision);
        }
        let writer = self.writer.as_mut().expect("created above");
        let look = self.pending.take().unwrap_or_default();
        let mut all = look.granted;
        all.extend(leases);
        writer
            .append(&Change {
                revision,
                unix_ms: now_ms(),
                events: events.to_vec(),
                compacted_to: look.compacted_to,
                leases: all,
                revoked: look.revoked,
                census: look.census,
            })
            .map_err(BackupError::from)?;
        Ok(())
    }

    /// The last revision written: the open segment's, or the chain's end.
    fn last_revision(&self, pos: &Position) -> i64 {
        self.writer
            .as_ref()
            .map_or(pos.after, |w| w.last_revision())
    }

    /// Records what a look at the server found: after the open segment's last change, or
    /// with the next change when no segment is open (a segment starts with a revision).
    fn observe(&mut self, look: Look) -> Result<(), Failure> {
        match self.writer.as_mut().filter(|w| w.records() > 0) {
            Some(w) => w
                .append(&Change {
                    revision: w.last_revision(),
                    unix_ms: now_ms(),
                    events: Vec::new(),
                    compacted_to: look.compacted_to,
                    leases: look.granted,
                    revoked: look.revoked,
                    census: look.census,
                })
                .map_err(|e| Failure::Fatal(e.into())),
            None => {
                let p = self.pending.get_or_insert_with(Look::default);
                p.census |= look.census;
                p.compacted_to = p.compacted_to.max(look.compacted_to);
                // a lease asked about again replaces what was asked before (an idle server
                // keeps a look waiting for its next change)
                p.granted
                    .retain(|g| !look.granted.iter().any(|n| n.id == g.id));
                p.granted.extend(look.granted);
                p.revoked.extend(look.revoked);
                Ok(())
            }
        }
    }

    /// Seals the open segment (encrypted then, with `--encrypt-to`: a segment is small, so
    /// in line).
    fn seal(&mut self, pos: &mut Position, sink: &Sink) -> Result<(), BackupError> {
        self.first_at = None;
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let bytes = writer.bytes();
        if let Some((path, seal)) = writer.seal()? {
            // sealed: a resume encrypts it if this stops before that
            pos.after = seal.last_revision;
            let path = match &sink.encrypt {
                Some(to) => encrypt_file(&path, to)?,
                None => path,
            };
            (sink.report)(Progress::Sealed {
                first: seal.first_revision,
                last: seal.last_revision,
                records: seal.records,
                bytes,
                path: path.clone(),
            });
            sink.sealed(path, seal.last_revision, bytes);
        }
        Ok(())
    }
}

/// How often the server's lease list and compaction are looked at: lease grants and revokes
/// and compactions do not move the revision, so no watch tells of them.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// A lease's time left is asked again when its last answer is this old...
const LEASE_REFRESH: Duration = Duration::from_secs(5);
/// ...for at most this many leases per look (the oldest answers first).
const LEASE_REFRESH_MAX: usize = 200;

/// What a look at the server found since the previous one.
#[derive(Debug, Default)]
struct Look {
    granted: Vec<LeaseSeen>,
    revoked: Vec<i64>,
    /// The first look of a pass: `granted` is every lease there is.
    census: bool,
    /// The server compacted to this revision (0: not since the last look).
    compacted_to: i64,
}

/// The leases keys are put on, as far as this pass has described them: a watch names only a
/// lease's ID, so each new one is asked about (`LeaseTimeToLive`) before its first change is
/// written, and recorded with that change. The lease list is looked at every [`LOOK_EVERY`]
/// for the grants and revokes no change records: the first look of a pass records all of
/// them (a census: a restore past it drops the leases it does not name), the next ones what
/// changed.
#[derive(Default)]
struct Leases {
    /// Each lease's last description, and when it was asked.
    described: std::collections::HashMap<i64, (LeaseSeen, Instant)>,
    recorded: std::collections::HashSet<i64>,
    /// The lease IDs at the last look (`None` before the first).
    alive: Option<std::collections::HashSet<i64>>,
}

impl Leases {
    /// Looks at the lease list; `None` when nothing changed since the last look.
    async fn look(&mut self, client: &Client) -> Result<Option<Look>, Failure> {
        let listed = client
            .lease()
            .lease_leases(client.request(LeaseLeasesRequest {}))
            .await
            .map_err(|s| BackupError::from(client.err(s)))?
            .into_inner();
        let now: std::collections::HashSet<i64> = listed.leases.iter().map(|l| l.id).collect();
        let census = self.alive.is_none();
        let before = self.alive.take().unwrap_or_default();
        let mut look = Look {
            census,
            ..Default::default()
        };
        let mut new: Vec<i64> = now
            .iter()
            .copied()
            .filter(|id| census || (!before.contains(id) && !self.recorded.contains(id)))
            .collect();
        new.sort_unstable();
        for id in new {
            let seen = self.describe(client, id).await?;
            if seen.ttl >= 0 || seen.granted_ttl > 0 {
                self.recorded.insert(id);
                look.granted.push(seen);
            }
        }
        // the time left of the others, asked again now and then: a keep-alive moves it and
        // no watch or list tells of one, and a restore starts each lease's clock from it
        let mut stale: Vec<(Instant, i64)> = now
            .iter()
            .filter(|id| !look.granted.iter().any(|g| g.id == **id))
            .filter_map(|id| self.described.get(id).map(|(_, at)| (*at, *id)))
            .filter(|(at, _)| at.elapsed() >= LEASE_REFRESH)
            .collect();
        stale.sort_unstable();
        for (_, id) in stale.into_iter().take(LEASE_REFRESH_MAX) {
            self.described.remove(&id);
            let seen = self.describe(client, id).await?;
            if seen.ttl >= 0 {
                look.granted.push(seen);
            }
        }
        look.revoked = before.difference(&now).copied().collect();
        look.revoked.sort_unstable();
        self.alive = Some(now);
        Ok((census || !look.granted.is_empty() || !look.revoked.is_empty()).then_some(look))
    }

    /// A lease's granted TTL and TTL left, asked once per pass.
    async fn describe(&mut self, client: &Client, id: i64) -> Result<LeaseSeen, Failure> {
        if let Some((seen, _)) = self.described.get(&id) {
            return Ok(seen.clone());
        }
        let r = client
            .lease()
            .lease_time_to_live(client.request(LeaseTimeToLiveRequest { id, keys: false }))
            .await
            .map_err(|s| BackupError::from(client.err(s)))?
            .into_inner();
        let seen = LeaseSeen {
            id,
            granted_ttl: r.granted_ttl,
            ttl: r.ttl,
            seen_unix_ms: now_ms(),
        };
        self.described.insert(id, (seen.clone(), Instant::now()));
        Ok(seen)
    }

    /// Describes the leases of `resp`'s puts not described yet.
    async fn learn(&mut self, client: &Client, resp: &WatchResponse) -> Result<(), Failure> {
        for e in &resp.events {
            if let Some(id) = e.kv.as_ref().map(|kv| kv.lease).filter(|id| *id != 0) {
                self.describe(client, id).await?;
            }
        }
        Ok(())
    }

    /// The descriptions of `events`' leases not recorded yet in this pass.
    fn take_new(&mut self, events: &[Event]) -> Vec<LeaseSeen> {
        let mut out = Vec::new();
        for id in events
            .iter()
            .filter_map(|e| e.kv.as_ref())
            .map(|kv| kv.lease)
        {
            if id != 0
                && self.recorded.insert(id)
                && let Some((seen, _)) = self.described.get(&id)
            {
                out.push(seen.clone());
            }
        }
        out
    }
}

/// The server's compaction, as far as this pass has seen it. No watch tells of a compaction,
/// but a read at a revision below the compact revision is refused: one read at the last
/// revision recorded tells whether it moved, and a search over the revisions since finds
/// where to (a few dozen reads, only when it moved). A compaction past what the chain holds
/// is left for a later look (the watch, behind it, is cancelled as compacted meanwhile if
/// it must be).
#[derive(Default)]
struct Compaction {
    /// The compact revision recorded in this pass (0: none yet).
    known: i64,
}

impl Compaction {
    /// The server's compact revision when it moved past the one recorded and is at or below
    /// `last`, the last revision written.
    async fn look(&mut self, client: &Client, last: i64) -> Result<Option<i64>, Failure> {
        if last < 1 || readable(client, self.known.max(1)).await? {
            return Ok(None);
        }
        if !readable(client, last).await? {
            return Ok(None);
        }
        // the smallest readable revision in (known, last]: the compact revision
        let (mut lo, mut hi) = (self.known + 1, last);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if readable(client, mid).await? {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        self.known = lo;
        Ok(Some(lo))
    }
}

/// Whether the server serves a read at `revision` (false: compacted away).
async fn readable(client: &Client, revision: i64) -> Result<bool, Failure> {
    let req = RangeRequest {
        key: vec![0],
        revision,
        count_only: true,
        serializable: true,
        ..Default::default()
    };
    match client.kv().range(client.request(req)).await {
        Ok(_) => Ok(true),
        // etcd's "required revision has been compacted" (or "...is a future revision", which
        // is not compacted either: a member a little behind the watch)
        Err(s) if s.code() == tonic::Code::OutOfRange => Ok(!s.message().contains("compacted")),
        Err(s) => Err(BackupError::from(client.err(s)).into()),
    }
}

/// Saves a full snapshot as `full.part`, reads the revision it holds, and renames it to
/// `full-<revision>.snap`.
async fn full_snapshot(
    client: &Client,
    dir: &Path,
    dialer: &Dialer,
) -> Result<(i64, u64, PathBuf), BackupError> {
    let part = dir.join("full.part");
    let timeout = dialer.config().command_timeout;
    let saved = save(client, Output::File(part.clone()), timeout, &mut |_, _| {}).await?;
    let revision = match saved.revision {
        Some(r) => r,
        None => snapshot_revision(&part)?,
    };
    let path = dir.join(full_name(revision));
    std::fs::rename(&part, &path).map_err(io_at(&path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))?;
    Ok((revision, saved.size, path))
}

/// The revision a snapshot file holds: Cairn's header says it; etcd's file, the last row.
fn snapshot_revision(path: &Path) -> Result<i64, BackupError> {
    let bad = |why: String| BackupError::Snapshot {
        path: path.to_path_buf(),
        why,
    };
    match SnapshotFile::open(path).map_err(|e| bad(e.to_string()))? {
        SnapshotFile::Cairn(info) => Ok(info.header.revision),
        SnapshotFile::Etcd(snap) => snap.revision().map_err(|e| bad(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_encrypts_what_a_stop_left_plain() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let to = Recipients::parse(
            &[age::x25519::Identity::generate().to_public().to_string()],
            &[],
        )
        .unwrap()
        .unwrap();
        // sealed, not yet encrypted (a stop between the two)
        std::fs::write(d.join(full_name(10)), b"snapshot").unwrap();
        // encrypted, the plain file not yet removed
        let seg = crate::segment::sealed_name(11, 20);
        std::fs::write(d.join(&seg), b"segment").unwrap();
        std::fs::write(d.join(format!("{seg}{SUFFIX}")), b"encrypted segment").unwrap();
        // not a sealed file: left alone
        std::fs::write(d.join("open-0000000000000000021.part"), b"tail").unwrap();
        encrypt_plain_files(d, &to).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                format!("{}{SUFFIX}", full_name(10)),
                "open-0000000000000000021.part".into(),
                format!("{seg}{SUFFIX}"),
            ]
        );
        assert_eq!(
            std::fs::read(d.join(format!("{seg}{SUFFIX}"))).unwrap(),
            b"encrypted segment",
            "the complete twin is kept as it was"
        );
    }
}
