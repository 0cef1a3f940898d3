//! `cairnutl make-mirror DEST`: keeps DEST's prefix equal to the source's (`--endpoints` and
//! the other global connection flags), with etcdctl's flags. The engine is the `cairn-mirror` library; this file turns flags into
//! its config and renders its events: a status line on a terminal, one JSON object per line
//! with `-w json`, otherwise a line per notable event and a status line every 30 s.
//! `--check` compares both sides once instead, and exits non-zero on any difference.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_client::flags::{parse_duration, split_endpoints};
use cairn_client::{ClientConfig, TlsOptions, config::credentials};
use cairn_mirror::check::CheckReport;
use cairn_mirror::progress::Status;
use cairn_mirror::{Config, Event, KeyMap, Stats};

use super::online::print_out;
use crate::printer::Format;

#[derive(clap::Args)]
pub struct Args {
    /// Destination endpoints: HOST:PORT[,HOST:PORT...] (tried in turn on failures).
    destination: String,
    /// Key-value prefix to mirror ("" mirrors every key).
    #[arg(long, default_value = "")]
    prefix: String,
    /// Destination prefix to replace the source prefix with (at the start of the key only).
    #[arg(long)]
    dest_prefix: Option<String>,
    /// Mirror key-values to the root of the destination (strip the source prefix).
    #[arg(long, conflicts_with = "dest_prefix")]
    no_dest_prefix: bool,
    /// Start from this source revision: everything up to it is taken as already at the
    /// destination (no initial copy). Ignored when the destination has a checkpoint.
    #[arg(long, default_value_t = 0)]
    rev: i64,
    /// Most operations in one destination txn (the checkpoint put is one of them).
    #[arg(long, default_value_t = 128)]
    max_txn_ops: usize,
    /// Most bytes of keys and values in one destination txn.
    #[arg(long, default_value_t = 1024 * 1024)]
    max_txn_bytes: usize,
    /// Verify certificates of TLS-enabled destination servers using this CA bundle.
    #[arg(long)]
    dest_cacert: Option<PathBuf>,
    /// Identify to the destination with this TLS certificate.
    #[arg(long)]
    dest_cert: Option<PathBuf>,
    /// Identify to the destination with this TLS key.
    #[arg(long)]
    dest_key: Option<PathBuf>,
    /// Disable transport security for destination connections (default true; TLS is used
    /// when certificates or an https:// endpoint are given).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          require_equals = true, default_missing_value = "true")]
    dest_insecure_transport: bool,
    /// Destination username[:password] for authentication.
    #[arg(long)]
    dest_user: Option<String>,
    /// Destination password (when --dest-user has none).
    #[arg(long)]
    dest_password: Option<String>,
    /// Attach mirrored keys to destination leases with the source's IDs and TTLs.
    #[arg(long)]
    with_leases: bool,
    /// Serve Prometheus metrics at /metrics on these URLs (http://HOST:PORT, comma separated).
    #[arg(long, value_delimiter = ',')]
    listen_metrics_urls: Vec<String>,
    /// Compare source and destination for the prefix once, report differences, and exit
    /// (non-zero when they differ).
    #[arg(long)]
    check: bool,
    /// On the first copy, delete destination keys under the prefix that the source lacks
    /// (later re-syncs always do).
    #[arg(long)]
    prune: bool,
    /// Copy afresh even though the destination's checkpoint names another source.
    #[arg(long)]
    force_resync: bool,
    /// How long the claim on the destination prefix outlives a killed mirror.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    fence_ttl: Duration,
    /// Destination txns in flight during a full copy.
    #[arg(long, default_value_t = 8)]
    sync_parallelism: usize,
    /// Chained destination txns in flight while watching (1: wait for each answer).
    #[arg(long, default_value_t = 64)]
    txn_pipeline: usize,
    /// One destination txn per source revision, even while catching up (by default whole
    /// revisions share a txn when the mirror is behind; each stays atomic and in order).
    #[arg(long)]
    txn_per_revision: bool,
    /// Ask a silent source watch for progress after this long; reopen it after twice that.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    watch_idle: Duration,
}

pub fn run(a: Args, g: &super::Global) -> anyhow::Result<()> {
    let cfg = config(&a, g)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if a.check {
        let report = rt.block_on(cairn_mirror::check::check(&cfg))?;
        return print_check(&report, g.format);
    }
    let stats = Arc::new(Stats::default());
    let report = renderer(g.format);
    rt.block_on(async {
        let metrics = cairn_mirror::metrics::serve(&a.listen_metrics_urls, stats.clone()).await?;
        let r = cairn_mirror::run(cfg, report, stats, cairn_client::signals::stopped()).await;
        metrics.iter().for_each(|t| t.abort());
        r.map_err(anyhow::Error::from)
    })
}

fn config(a: &Args, g: &super::Global) -> anyhow::Result<Config> {
    let mut source: ClientConfig = g.dialer()?.config().clone();
    // at least 5 s per call, whatever --command-timeout says: a busy destination's txn that
    // times out is only retried, so a short deadline slows the mirror down instead of failing
    source.command_timeout = source.command_timeout.max(Duration::from_secs(5));
    let destination = ClientConfig {
        endpoints: split_endpoints(&a.destination),
        tls: TlsOptions {
            cacert: a.dest_cacert.clone(),
            cert: a.dest_cert.clone(),
            key: a.dest_key.clone(),
            insecure_skip_tls_verify: false,
            insecure_transport: a.dest_insecure_transport,
        },
        user: credentials(
            "dest-",
            "Destination Password: ",
            a.dest_user.as_deref(),
            a.dest_password.as_deref(),
        )
        .map_err(anyhow::Error::msg)?,
        ..source.clone()
    };
    let dest_prefix = if a.no_dest_prefix {
        Some(&b""[..])
    } else {
        a.dest_prefix.as_deref().map(str::as_bytes)
    };
    let keys = KeyMap::new(a.prefix.as_bytes(), dest_prefix);
    let mut cfg = Config::new(source, destination, keys);
    cfg.start_revision = a.rev;
    cfg.max_txn_ops = a.max_txn_ops;
    cfg.max_txn_bytes = a.max_txn_bytes;
    cfg.sync_parallelism = a.sync_parallelism;
    cfg.with_leases = a.with_leases;
    cfg.prune_first_sync = a.prune;
    cfg.force_resync = a.force_resync;
    cfg.fence_ttl = a.fence_ttl;
    cfg.watch_idle = a.watch_idle;
    cfg.txn_pipeline = a.txn_pipeline;
    cfg.merge_revisions = !a.txn_per_revision;
    cfg.validate()?;
    Ok(cfg)
}

/// How often a status line is printed without a terminal (etcdctl prints its count every 30 s).
const STATUS_EVERY: Duration = Duration::from_secs(30);

fn renderer(format: Format) -> cairn_mirror::Reporter {
    if format == Format::Json {
        return Arc::new(|e: Event| {
            if let Ok(line) = serde_json::to_string(&e) {
                let _ = print_out(&format!("{line}\n"));
            }
        });
    }
    if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        return Arc::new(move |e: Event| match e {
            Event::Status(s) => bar.set_message(status_line(&s)),
            other => bar.println(event_line(&other)),
        });
    }
    let last = Mutex::new(Instant::now());
    Arc::new(move |e: Event| match e {
        Event::Status(s) => {
            let mut l = last.lock().expect("renderer lock");
            if l.elapsed() >= STATUS_EVERY {
                *l = Instant::now();
                let _ = print_out(&format!("{}\n", status_line(&s)));
            }
        }
        other => {
            let _ = print_out(&format!("{}\n", event_line(&other)));
        }
    })
}

fn status_line(s: &Status) -> String {
    format!(
        "{:?}: source rev {} | mirrored rev {} | lag {} revs, {:.1}s | {:.0} events/s | {} events, {} keys copied",
        s.phase,
        s.source_revision,
        s.mirrored_revision,
        s.lag_revisions,
        s.lag_seconds,
        s.events_per_second,
        s.events_total,
        s.keys_copied_total
    )
}

fn event_line(e: &Event) -> String {
    match e {
        Event::Started {
            mirror_id,
            checkpoint_key,
        } => {
            format!("mirror {mirror_id} holds the destination prefix (checkpoint {checkpoint_key})")
        }
        Event::Resuming { revision, phase } => {
            format!("resuming from the destination's checkpoint: revision {revision} ({phase:?})")
        }
        Event::SyncStarted { revision, reason } => {
            format!("copying the prefix at source revision {revision}: {reason}")
        }
        Event::SyncProgress { revision, keys } => {
            format!("copied {keys} keys (revision {revision})")
        }
        Event::SyncDone {
            revision,
            keys,
            pruned,
            kept_extra,
            seconds,
        } => format!(
            "copy at revision {revision} done: {keys} keys in {seconds:.1}s, {pruned} destination keys pruned{}",
            if *kept_extra > 0 {
                format!(", {kept_extra} extra kept")
            } else {
                String::new()
            }
        ),
        Event::Watching { revision } => format!("watching the source from revision {revision}"),
        Event::Status(s) => status_line(s),
        Event::Retry {
            error,
            attempt,
            backoff_ms,
            ..
        } => format!("retry {attempt} in {backoff_ms} ms: {error}"),
        Event::Warning { message } => format!("warning: {message}"),
        Event::Stopped { mirrored_revision } => {
            format!("stopped; mirrored through source revision {mirrored_revision}")
        }
    }
}

fn print_check(r: &CheckReport, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        print_out(&format!("{}\n", serde_json::to_string(r)?))?;
    } else {
        let mut out = format!(
            "source:      {} keys at revision {}, hash {}\ndestination: {} keys at revision {}, hash {}\n",
            r.source_keys,
            r.source_revision,
            r.source_hash,
            r.destination_keys,
            r.destination_revision,
            r.destination_hash
        );
        if let Some(c) = r.checkpoint_revision {
            out.push_str(&format!(
                "compared at the checkpoint: source revision {c}\n"
            ));
        }
        if let Some(n) = &r.note {
            out.push_str(&format!("note: {n}\n"));
        }
        out.push_str(&format!(
            "missing {}, extra {}, different {}\n",
            r.missing, r.extra, r.different
        ));
        for d in &r.examples {
            out.push_str(&format!("  {}: {}\n", d.kind, d.key));
        }
        print_out(&out)?;
    }
    if r.is_equal() {
        Ok(())
    } else {
        anyhow::bail!(
            "destination differs from source: {} missing, {} extra, {} different",
            r.missing,
            r.extra,
            r.different
        )
    }
}
