//! `cairnutl backup run|list|verify DIR`: continuous backups into a directory. The engine is
//! the `cairn-backup` library; this file turns flags into its config and prints.

use std::path::PathBuf;
use std::time::Duration;

use cairn_backup::restore::format_rfc3339;
use cairn_backup::run::{Progress, RunConfig};
use cairn_backup::segment::seal_of;
use cairn_backup::timeline::{Chain, Timeline};
use cairn_client::flags::parse_duration;
use clap::{Args, Subcommand};

use super::online::print_out;
use crate::printer::Format;

#[derive(Subcommand)]
pub enum Backup {
    /// Keep a backup in DIR: a full snapshot, then every revision after it in sealed
    /// segments, a new full snapshot on schedule; runs until SIGTERM or Ctrl-C, and resumes
    /// where it stopped.
    Run(RunArgs),
    /// The backup's timeline: full snapshots, the revisions the segments after each cover,
    /// gaps.
    List(DirArg),
    /// Read every file of the backup: digests, every change, the chain; exits non-zero
    /// naming what is wrong.
    Verify(DirArg),
}

#[derive(Args)]
pub struct RunArgs {
    /// The backup directory (created if missing).
    pub dir: PathBuf,
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
}

#[derive(Args)]
pub struct DirArg {
    /// The backup directory.
    pub dir: PathBuf,
}

pub fn run(b: Backup, g: &super::Global) -> anyhow::Result<()> {
    match b {
        Backup::Run(a) => run_backup(a, g),
        Backup::List(a) => list(&a, g.format),
        Backup::Verify(a) => verify(&a),
    }
}

fn run_backup(a: RunArgs, g: &super::Global) -> anyhow::Result<()> {
    let dialer = g.dialer()?;
    let cfg = RunConfig {
        dir: a.dir,
        full_every: a.full_every,
        segment_bytes: a.segment_bytes,
        segment_age: a.segment_age,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let json = g.format == Format::Json;
    rt.block_on(cairn_backup::run::run(
        dialer,
        &cfg,
        super::make_mirror::shutdown(),
        &mut |p| report(&p, json),
    ))?;
    Ok(())
}

/// One line per event on stdout (one JSON object with `-w json`), for logs and scripts.
fn report(p: &Progress, json: bool) {
    if json {
        println!("{}", serde_json::to_string(p).unwrap_or_default());
    } else {
        println!("{p}");
    }
}

/// When the first and the last change of a chain's segments were recorded (Unix ms).
fn times(c: &Chain) -> anyhow::Result<Option<(i64, i64)>> {
    let (Some(first), Some(last)) = (c.segments.first(), c.segments.last()) else {
        return Ok(None);
    };
    Ok(Some((
        seal_of(&first.path)?.first_unix_ms,
        seal_of(&last.path)?.last_unix_ms,
    )))
}

fn list(a: &DirArg, format: Format) -> anyhow::Result<()> {
    let t = Timeline::load(&a.dir)?;
    let chains = t.chains();
    if format == Format::Json {
        let mut rows = Vec::new();
        for c in &chains {
            let recorded = times(c)?.map(|(a, b)| [format_rfc3339(a), format_rfc3339(b)]);
            rows.push(serde_json::json!({
                "full": {"revision": c.full.revision, "bytes": c.full.bytes, "path": c.full.path},
                "segments": c.segments.len(),
                "segment_bytes": c.segments.iter().map(|s| s.bytes).sum::<u64>(),
                "restorable": [c.full.revision, c.last],
                "recorded": recorded,
                "gap_to": c.gap_to,
            }));
        }
        return print_out(&format!(
            "{}\n",
            serde_json::json!({"chains": rows, "unsealed": t.unsealed})
        ));
    }
    let mut out = String::new();
    if chains.is_empty() {
        out.push_str(&format!("{}: no full snapshot yet\n", a.dir.display()));
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
        if let Some((first, last)) = times(c)? {
            out.push_str(&format!(
                "  changes recorded from {} to {} (--to-time restores to any moment in between)\n",
                format_rfc3339(first),
                format_rfc3339(last)
            ));
        }
        if let Some(to) = c.gap_to {
            out.push_str(&format!(
                "  gap: revisions {}..={} are missing after it\n",
                c.last + 1,
                to - 1
            ));
        }
    }
    for p in &t.unsealed {
        out.push_str(&format!("unsealed (ignored): {}\n", p.display()));
    }
    print_out(&out)
}

fn verify(a: &DirArg) -> anyhow::Result<()> {
    let report = cairn_backup::timeline::verify(&a.dir)?;
    if report.problems.is_empty() {
        return print_out(&format!(
            "{}: {} full snapshots, {} segments, {} revisions: OK\n",
            a.dir.display(),
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
        a.dir.display(),
        report.problems.len(),
        report.fulls,
        report.segments
    )
}
