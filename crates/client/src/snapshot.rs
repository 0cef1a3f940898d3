//! Saving a snapshot: `Maintenance.Snapshot` from one healthy endpoint into `FILE.part`, the
//! trailing SHA-256 checked (and etcd's `size % 512 == 32` rule), then fsync, rename to
//! `FILE` and fsync of the directory; or into a writer (stdout), checked the same way.
//!
//! The command timeout bounds connecting and each wait for the next message, not the whole
//! transfer (etcdctl bounds the whole transfer, so big snapshots fail after 5 s). On any
//! failure, including the future being dropped (Ctrl-C), neither `FILE` nor `FILE.part` is
//! left behind.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use cairn_proto::etcdserverpb::{SnapshotRequest, StatusRequest};
use sha2::{Digest, Sha256};

use crate::dial::Dialer;
use crate::error::{ClientError, describe};
use crate::session::Client;

const DIGEST_LEN: usize = 32;
/// etcd's rule for a snapshot with a digest: `size % 512 == 32`.
const ALIGN: u64 = 512;

/// Where the snapshot goes.
pub enum Output {
    /// Written to `FILE.part`, renamed to the path when complete and checked.
    File(PathBuf),
    /// Streamed as it comes (nothing can be taken back: a failure is reported, that is all).
    /// `name` is what messages call it (`stdout`).
    Writer {
        name: &'static str,
        out: Box<dyn Write>,
    },
}

/// What was saved.
#[derive(Debug, Clone, Copy)]
pub struct Saved {
    pub size: u64,
    /// The revision the server's headers named (etcd names none in snapshot messages).
    pub revision: Option<i64>,
}

/// The first endpoint, in order, that connects and reports a leader: a streaming connection,
/// so the transfer itself has no deadline.
pub async fn healthy_endpoint(dialer: &Dialer) -> Result<Client, ClientError> {
    let timeout = dialer.config().command_timeout;
    let mut why = Vec::new();
    for ep in dialer.endpoints() {
        let probe = async {
            let c = dialer.connect_streaming(ep).await?;
            let status = c
                .maintenance()
                .status(c.request(StatusRequest {}))
                .await
                .map_err(|s| ClientError::Snapshot(format!("status: {}", describe(&s))))?
                .into_inner();
            if status.leader == 0 {
                return Err(ClientError::Snapshot("it has no leader".into()));
            }
            Ok(c)
        };
        match tokio::time::timeout(timeout, probe).await {
            Ok(Ok(c)) => return Ok(c),
            Ok(Err(e @ (ClientError::Config(_) | ClientError::Tls(_)))) => return Err(e),
            Ok(Err(ClientError::Snapshot(e))) => why.push(format!("{ep}: {e}")),
            Ok(Err(e)) => why.push(e.to_string()),
            Err(_) => why.push(format!("{ep}: no answer within {timeout:?}")),
        }
    }
    Err(ClientError::NoEndpoint(format!(
        "no healthy endpoint to save a snapshot from ({})",
        why.join("; ")
    )))
}

/// Streams a snapshot from `client` into `out`; `progress(bytes so far, estimated total)`
/// is called after every message.
pub async fn save(
    client: &Client,
    out: Output,
    timeout: std::time::Duration,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Saved, ClientError> {
    let ep = client.endpoint().to_string();
    let (mut sink, nothing, target) = match out {
        Output::File(path) => {
            let nothing = format!("nothing was written to {}", path.display());
            (Sink::create(&path)?, nothing, Some(path))
        }
        Output::Writer { name, out } => (
            Sink::Writer { name, out },
            format!("the data on {name} is not a valid snapshot"),
            None,
        ),
    };
    // `sink` removes FILE.part when dropped unless committed, so every early return cleans up.
    let got = receive(client, timeout, &mut sink, progress)
        .await
        .map_err(|e| ClientError::Snapshot(format!("snapshot from {ep} failed: {e}; {nothing}")))?;
    if !got.digest_ok() {
        return Err(ClientError::Snapshot(format!(
            "snapshot from {ep} failed its SHA-256 check ({}); {nothing}",
            got.why_bad()
        )));
    }
    if let Some(path) = target {
        sink.commit(&path, &nothing)?;
    }
    Ok(Saved {
        size: got.size,
        revision: got.revision,
    })
}

/// What a finished stream told us.
struct Received {
    size: u64,
    revision: Option<i64>,
    computed: [u8; DIGEST_LEN],
    trailer: Vec<u8>,
}

impl Received {
    fn digest_ok(&self) -> bool {
        self.size % ALIGN == DIGEST_LEN as u64 && self.computed[..] == self.trailer[..]
    }

    fn why_bad(&self) -> String {
        if self.size % ALIGN != DIGEST_LEN as u64 {
            format!(
                "{} bytes is not 32 more than a multiple of 512: truncated or no digest",
                self.size
            )
        } else {
            "the digest does not match the data".into()
        }
    }
}

/// A snapshot request asking Cairn for its own format (etcd ignores the metadata and sends
/// its own, which `cairnutl` reads too).
fn cairn_format_request() -> tonic::Request<SnapshotRequest> {
    let mut req = tonic::Request::new(SnapshotRequest {});
    req.metadata_mut().insert(
        cairn_proto::SNAPSHOT_FORMAT_METADATA,
        tonic::metadata::MetadataValue::from_static(cairn_proto::SNAPSHOT_FORMAT_CAIRN),
    );
    req
}

/// Streams the snapshot into `sink`, hashing all but the trailing 32 bytes as they pass.
async fn receive(
    client: &Client,
    timeout: std::time::Duration,
    sink: &mut Sink,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Received, String> {
    let stalled = || format!("no data for {timeout:?} (--command-timeout bounds each wait)");
    let mut stream = tokio::time::timeout(
        timeout,
        client.maintenance().snapshot(cairn_format_request()),
    )
    .await
    .map_err(|_| stalled())?
    .map_err(|s| describe(&s))?
    .into_inner();
    let mut tail = Tail::default();
    let mut revision = None;
    let mut size = 0u64;
    loop {
        let msg = tokio::time::timeout(timeout, stream.message())
            .await
            .map_err(|_| stalled())?
            .map_err(|s| describe(&s))?;
        let Some(msg) = msg else { break };
        if let Some(h) = &msg.header
            && h.revision > 0
        {
            revision = Some(h.revision);
        }
        tail.feed(&msg.blob);
        sink.write_all(&msg.blob)?;
        size += msg.blob.len() as u64;
        // remaining_bytes is an estimate from Cairn (the stream is compressed as it is made)
        progress(size, size + msg.remaining_bytes);
    }
    sink.flush()?;
    let (computed, trailer) = tail.finish();
    Ok(Received {
        size,
        revision,
        computed,
        trailer,
    })
}

/// SHA-256 of everything except the last 32 bytes seen, which are held back.
#[derive(Default)]
struct Tail {
    sha: Sha256,
    held: Vec<u8>,
}

impl Tail {
    fn feed(&mut self, blob: &[u8]) {
        let total = self.held.len() + blob.len();
        let hash_n = total.saturating_sub(DIGEST_LEN);
        let from_held = hash_n.min(self.held.len());
        let from_blob = hash_n - from_held;
        self.sha.update(&self.held[..from_held]);
        self.sha.update(&blob[..from_blob]);
        self.held.drain(..from_held);
        self.held.extend_from_slice(&blob[from_blob..]);
    }

    fn finish(self) -> ([u8; DIGEST_LEN], Vec<u8>) {
        (self.sha.finalize().into(), self.held)
    }
}

/// Where the bytes go: `FILE.part` (removed on drop unless committed), or a writer.
enum Sink {
    Part {
        part: PathBuf,
        file: Option<File>,
    },
    Writer {
        name: &'static str,
        out: Box<dyn Write>,
    },
}

impl Sink {
    fn create(file: &Path) -> Result<Sink, ClientError> {
        let part = PathBuf::from(format!("{}.part", file.display()));
        let f = File::create(&part).map_err(|error| ClientError::File {
            what: "cannot create",
            path: part.clone(),
            error,
        })?;
        Ok(Sink::Part {
            part,
            file: Some(f),
        })
    }

    fn write_all(&mut self, data: &[u8]) -> Result<(), String> {
        match self {
            Sink::Part { part, file } => file
                .as_mut()
                .expect("open until committed")
                .write_all(data)
                .map_err(|e| format!("cannot write {}: {e}", part.display())),
            Sink::Writer { name, out } => out.write_all(data).map_err(|e| {
                format!("cannot write to {name} (closed before the snapshot was complete?): {e}")
            }),
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        match self {
            Sink::Part { .. } => Ok(()),
            Sink::Writer { name, out } => out
                .flush()
                .map_err(|e| format!("cannot write to {name}: {e}")),
        }
    }

    /// fsync, rename `FILE.part` to `FILE`, fsync the directory.
    fn commit(&mut self, target: &Path, nothing: &str) -> Result<(), ClientError> {
        let Sink::Part { part, file } = self else {
            return Ok(());
        };
        let fail = |m: String| ClientError::Snapshot(m);
        let f = file.as_ref().expect("open until committed");
        f.sync_all()
            .map_err(|e| fail(format!("cannot fsync {}: {e}; {nothing}", part.display())))?;
        drop(file.take());
        std::fs::rename(&part, target).map_err(|e| {
            fail(format!(
                "cannot rename {} to {}: {e}; {nothing}",
                part.display(),
                target.display()
            ))
        })?;
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        // Renamed: from here on FILE is complete, so a failed directory fsync is reported
        // but FILE stays (it is no worse than any other freshly written file).
        part.clear();
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| {
            fail(format!(
                "{} is complete, but fsyncing its directory {} failed ({e}); \
                 it may not survive a crash",
                target.display(),
                dir.display()
            ))
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Sink::Part { part, file } = self
            && !part.as_os_str().is_empty()
        {
            drop(file.take());
            let _ = std::fs::remove_file(&part);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The held-back tail is the last 32 bytes whatever the blob boundaries.
    #[test]
    fn tail_splits_digest_from_data_across_blobs() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let want: [u8; DIGEST_LEN] = Sha256::digest(&data[..968]).into();
        for cut in [1, 5, 31, 32, 33, 100, 999] {
            let mut t = Tail::default();
            for blob in data.chunks(cut) {
                t.feed(blob);
            }
            let (got, held) = t.finish();
            assert_eq!(got, want, "blobs of {cut}");
            assert_eq!(held, &data[968..], "blobs of {cut}");
        }
    }

    #[test]
    fn size_rule_and_digest_both_checked() {
        let mut r = Received {
            size: 544,
            revision: None,
            computed: [1; 32],
            trailer: vec![1; 32],
        };
        assert!(r.digest_ok());
        r.size = 545;
        assert!(!r.digest_ok());
        r.size = 544;
        r.trailer[0] = 2;
        assert!(!r.digest_ok());
    }

    #[test]
    fn an_uncommitted_part_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("s.snap");
        let mut sink = Sink::create(&target).unwrap();
        sink.write_all(b"partial").unwrap();
        assert!(dir.path().join("s.snap.part").exists());
        drop(sink);
        assert!(!dir.path().join("s.snap.part").exists() && !target.exists());
    }
}
