//! `cairnutl snapshot save FILE`: streams `Maintenance.Snapshot` from one healthy endpoint
//! into `FILE.part`, checks the trailing SHA-256 (and etcd's `size % 512 == 32` rule), then
//! fsyncs, renames to `FILE` and fsyncs the directory. `-` streams to stdout instead.
//!
//! Differences from `etcdctl snapshot save`, all on purpose:
//! - several endpoints are fine: the first healthy one (Status answers and names a leader)
//!   is used, and stderr says which;
//! - the digest is verified (etcdctl only checks that the size leaves room for one);
//! - `--command-timeout` bounds connecting and each wait for the next message, not the whole
//!   transfer. etcdctl applies it to the whole transfer, so a large snapshot fails with
//!   "context deadline exceeded" after 5 s however healthy the stream: a sharp edge for
//!   exactly the big clusters that need backups most;
//! - on any failure, including Ctrl-C or SIGTERM, neither `FILE` nor `FILE.part` is left.
//! - a broken stdout pipe is an error (exit 1), not ripgrep's quiet exit 0: the backup is
//!   incomplete and a script must know.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use cairn_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use cairn_proto::etcdserverpb::{SnapshotRequest, StatusRequest};
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

use super::{Online, SaveArgs, progress_bar};

const DIGEST_LEN: usize = 32;
/// etcd's rule for a snapshot with a digest: `size % 512 == 32`.
const ALIGN: u64 = 512;

pub fn run(args: SaveArgs, online: Online<'_>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if args.file == "-" {
        // nothing to clean up, and a write blocked on a full pipe would keep a signal
        // handler from ever running: keep the default (exit at once)
        return rt.block_on(save(&args, &online));
    }
    rt.block_on(async {
        tokio::select! {
            r = save(&args, &online) => r,
            sig = interrupted() => Err(anyhow!("{sig}; nothing was written to {}", args.file)),
        }
    })
}

async fn save(args: &SaveArgs, online: &Online<'_>) -> anyhow::Result<()> {
    let timeout = online.command_timeout;
    let (ep, channel) = pick_endpoint(online.endpoints, timeout).await?;
    if online.endpoints.len() > 1 {
        eprintln!("Using endpoint {ep}");
    }
    let to_stdout = args.file == "-";
    let nothing = if to_stdout {
        "the data on stdout is not a valid snapshot".to_string()
    } else {
        format!("nothing was written to {}", args.file)
    };
    let mut sink = if to_stdout {
        Sink::Stdout(std::io::stdout().lock())
    } else {
        Sink::create(&args.file)?
    };
    // `sink` removes FILE.part when dropped unless committed, so every early return cleans up.
    let got = receive(MaintenanceClient::new(channel), timeout, &mut sink)
        .await
        .map_err(|e| anyhow!("snapshot from {ep} failed: {e:#}; {nothing}"))?;
    if !got.digest_ok() {
        bail!(
            "snapshot from {ep} failed its SHA-256 check ({}); {nothing}",
            got.why_bad()
        );
    }
    sink.commit(&args.file, &nothing)?;
    if !to_stdout {
        match got.revision {
            Some(rev) => println!(
                "Snapshot saved at {} (revision {rev}, {} bytes)",
                args.file, got.size
            ),
            None => println!("Snapshot saved at {} ({} bytes)", args.file, got.size),
        }
    }
    Ok(())
}

/// The first endpoint, in order, that connects and reports a leader.
async fn pick_endpoint(
    endpoints: &[String],
    timeout: Duration,
) -> anyhow::Result<(String, Channel)> {
    let mut why = Vec::new();
    for ep in endpoints {
        let probe = async {
            let ch = crate::cmd::connect(ep, timeout).await?;
            let status = MaintenanceClient::new(ch.clone())
                .status(StatusRequest {})
                .await
                .map_err(|s| anyhow!("status: {}", s.message()))?
                .into_inner();
            if status.leader == 0 {
                bail!("it has no leader");
            }
            anyhow::Ok(ch)
        };
        match tokio::time::timeout(timeout, probe).await {
            Ok(Ok(ch)) => return Ok((ep.clone(), ch)),
            Ok(Err(e)) => why.push(format!("{ep}: {e:#}")),
            Err(_) => why.push(format!("{ep}: no answer within {timeout:?}")),
        }
    }
    if why.is_empty() {
        bail!("no endpoints given (--endpoints)");
    }
    bail!(
        "no healthy endpoint to save a snapshot from ({})",
        why.join("; ")
    )
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

/// Streams the snapshot into `sink`, hashing all but the trailing 32 bytes as they pass.
async fn receive(
    mut client: MaintenanceClient<Channel>,
    timeout: Duration,
    sink: &mut Sink,
) -> anyhow::Result<Received> {
    let stalled = || anyhow!("no data for {timeout:?} (--command-timeout bounds each wait)");
    let mut stream = tokio::time::timeout(timeout, client.snapshot(SnapshotRequest {}))
        .await
        .map_err(|_| stalled())?
        .map_err(|s| anyhow!("{}", s.message()))?
        .into_inner();
    let bar = progress_bar(None, "Saving snapshot");
    let mut tail = Tail::default();
    let mut revision = None;
    let mut size = 0u64;
    loop {
        let msg = tokio::time::timeout(timeout, stream.message())
            .await
            .map_err(|_| stalled())?
            .map_err(|s| anyhow!("{}", s.message()))?;
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
        bar.set_length(size + msg.remaining_bytes);
        bar.set_position(size);
    }
    bar.finish_and_clear();
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

/// Where the bytes go: `FILE.part` (removed on drop unless committed), or stdout.
enum Sink {
    Part { part: PathBuf, file: Option<File> },
    Stdout(std::io::StdoutLock<'static>),
}

impl Sink {
    fn create(file: &str) -> anyhow::Result<Sink> {
        let part = PathBuf::from(format!("{file}.part"));
        let f = File::create(&part).with_context(|| format!("cannot create {}", part.display()))?;
        Ok(Sink::Part {
            part,
            file: Some(f),
        })
    }

    fn write_all(&mut self, data: &[u8]) -> anyhow::Result<()> {
        match self {
            Sink::Part { part, file } => file
                .as_mut()
                .expect("open until committed")
                .write_all(data)
                .with_context(|| format!("cannot write {}", part.display())),
            Sink::Stdout(out) => out
                .write_all(data)
                .context("cannot write to stdout (closed before the snapshot was complete?)"),
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        match self {
            Sink::Part { .. } => Ok(()),
            Sink::Stdout(out) => out.flush().context("cannot write to stdout"),
        }
    }

    /// fsync, rename `FILE.part` to `FILE`, fsync the directory (nothing to do for stdout).
    fn commit(&mut self, target: &str, nothing: &str) -> anyhow::Result<()> {
        let Sink::Part { part, file } = self else {
            return Ok(());
        };
        let f = file.as_ref().expect("open until committed");
        f.sync_all()
            .map_err(|e| anyhow!("cannot fsync {}: {e}; {nothing}", part.display()))?;
        drop(file.take());
        std::fs::rename(&part, target).map_err(|e| {
            anyhow!(
                "cannot rename {} to {target}: {e}; {nothing}",
                part.display()
            )
        })?;
        let dir = match Path::new(target).parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        // Renamed: from here on FILE is complete, so a failed directory fsync is reported
        // but FILE stays (it is no worse than any other freshly written file).
        part.clear();
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| {
            anyhow!(
                "{target} is complete, but fsyncing its directory {} failed ({e}); \
                 it may not survive a crash",
                dir.display()
            )
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

/// Resolves on Ctrl-C or SIGTERM, so the partial file is removed on the way out.
async fn interrupted() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "interrupted",
            _ = term.recv() => "terminated",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "interrupted"
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
}
