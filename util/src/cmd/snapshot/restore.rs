//! `cairnutl snapshot restore FILE`: a new data dir from a snapshot (Cairn's, or etcd's: the
//! migration from etcd), with the membership from `--initial-cluster` (etcdutl's flags,
//! checks and messages).
//!
//! Everything that can be refused is checked before anything is created: the flags, the
//! member's name and URLs, the target (absent or empty), the snapshot's header. The data dir
//! is then built in a temporary directory beside the target (`.<name>.restore-<pid>`), synced,
//! and renamed into place; on any error the temporary directory is removed, so a failed
//! restore leaves nothing behind (etcdutl leaves a partial data dir).

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use cairn_backup::crypt::Identities;
use cairn_backup::restore::{RestorePlan, parse_rfc3339, plan as plan_restore, revision_at};
use cairn_backup::target::Target;

use crate::cmd::online::block_on;
use cairn_consensus::bootstrap::{
    Bootstrap, parse_initial_cluster, plan, split_urls, write_restored,
};
use cairn_storage::snapshot::{
    BodySummary, EtcdPlan, EtcdSnapshot, HistoryWriter, RestoreOptions, SnapshotFile, SnapshotInfo,
    restore_etcd_kv, restore_kv,
};

pub fn run(args: super::RestoreArgs) -> anyhow::Result<()> {
    if (args.bump_revision == 0 && args.mark_compacted)
        || (args.bump_revision > 0 && !args.mark_compacted)
    {
        // etcdutl 3.6's wording, its flag-name slip included
        bail!("--mark-compacted required if --revision-bump > 0");
    }
    let cluster = parse_initial_cluster(&args.initial_cluster)?;
    let peer_urls = split_urls(&args.initial_advertise_peer_urls);
    let boot = plan(
        &args.name,
        &cluster,
        &args.initial_cluster_token,
        &peer_urls,
    )?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.cairn", args.name)));
    check_empty(&data_dir)?;
    // an object store's files are fetched beside the data dir, kept until the restore ends
    let scratch = data_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let (history, _fetched) = match &args.from_backup {
        Some(spec) => {
            let target = Target::open(spec, Some(&scratch))?
                .with_identities(Identities::load(&args.identity)?);
            let plan = block_on(backup_plan(&target, &args))?;
            (Some(plan), Some(target))
        }
        None => (None, None),
    };
    let file_path = match (&history, &args.file) {
        (Some(plan), _) => plan.full.clone(),
        (None, Some(file)) => file.clone(),
        (None, None) => bail!("a snapshot file or --from-backup is needed"),
    };
    let opened = SnapshotFile::open(&file_path)?;
    // an etcd file's digest and consistency are checked here, before anything is created
    let file = match opened {
        SnapshotFile::Cairn(info) => Source::Cairn(info),
        SnapshotFile::Etcd(snap) => {
            let bar = super::progress_bar(Some(snap.file_size), "checking");
            let plan = snap.preflight(args.skip_hash_check, &mut |done| bar.set_position(done));
            bar.finish_and_clear();
            Source::Etcd(snap, plan?)
        }
    };
    let revision = match (&history, &file) {
        (Some(plan), _) => plan.to_revision,
        (None, Source::Cairn(info)) => info.header.revision,
        (None, Source::Etcd(_, plan)) => plan.revision,
    };
    let bump = i64::try_from(args.bump_revision)
        .ok()
        .filter(|b| {
            revision
                .checked_add(*b)
                .and_then(|r| r.checked_add(1))
                .is_some()
        })
        .ok_or_else(|| {
            anyhow!(
                "--bump-revision {} is too large for a snapshot at revision {revision}",
                args.bump_revision
            )
        })?;
    let opts = RestoreOptions {
        skip_hash_check: args.skip_hash_check,
        bump_revision: bump,
        mark_compacted: args.mark_compacted,
    };

    let size = match &file {
        Source::Cairn(info) => info.file_size,
        Source::Etcd(snap, _) => snap.file_size,
    };
    let bar = super::progress_bar(Some(size), "restoring");
    let built = build(
        &file,
        history.as_ref(),
        &data_dir,
        &boot,
        opts,
        &mut |done| bar.set_position(done),
    );
    bar.finish_and_clear();
    let (_, replayed) = built?;

    let what = match (&history, &args.from_backup) {
        (Some(plan), Some(spec)) => format!(
            "backup {spec} (snapshot at revision {} and {} changes after it)",
            plan.full_revision, replayed
        ),
        _ => format!("snapshot {}", file_path.display()),
    };
    let mut line = format!(
        "restored {what} into {} (member {:x}, cluster {:x}, revision {revision}",
        data_dir.display(),
        boot.member_id,
        boot.cluster_id,
    );
    if opts.mark_compacted {
        line += &format!(
            ", bumped by {bump} and compacted at {}; the next write gets revision {}",
            revision + bump,
            revision + bump + 1
        );
    }
    println!("{line})");
    Ok(())
}

/// The snapshot and changes that restore `target` to `--to-revision`, or to the revision
/// `--to-time` names.
async fn backup_plan(target: &Target, args: &super::RestoreArgs) -> anyhow::Result<RestorePlan> {
    let revision = match (args.to_revision, &args.to_time) {
        (Some(r), _) => r,
        (None, Some(t)) => {
            let ms = parse_rfc3339(t).ok_or_else(|| {
                anyhow!("--to-time {t:?} is not an RFC 3339 time (e.g. 2026-12-04T02:00:00Z)")
            })?;
            revision_at(target, ms).await?.ok_or_else(|| {
                anyhow!(
                    "the backup at {} recorded no change at or before {t}",
                    target.describe()
                )
            })?
        }
        (None, None) => bail!("--from-backup needs --to-revision or --to-time"),
    };
    Ok(plan_restore(target, revision).await?)
}

/// A snapshot ready to restore: a Cairn file whose header checked out, or an etcd file that
/// passed its preflight.
enum Source {
    Cairn(SnapshotInfo),
    Etcd(EtcdSnapshot, EtcdPlan),
}

/// etcd's rule: the data dir may exist only if it is an empty directory.
fn check_empty(dir: &Path) -> anyhow::Result<()> {
    let refuse = || {
        anyhow!(
            "data-dir {:?} not empty or could not be read",
            dir.display().to_string()
        )
    };
    match fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(refuse()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => Err(refuse()),
    }
}

/// Removes the temporary directory unless the restore got as far as renaming it into place.
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// `<target>/member/kv.redb` and `member/raft.redb`, built aside, synced, renamed into place.
fn build(
    file: &Source,
    history: Option<&RestorePlan>,
    target: &Path,
    boot: &Bootstrap,
    opts: RestoreOptions,
    progress: &mut (dyn FnMut(u64) + Send),
) -> anyhow::Result<(BodySummary, u64)> {
    let name = target
        .file_name()
        .ok_or_else(|| anyhow!("--data-dir {} does not name a directory", target.display()))?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = parent.join(format!(
        ".{}.restore-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    // only a run that died with our pid could have left this behind
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut cleanup = Cleanup(Some(tmp.clone()));

    let member = tmp.join("member");
    fs::create_dir(&member).with_context(|| format!("cannot create {}", member.display()))?;
    let kv = member.join("kv.redb");
    // from a backup, the compaction marks of a bump go on top of the history, not the snapshot
    let snapshot_opts = match history {
        Some(_) => RestoreOptions {
            bump_revision: 0,
            mark_compacted: false,
            ..opts
        },
        None => opts,
    };
    let summary = match file {
        Source::Cairn(info) => restore_kv(info, &kv, snapshot_opts, progress)?,
        Source::Etcd(snap, plan) => restore_etcd_kv(snap, plan, &kv, snapshot_opts)?,
    };
    let mut replayed = 0;
    if let Some(plan) = history {
        let compact_to = opts
            .mark_compacted
            .then_some(plan.to_revision + opts.bump_revision);
        let mut writer = HistoryWriter::open(&kv)?;
        let done = plan.replay(&mut |rows| writer.write(rows).map_err(|e| e.to_string()))?;
        writer.finish(&done.leases, done.compacted, compact_to)?;
        replayed = done.rows;
    }
    write_restored(&member, boot)
        .with_context(|| format!("cannot write {}", member.join("raft.redb").display()))?;
    for file in [kv, member.join("raft.redb")] {
        sync(&file)?;
    }
    sync(&member)?;
    sync(&tmp)?;
    fs::rename(&tmp, target)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), target.display()))?;
    cleanup.0 = None;
    sync(&parent)?;
    Ok((summary, replayed))
}

/// fsync of a file or a directory (a directory's entries are durable only once it is synced).
fn sync(path: &Path) -> anyhow::Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_must_be_absent_or_empty() {
        let dir = tempfile::tempdir().unwrap();
        check_empty(&dir.path().join("absent")).unwrap();
        check_empty(dir.path()).unwrap();
        fs::write(dir.path().join("x"), b"").unwrap();
        let e = check_empty(dir.path()).unwrap_err().to_string();
        assert!(e.ends_with("not empty or could not be read"), "{e}");
        let e = check_empty(&dir.path().join("x")).unwrap_err().to_string();
        assert!(e.starts_with("data-dir \""), "{e}");
    }
}
