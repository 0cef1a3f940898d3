//! Catching a follower up from a copy of the leader's state machine, streamed.
//!
//! The leader's raft snapshot is only a marker (the flushed store is the snapshot). When a
//! follower needs it, the leader streams its store from one read transaction in Cairn's
//! snapshot format (docs/snapshot-format.md), in 1 MiB chunks, with the raft meta (applied
//! log id, membership, removed members) read in the same transaction. The data may be newer
//! than the raft snapshot's log id; the follower's state machine skips the entries the data
//! already contains (etcd's consistent-index rule), so nothing is applied twice.
//! Memory stays flat on both sides: the follower writes the stream to a file first.
//!
//! A stream that stops moving is given up, so that raft tries again: openraft sends a
//! follower nothing else while its snapshot is in flight, and a stream stuck for good (a
//! follower that took the stream and never answers, a connection that went silent) would
//! leave it behind for as long as the leader leads. No chunk taken for [`STALL`], or no
//! answer [`INSTALL_WAIT`] after the last one, ends the send with an error.

use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cairn_proto::cairnpeer::SnapshotChunk;
use cairn_storage::Store;
use cairn_storage::snapshot::SnapshotSource;
use openraft::error::Fatal;
use openraft::raft::SnapshotResponse;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::client::{PeerClients, PeerError};
use super::wire;
use crate::state_machine::REPLICATED_META;
use crate::types::{Raft, ReceivedFile, Snapshot, SnapshotData, SnapshotMeta, Vote};

const CHUNK_BYTES: usize = 1 << 20;
/// zstd level for the stream: fast, the link is local or a LAN.
const LEVEL: i32 = 1;

type SendResult = Result<Result<SnapshotResponse<u64>, Fatal<u64>>, PeerError>;

/// A snapshot stream that takes no chunk for this long is given up (raft retries).
const STALL: Duration = Duration::from_secs(10);
/// How long the follower may take to answer once the last chunk has gone.
const INSTALL_WAIT: Duration = Duration::from_secs(120);

/// When the stream last moved, and whether its last chunk has gone.
struct Progress {
    last: Mutex<tokio::time::Instant>,
    done: AtomicBool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            last: Mutex::new(tokio::time::Instant::now()),
            done: AtomicBool::new(false),
        }
    }

    fn moved(&self, done: bool) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = tokio::time::Instant::now();
        if done {
            self.done.store(true, Ordering::SeqCst);
        }
    }

    /// Completes, saying why, once the stream has stalled or its answer is overdue.
    async fn stalled(&self) -> String {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let idle = self
                .last
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed();
            if self.done.load(Ordering::SeqCst) {
                if idle >= INSTALL_WAIT {
                    return format!("no answer {INSTALL_WAIT:?} after the snapshot's last chunk");
                }
            } else if idle >= STALL {
                return format!("the snapshot stream took nothing for {STALL:?}");
            }
        }
    }
}

/// Streams this member's store to the peer at `url` for installation under `meta`.
pub async fn send(
    peers: &Arc<PeerClients>,
    store: &Arc<Store>,
    url: &str,
    vote: Vote,
    meta: SnapshotMeta,
) -> SendResult {
    let head = wire::encode(&(vote, meta)).map_err(PeerError::Refused)?;
    let (tx, rx) = mpsc::channel::<SnapshotChunk>(4);
    let template = peers.chunk(Vec::new(), Vec::new(), false);
    let first = SnapshotChunk {
        head,
        ..template.clone()
    };
    tx.send(first)
        .await
        .map_err(|_| PeerError::Refused("snapshot stream closed".into()))?;
    let store = store.clone();
    let progress = Arc::new(Progress::new());
    let moved = progress.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let mut out = ChunkWriter {
            tx: tx.clone(),
            template: template.clone(),
            buf: Vec::with_capacity(CHUNK_BYTES),
            progress: moved.clone(),
        };
        let entries = write_copy(&store, &mut out)?;
        out.send_buffered().map_err(|e| e.to_string())?;
        let last = SnapshotChunk {
            head: wire::encode(&entries)?,
            done: true,
            ..template
        };
        tx.blocking_send(last)
            .map_err(|_| "snapshot stream closed by the receiver".to_string())?;
        moved.moved(true);
        Ok(())
    });
    let mut client = peers.client(url)?;
    let call = client.install_snapshot(tokio_stream::wrappers::ReceiverStream::new(rx));
    // given up: the call and its stream are dropped, which ends the writer too
    let resp = tokio::select! {
        r = call => r,
        why = progress.stalled() => return Err(PeerError::Lost(format!("peer {url}: {why}"))),
    };
    let written = writer
        .await
        .map_err(|e| PeerError::Lost(format!("snapshot writer: {e}")))?;
    let resp = resp.map_err(|s| peers.sort_status(url, s))?;
    if let Err(e) = written {
        return Err(PeerError::Lost(e));
    }
    wire::decode(&resp.into_inner().body).map_err(PeerError::Refused)
}

/// Writes `store` to `out` in the snapshot format, from one read transaction; returns the
/// raft meta entries ([`REPLICATED_META`]) read in the same transaction, for the follower.
pub(crate) fn write_copy(
    store: &Store,
    out: &mut dyn std::io::Write,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let source = SnapshotSource::default();
    let (_, values) = store
        .write_snapshot_with_meta(&source, LEVEL, out, &mut |_| {}, REPLICATED_META)
        .map_err(|e| format!("stream the store: {e}"))?;
    Ok(REPLICATED_META
        .iter()
        .zip(values)
        .filter_map(|(name, v)| v.map(|v| (name.to_string(), v)))
        .collect())
}

/// A `Write` that cuts the snapshot bytes into chunks on the channel.
struct ChunkWriter {
    tx: mpsc::Sender<SnapshotChunk>,
    template: SnapshotChunk,
    buf: Vec<u8>,
    progress: Arc<Progress>,
}

impl ChunkWriter {
    fn send_buffered(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.tx
            .blocking_send(SnapshotChunk {
                data,
                ..self.template.clone()
            })
            .map_err(|_| std::io::Error::other("snapshot stream closed by the receiver"))?;
        self.progress.moved(false);
        Ok(())
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK_BYTES {
            self.send_buffered()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const INCOMING_PREFIX: &str = "incoming-";

/// Removes the files of snapshots that were being received when the process stopped.
pub(crate) fn remove_unfinished(snap_dir: &Path) {
    let Ok(dir) = std::fs::read_dir(snap_dir) else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(INCOMING_PREFIX) && name.ends_with(".snap") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::info!(file = %entry.path().display(), "removed an unfinished incoming snapshot")
                }
                Err(e) => {
                    tracing::warn!(file = %entry.path().display(), "cannot remove an unfinished incoming snapshot: {e}")
                }
            }
        }
    }
}

static INCOMING: AtomicU64 = AtomicU64::new(0);

/// Receives a streamed snapshot into `snap_dir` and hands it to raft; returns the encoded
/// answer for the leader.
pub async fn receive(
    raft: &Raft,
    snap_dir: &Path,
    first: SnapshotChunk,
    mut stream: Streaming<SnapshotChunk>,
) -> Result<Vec<u8>, Status> {
    let (vote, meta): (Vote, SnapshotMeta) =
        wire::decode(&first.head).map_err(Status::invalid_argument)?;
    let n = INCOMING.fetch_add(1, Ordering::Relaxed);
    let incoming = ReceivedFile::new(
        snap_dir.join(format!("{INCOMING_PREFIX}{}-{n}.snap", std::process::id())),
    );
    let io =
        |e: std::io::Error| Status::internal(format!("write {}: {e}", incoming.path().display()));
    let mut file = tokio::fs::File::create(incoming.path()).await.map_err(io)?;
    file.write_all(&first.data).await.map_err(io)?;
    let entries: Vec<(String, Vec<u8>)> = loop {
        let Some(chunk) = stream.message().await? else {
            return Err(Status::aborted(
                "snapshot stream ended before its last chunk; the leader will retry",
            ));
        };
        file.write_all(&chunk.data).await.map_err(io)?;
        if chunk.done {
            break wire::decode(&chunk.head).map_err(Status::invalid_argument)?;
        }
    };
    file.sync_all().await.map_err(io)?;
    drop(file);
    tracing::info!(
        snapshot = %meta.snapshot_id,
        last_log_id = ?meta.last_log_id,
        "received a snapshot from the leader; installing it"
    );
    let snapshot = Snapshot {
        meta,
        snapshot: Box::new(SnapshotData::Received {
            file: incoming,
            meta: entries,
        }),
    };
    let result = raft.install_full_snapshot(vote, snapshot).await;
    wire::encode(&result).map_err(Status::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that stops taking chunks is given up after [`STALL`]; once its last chunk
    /// has gone, the follower gets [`INSTALL_WAIT`] to answer. (Tokio's clock, paused.)
    #[tokio::test(start_paused = true)]
    async fn a_stalled_snapshot_stream_is_given_up() {
        let p = Progress::new();
        let started = tokio::time::Instant::now();
        let why = p.stalled().await;
        assert!(why.contains("took nothing"), "{why}");
        let waited = started.elapsed();
        assert!(
            waited >= STALL && waited < STALL + Duration::from_secs(1),
            "{waited:?}"
        );

        let p = Progress::new();
        p.moved(true);
        let started = tokio::time::Instant::now();
        let why = p.stalled().await;
        assert!(why.contains("no answer"), "{why}");
        assert!(started.elapsed() >= INSTALL_WAIT, "{:?}", started.elapsed());
    }

    #[test]
    fn unfinished_incoming_snapshots_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["incoming-41-0.snap", "incoming-41-7.snap"] {
            std::fs::write(dir.path().join(name), b"partial").unwrap();
        }
        for name in ["raft-snapshot.json", "incoming-notes.txt", "db.snap"] {
            std::fs::write(dir.path().join(name), b"keep").unwrap();
        }
        remove_unfinished(dir.path());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["db.snap", "incoming-notes.txt", "raft-snapshot.json"]
        );
    }
}
