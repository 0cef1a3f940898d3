//! `Maintenance.Snapshot`: streams a snapshot file to the client in etcd's shape, 32 KiB blobs
//! whose concatenation is the file, digest last. The file is etcd's own (a bbolt database with
//! etcd's schema: what etcdctl and etcd's tools read, docs/migrating-from-etcd.md) unless the
//! client asks for Cairn's (docs/snapshot-format.md) with the `cairn-snapshot-format: cairn`
//! metadata, as cairnutl does.
//!
//! The store's writer is synchronous (redb), so it runs under `spawn_blocking` and writes into
//! [`Chunks`], which cuts the bytes into blobs and `blocking_send`s them into a bounded channel
//! the gRPC response stream reads from. The channel holds a few chunks: memory stays flat
//! whatever the snapshot size, and a slow client slows only the writer feeding it. After the
//! header the writer holds a redb read transaction and no lock, so writes go on meanwhile.
//!
//! When the client goes away the stream (and the channel's receiver) is dropped, the next
//! send fails, the write returns an error and the blocking task ends: nothing is written for
//! a client that left.
//! On shutdown the writer stops at its next chunk and the stream ends with `etcdserver:
//! server stopped`; a client that stopped reading holds its stream until the server's drain
//! timeout closes the connection, which frees the writer the same way. Either way a client
//! never sees a clean end of stream before the digest.

use std::cell::OnceCell;
use std::io::{self, Write};
use std::pin::Pin;

use cairn_proto::etcdserverpb::{ResponseHeader, SnapshotResponse};
use cairn_storage::snapshot::{SnapshotError, SnapshotMember, SnapshotSource};
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::context::Context;
use crate::errors::{ApiError, code_and_message};

pub type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

/// The blob size: 256 KiB, where etcd sends 32 KiB. Eight times fewer messages (and wakeups
/// of this writer and the gRPC task) made `etcdctl snapshot save` against Cairn 1.25x as fast
/// (docs/performance.md); every gRPC client accepts messages up to 4 MiB by default.
const CHUNK: usize = 256 * 1024;
/// Chunks buffered between the writer and the client.
const CHANNEL_CHUNKS: usize = 4;
/// zstd level 1: on the benchmark data (docs/performance.md) level 3 took 2.3x as long to save
/// for a file no smaller; saving fast matters more to a nightly job than a few percent.
const ZSTD_LEVEL: i32 = 1;

type Tx = mpsc::Sender<Result<SnapshotResponse, Status>>;

/// Which file a client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Etcd,
    Cairn,
}

impl Format {
    /// Cairn's format when the request's metadata asks for it, etcd's otherwise.
    pub fn asked(metadata: &tonic::metadata::MetadataMap) -> Format {
        let asked = metadata
            .get(cairn_proto::SNAPSHOT_FORMAT_METADATA)
            .and_then(|v| v.to_str().ok());
        if asked == Some(cairn_proto::SNAPSHOT_FORMAT_CAIRN) {
            Format::Cairn
        } else {
            Format::Etcd
        }
    }
}

/// Starts writing a snapshot of the current revision; the stream yields it.
pub fn stream(ctx: &Context, format: Format) -> SnapshotStream {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let writer_tx = tx.clone();
        // a panic must not look like a clean end of stream (a truncated snapshot)
        let writer = move || write(&ctx, format, writer_tx);
        if let Err(e) = tokio::task::spawn_blocking(writer).await {
            let msg = format!("cairn: snapshot failed: the writer stopped unexpectedly: {e}");
            let _ = tx.send(Err(Status::internal(msg))).await;
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// How a snapshot cut short by shutdown ends.
fn stopped() -> Status {
    // through the table but not `From<ApiError>`, which logs a stopped server as an error
    let (code, msg) = code_and_message(&ApiError::Stopped("shutting down".into()));
    Status::new(code, msg)
}

/// What the store cannot know: this member's cluster and the version it reports.
fn source(ctx: &Context) -> SnapshotSource {
    let members = ctx
        .node
        .members()
        .into_iter()
        .map(|m| SnapshotMember {
            id: m.id,
            name: m.member.name,
            peer_urls: m.member.peer_urls,
            client_urls: m.member.client_urls,
            is_learner: m.is_learner,
        })
        .collect();
    SnapshotSource {
        cluster_id: ctx.node.cluster_id,
        members,
        server_version: format!(
            "{} (cairn {})",
            ctx.config.etcd_version,
            env!("CARGO_PKG_VERSION")
        ),
    }
}

/// Runs on a blocking thread until the snapshot is sent, fails, or the client is gone.
fn write(ctx: &Context, format: Format, tx: Tx) {
    let started = std::time::Instant::now();
    let header = OnceCell::new();
    let mut out = Chunks {
        tx: tx.clone(),
        shutdown: ctx.shutdown.clone(),
        buf: Vec::with_capacity(CHUNK),
        header: &header,
        version: ctx.config.etcd_version.clone(),
        // The backend's in-use size: what etcd would send, and more than the compressed
        // snapshot in practice (see `Chunks::remaining`).
        estimate: ctx.store.db_size().map_or(0, |(_, used)| used.max(0)) as u64,
        sent: 0,
    };
    let source = source(ctx);
    let written = match format {
        Format::Cairn => ctx
            .store
            .write_snapshot(&source, ZSTD_LEVEL, &mut out, &mut |h| {
                let _ = header.set(ctx.header(h.revision));
            })
            .map(|h| h.revision),
        Format::Etcd => ctx
            .store
            .write_etcd_snapshot(&source.members, &mut out, &mut |revision| {
                let _ = header.set(ctx.header(revision));
            })
            .map(|e| e.revision),
    };
    let result = written.and_then(|rev| Ok((rev, out.finish().map_err(SnapshotError::Write)?)));
    match result {
        Ok((revision, size)) => tracing::info!(
            revision,
            size,
            ?format,
            took_ms = started.elapsed().as_millis() as u64,
            "sent snapshot"
        ),
        Err(_) if *ctx.shutdown.borrow() => {
            tracing::info!(
                sent = out.sent,
                "snapshot stopped: the server is shutting down"
            );
            let _ = tx.blocking_send(Err(stopped()));
        }
        Err(_) if tx.is_closed() => {
            tracing::info!(sent = out.sent, "snapshot stream cancelled by the client")
        }
        Err(e) => {
            let status = failure(e);
            tracing::warn!(error = %status.message(), "snapshot failed");
            let _ = tx.blocking_send(Err(status));
        }
    }
}

/// The status a failed snapshot ends the stream with.
fn failure(e: SnapshotError) -> Status {
    match e {
        SnapshotError::Store(s) => ApiError::Store(s).into(),
        other => Status::internal(format!("cairn: snapshot failed: {other}")),
    }
}

/// A `Write` that cuts the snapshot into blobs and sends them as `SnapshotResponse`s.
struct Chunks<'h> {
    tx: Tx,
    shutdown: watch::Receiver<bool>,
    buf: Vec<u8>,
    header: &'h OnceCell<Option<ResponseHeader>>,
    version: String,
    estimate: u64,
    sent: u64,
}

impl Chunks<'_> {
    /// `remaining_bytes` cannot be exact: the snapshot is compressed as it is written, so its
    /// size is known only at the end. We count down from an estimate (the backend's in-use
    /// bytes) and never reach 0 early: a blob past the estimate says 1. Only the last message
    /// says 0, so a client may still treat 0 as "this was the last one" as with etcd.
    fn remaining(&self) -> u64 {
        self.estimate.saturating_sub(self.sent).max(1)
    }

    /// Sends the buffered bytes; `last` marks the end of the snapshot.
    fn send(&mut self, last: bool) -> io::Result<()> {
        if *self.shutdown.borrow() {
            // not `Interrupted`: `write_all` would retry that forever
            return Err(io::Error::other("the server is shutting down"));
        }
        let blob = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.sent += blob.len() as u64;
        let msg = SnapshotResponse {
            header: self.header.get().copied().flatten(),
            remaining_bytes: if last { 0 } else { self.remaining() },
            blob,
            version: self.version.clone(),
        };
        self.tx
            .blocking_send(Ok(msg))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }

    /// Sends the held-back tail (which ends with the digest) as the last message.
    fn finish(&mut self) -> io::Result<u64> {
        self.send(true)?;
        Ok(self.sent)
    }
}

impl Write for Chunks<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // A full chunk is sent only once more bytes follow, so the tail is never empty and
        // `finish` always has something to send with remaining_bytes = 0.
        if self.buf.len() == CHUNK && !data.is_empty() {
            self.send(false)?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
