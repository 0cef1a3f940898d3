//! `cairnutl snapshot save|status|verify|restore`: flags as etcdctl/etcdutl name them; each
//! command in its own file, the format itself in `cairn_storage::snapshot`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

mod convert;
mod restore;
mod save;
mod status;
mod verify;

#[derive(Subcommand)]
pub enum Snapshot {
    /// Stream a consistent snapshot from a healthy endpoint into FILE (`-` for stdout).
    Save(SaveArgs),
    /// Print HASH, REVISION, TOTAL KEYS, TOTAL SIZE, VERSION from the header (instant).
    Status(FileArg),
    /// Check everything: digest, decompression, every record, the recomputed HashKV.
    Verify(VerifyArgs),
    /// Build a new data dir from a snapshot, with membership from --initial-cluster.
    Restore(RestoreArgs),
    /// Convert a snapshot file to etcd's format (for etcd's tools) or to Cairn's, offline.
    Convert(ConvertArgs),
}

#[derive(Args)]
pub struct ConvertArgs {
    /// The format to write.
    #[arg(long, value_enum)]
    pub to: Target,
    /// The snapshot to convert (either format, told apart by its content).
    pub input: PathBuf,
    /// Where to write the converted snapshot.
    pub output: PathBuf,
    /// Do not compare the input's SHA-256 digest (an etcd `member/snap/db` has none).
    #[arg(long)]
    pub skip_hash_check: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Target {
    Etcd,
    Cairn,
}

#[derive(Args)]
pub struct FileArg {
    /// The snapshot file.
    pub file: PathBuf,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The snapshot file (Cairn's, or etcd's: `etcdctl snapshot save` output or a `db`).
    pub file: PathBuf,
    /// Do not compare the SHA-256 digest (needed for an etcd `member/snap/db`, which has
    /// none); everything else is still checked.
    #[arg(long)]
    pub skip_hash_check: bool,
}

#[derive(Args)]
pub struct SaveArgs {
    /// Where to write the snapshot; `-` writes to stdout.
    pub file: String,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// The snapshot file (not with --from-backup).
    #[arg(
        required_unless_present = "from_backup",
        conflicts_with = "from_backup"
    )]
    pub file: Option<PathBuf>,
    /// Restore from a continuous backup (`cairnutl backup run`) instead, to a point in its
    /// history: --to-revision or --to-time. A directory, file:///path, or an object store
    /// (s3://bucket/prefix, gs://..., az://..., configured from the environment as for
    /// `backup run`); what it needs is fetched beside the data dir.
    #[arg(long)]
    pub from_backup: Option<String>,
    /// With --from-backup: the revision to restore to (its original number is kept).
    #[arg(long, requires = "from_backup", conflicts_with = "to_time")]
    pub to_revision: Option<i64>,
    /// With --from-backup: restore to the last revision recorded at or before this time
    /// (RFC 3339, e.g. 2026-12-04T02:00:00Z).
    #[arg(long, requires = "from_backup")]
    pub to_time: Option<String>,
    /// With --from-backup: an age identity file (age-keygen's) that decrypts a backup made
    /// with `backup run --encrypt-to`; repeatable.
    #[arg(long, requires = "from_backup")]
    pub identity: Vec<PathBuf>,
    /// Path to the data directory to create [default: <name>.cairn].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Initial cluster configuration for the restored cluster.
    #[arg(long, default_value = "default=http://localhost:2380")]
    pub initial_cluster: String,
    /// Initial cluster token for the restored cluster.
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// Peer URLs of this member.
    #[arg(long, default_value = "http://localhost:2380")]
    pub initial_advertise_peer_urls: String,
    /// Ignore the snapshot's SHA-256 digest (records and HashKV are still checked).
    #[arg(long)]
    pub skip_hash_check: bool,
    /// How much to add to the latest revision; needs --mark-compacted.
    #[arg(long, default_value_t = 0)]
    pub bump_revision: u64,
    /// Mark the latest revision after --bump-revision as compacted (watchers from before the
    /// restore then get ErrCompacted and relist).
    #[arg(long)]
    pub mark_compacted: bool,
}

pub fn run(cmd: Snapshot, g: &crate::cmd::Global) -> anyhow::Result<()> {
    match cmd {
        Snapshot::Save(a) => save::run(a, g),
        Snapshot::Status(a) => status::run(a, g.format),
        Snapshot::Verify(a) => verify::run(a, g.format),
        Snapshot::Restore(a) => restore::run(a),
        Snapshot::Convert(a) => convert::run(a),
    }
}

/// A progress bar on a terminal, nothing otherwise (cron jobs stay quiet).
pub fn progress_bar(total: Option<u64>, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    let style = indicatif::ProgressStyle::with_template(
        "{msg} {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

/// A snapshot's authentication as `verify` prints it: `off`, or `on (2 users, 3 roles)`
/// (users and roles are kept while auth is off too, and counted then).
pub(super) fn auth_summary(enabled: bool, users: u64, roles: u64) -> String {
    let state = if enabled { "on" } else { "off" };
    if users == 0 && roles == 0 {
        return state.to_string();
    }
    format!("{state} ({users} users, {roles} roles)")
}
