//! `cairnutl backup run|list|verify TARGET`: continuous backups into a directory or an
//! object store. The engine is
//! the `cairn-backup` library; this file turns flags into its config and prints.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use cairn_backup::crypt::{CryptError, Identities, Recipients};
use cairn_backup::progress::{Progress, Reporter};
use cairn_backup::restore::format_rfc3339;
use cairn_backup::retention::Retention;
use cairn_backup::run::RunConfig;
use cairn_backup::segment::seal_of;
use cairn_backup::stats::Stats;
use cairn_backup::target::{Target, TargetError};
use cairn_backup::timeline::{Chain, Timeline};
use cairn_client::flags::parse_duration;
use cairn_client::metrics::{OPENMETRICS_TEXT, Render};
use clap::{Args, Subcommand};

use super::online::{block_on, print_out};
use crate::printer::Format;

#[derive(Subcommand)]
pub enum Backup {
    /// Keep a backup in TARGET: a full snapshot, then every revision after it in sealed
    /// segments, a new full snapshot on schedule; runs until SIGTERM or Ctrl-C, and resumes
    /// where it stopped.
    Run(RunArgs),
    /// The backup's timeline: full snapshots, the revisions the segments after each cover,
    /// gaps.
    List(TargetArg),
    /// Read every file of the backup: digests, every change, the chain; exits non-zero
    /// naming what is wrong.
    Verify(TargetArg),
}

#[derive(Args)]
pub struct RunArgs {
    /// Where the backup goes: a directory (created if missing), file:///path, or an object
    /// store: s3://bucket/prefix (AWS_* environment: AWS_ENDPOINT for an S3-compatible
    /// server), gs://bucket/prefix (GOOGLE_*), az://container/prefix (AZURE_*).
    pub target: String,
    /// With an object-store target: the local directory segments and snapshots are written
    /// to before they are uploaded, and wait in while the store cannot be reached.
    #[arg(long)]
    pub spool_dir: Option<PathBuf>,
    /// Take a new full snapshot this long after the last one.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub full_every: Duration,
    /// Seal a segment at this many compressed bytes.
    #[arg(long, default_value_t = 64 << 20)]
    pub segment_bytes: u64,
    /// Seal a segment this long after its first change: the most a crash of this command
    /// can lose (the next run takes it again from the server, unless it was compacted).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub segment_age: Duration,
    /// Retention: keep every revision of this last stretch of time restorable (e.g. 7d is
    /// written 168h); older chains are thinned to their full snapshots.
    #[arg(long, value_parser = parse_duration)]
    pub keep_for: Option<Duration>,
    /// Retention: keep at most this many full snapshots (the newest); with --keep-for, the
    /// chains of its window are kept whole whatever this says. Without either flag nothing
    /// is removed.
    #[arg(long)]
    pub keep_fulls: Option<usize>,
    /// At a stop, how long to go on uploading what the spool holds.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub upload_grace: Duration,
    /// Print a status line (lag, spool) this often.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub status_every: Duration,
    /// Serve Prometheus metrics at /metrics on these URLs (http://HOST:PORT, comma
    /// separated): lag in revisions and seconds, the last full snapshot's age, bytes written.
    #[arg(long, value_delimiter = ',')]
    pub listen_metrics_urls: Vec<String>,
    /// Encrypt every file to this age public key (age1..., from age-keygen) before it is
    /// kept: the target then holds nothing readable, and this host needs only the public
    /// key (restore, list and verify take --identity); repeatable, any one key decrypts.
    #[arg(long)]
    pub encrypt_to: Vec<String>,
    /// As --encrypt-to, with the keys of a file (one per line, # comments).
    #[arg(long)]
    pub encrypt_to_file: Vec<PathBuf>,
}

#[derive(Args)]
pub struct TargetArg {
    /// The backup: a directory, file:///path, s3://bucket/prefix, gs://..., az://...
    pub target: String,
    /// An age identity file (age-keygen's) that decrypts a backup made with --encrypt-to;
    /// repeatable.
    #[arg(long)]
    pub identity: Vec<PathBuf>,
}

impl TargetArg {
    fn open(&self) -> anyhow::Result<Target> {
        Ok(Target::open(&self.target, None)?.with_identities(Identities::load(&self.identity)?))
    }
}

pub fn run(b: Backup, g: &super::Global) -> anyhow::Result<()> {
    match b {
        Backup::Run(a) => run_backup(a, g),
        Backup::List(a) => block_on(list(&a, g.format)),
        Backup::Verify(a) => block_on(verify(&a)),
    }
}

fn run_backup(a: RunArgs, g: &super::Global) -> anyhow::Result<()> {
    let dialer = g.dialer()?;
    let target = Target::open(&a.target, a.spool_dir.as_deref())?;
    let encrypt = Recipients::parse(&a.encrypt_to, &a.encrypt_to_file)?;
    let spool = match (target.dir(), a.spool_dir) {
        (Some(d), None) => d.to_path_buf(),
        (Some(_), Some(_)) => {
            bail!("--spool-dir is for object-store targets: a directory target is written in place")
        }
        (None, Some(s)) => s,
        (None, None) => bail!(
            "{}: an object-store target needs --spool-dir, a local directory where segments are sealed before they are uploaded and wait while the store cannot be reached",
            a.target
        ),
    };
    let cfg = RunConfig {
        target: Arc::new(target),
        spool,
        full_every: a.full_every,
        segment_bytes: a.segment_bytes,
        segment_age: a.segment_age,
        retention: Retention {
            keep_fulls: a.keep_fulls,
            keep_for: a.keep_for,
        },
        upload_grace: a.upload_grace,
        status_every: a.status_every.max(Duration::from_millis(100)),
        stats: Arc::new(Stats::new()),
        encrypt,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let json = g.format == Format::Json;
    let report: Reporter = Arc::new(move |p| print_progress(&p, json));
    rt.block_on(async {
        let stats = cfg.stats.clone();
        let render: Render = Arc::new(move || (stats.render(), OPENMETRICS_TEXT));
        let metrics = cairn_client::metrics::serve(&a.listen_metrics_urls, render).await?;
        let done =
            cairn_backup::run::run(dialer, &cfg, cairn_client::signals::stopped(), &report).await;
        for t in metrics {
            t.abort();
        }
        Ok::<_, anyhow::Error>(done?)
    })?;
    Ok(())
}

/// One line per event on stdout (one JSON object with `-w json`), for logs and scripts.
fn print_progress(p: &Progress, json: bool) {
    if json {
        println!("{}", serde_json::to_string(p).unwrap_or_default());
    } else {
        println!("{p}");
    }
}

/// When the first and the last change of a chain's segments were recorded (Unix ms); `Err`
/// of `None` when they are encrypted and no --identity was given.
async fn times(t: &Target, c: &Chain) -> anyhow::Result<Result<Option<(i64, i64)>, ()>> {
    let (Some(first), Some(last)) = (c.segments.first(), c.segments.last()) else {
        return Ok(Ok(None));
    };
    for s in [first, last] {
        match t.fetch(&s.path).await {
            Ok(()) => {}
            Err(TargetError::Crypt(CryptError::NoIdentity { .. })) => return Ok(Err(())),
            // removed since the listing (a running backup's retention): no times to show
            Err(e) if e.is_not_found() => return Ok(Ok(None)),
            Err(e) => return Err(e.into()),
        }
    }
    let span = (
        seal_of(&first.path)?.first_unix_ms,
        seal_of(&last.path)?.last_unix_ms,
    );
    t.forget(&first.path);
    t.forget(&last.path);
    Ok(Ok(Some(span)))
}

async fn list(a: &TargetArg, format: Format) -> anyhow::Result<()> {
    let target = a.open()?;
    let t = Timeline::from_entries(target.entries().await?);
    let chains = t.chains();
    if format == Format::Json {
        let mut rows = Vec::new();
        for c in &chains {
            let recorded = times(&target, c)
                .await?
                .ok()
                .flatten()
                .map(|(a, b)| [format_rfc3339(a), format_rfc3339(b)]);
            rows.push(serde_json::json!({
                "full": {"revision": c.full.revision, "bytes": c.full.bytes, "path": target.locate(&c.full.path)},
                "segments": c.segments.len(),
                "segment_bytes": c.segments.iter().map(|s| s.bytes).sum::<u64>(),
                "restorable": [c.full.revision, c.last],
                "recorded": recorded,
                "gap_to": c.gap_to,
            }));
        }
        let unsealed: Vec<String> = t.unsealed.iter().map(|p| target.locate(p)).collect();
        let unreachable: Vec<[i64; 2]> = t.unreachable().iter().map(|u| [u.0, u.1]).collect();
        return print_out(&format!(
            "{}\n",
            serde_json::json!({"chains": rows, "unreachable": unreachable, "unsealed": unsealed})
        ));
    }
    let mut out = String::new();
    if chains.is_empty() {
        out.push_str(&format!("{}: no full snapshot yet\n", target.describe()));
    }
    for c in &chains {
        out.push_str(&format!(
            "full snapshot at revision {} ({} bytes), then {} segments ({} bytes): restorable to revisions {}..={}\n",
            c.full.revision,
            c.full.bytes,
            c.segments.len(),
            c.segments.iter().map(|s| s.bytes).sum::<u64>(),
            c.full.revision,
            c.last
        ));
        match times(&target, c).await? {
            Ok(Some((first, last))) => out.push_str(&format!(
                "  changes recorded from {} to {} (--to-time restores to any moment in between)\n",
                format_rfc3339(first),
                format_rfc3339(last)
            )),
            Ok(None) => {}
            Err(()) => out.push_str(
                "  the segments are encrypted: --identity shows when their changes were recorded\n",
            ),
        }
        if let Some(to) = c.gap_to {
            out.push_str(&format!(
                "  gap: revisions {}..={} are missing after it\n",
                c.last + 1,
                to - 1
            ));
        }
    }
    for (first, last, next) in t.unreachable() {
        out.push_str(&format!(
            "revisions {first}..={last} cannot be restored to: the server compacted them before the backup recorded them (the snapshot at {next} holds their outcome)\n"
        ));
    }
    for p in &t.unsealed {
        out.push_str(&format!("unsealed (ignored): {}\n", target.locate(p)));
    }
    print_out(&out)
}

async fn verify(a: &TargetArg) -> anyhow::Result<()> {
    let target = a.open()?;
    let report = cairn_backup::timeline::verify(&target).await?;
    if report.problems.is_empty() {
        return print_out(&format!(
            "{}: {} full snapshots, {} segments, {} revisions: OK\n",
            target.describe(),
            report.fulls,
            report.segments,
            report.changes
        ));
    }
    for p in &report.problems {
        eprintln!("{p}");
    }
    anyhow::bail!(
        "{}: {} problems in {} full snapshots and {} segments",
        target.describe(),
        report.problems.len(),
        report.fulls,
        report.segments
    )
}
