//! What `backup run` reports as it goes, and where it reports it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::stats::Status;

/// How long the run waits before reconnecting after a failure.
pub const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Where progress goes: shared by the run and its uploads.
pub type Reporter = Arc<dyn Fn(Progress) + Send + Sync>;

/// What the run reports as it goes: a line of text each (`Display`), or a JSON object with
/// an `event` field (`Serialize`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    Resumed {
        after: i64,
    },
    Full {
        revision: i64,
        bytes: u64,
        path: PathBuf,
    },
    Sealed {
        first: i64,
        last: i64,
        records: u64,
        bytes: u64,
        path: PathBuf,
    },
    /// The connection failed; the run reconnects after a pause.
    Retrying {
        why: String,
    },
    /// The server compacted past the chain's end while nothing watched: a new full snapshot.
    Compacted {
        after: i64,
        compact_revision: i64,
    },
    /// A file of the spool is in the object store (and gone from the spool).
    Uploaded {
        name: String,
        bytes: u64,
        to: String,
        seconds: f64,
    },
    /// The object store failed; the file stays in the spool and is tried again.
    UploadRetrying {
        name: String,
        why: String,
        pending: usize,
    },
    /// Retention removed a file of the backup.
    Removed {
        name: String,
    },
    /// The run stopped with files not uploaded yet.
    Spooled {
        files: usize,
        spool: PathBuf,
    },
    /// Every `--status-every`: how far behind the backup is.
    Status(Status),
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Progress::Resumed { after } => write!(f, "resuming after revision {after}"),
            Progress::Full {
                revision,
                bytes,
                path,
            } => write!(
                f,
                "full snapshot at revision {revision}: {} ({bytes} bytes)",
                path.display()
            ),
            Progress::Sealed {
                first,
                last,
                records,
                bytes,
                path,
            } => write!(
                f,
                "sealed revisions {first}..={last}: {} ({records} revisions, {bytes} bytes)",
                path.display()
            ),
            Progress::Retrying { why } => {
                write!(f, "retrying in {}s: {why}", RETRY_PAUSE.as_secs())
            }
            Progress::Uploaded {
                name,
                bytes,
                to,
                seconds,
            } => write!(f, "uploaded {name} to {to} ({bytes} bytes, {seconds:.1}s)"),
            Progress::UploadRetrying { name, why, pending } => write!(
                f,
                "upload of {name} failed, retrying ({pending} files waiting in the spool): {why}"
            ),
            Progress::Removed { name } => write!(f, "retention removed {name}"),
            Progress::Status(st) => write!(f, "{st}"),
            Progress::Spooled { files, spool } => write!(
                f,
                "{files} files not uploaded yet stay in {}: the next run uploads them first",
                spool.display()
            ),
            Progress::Compacted {
                after,
                compact_revision,
            } => write!(
                f,
                "the server compacted to revision {compact_revision}, past this backup's end \
                 at {after}: taking a new full snapshot (revisions in between are not in the \
                 backup)"
            ),
        }
    }
}
