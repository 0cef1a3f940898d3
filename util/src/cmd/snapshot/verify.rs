//! `cairnutl snapshot verify FILE`: every check the format has. A Cairn file: header,
//! SHA-256, zstd frame, each record, counts, the recomputed HashKV. An etcd file: the
//! trailing SHA-256 (etcdctl's; `--skip-hash-check` for a bare `db`), bbolt's consistency
//! check, every row Cairn would restore decoded, HashKV recomputed. A failure is the one-line
//! `SnapshotError`, which names the file and the problem, and a non-zero exit.

use cairn_storage::snapshot::{BodySummary, EtcdVerified, SnapshotFile, SnapshotInfo, read_body};

use crate::printer::{Format, Report, render};

pub fn run(args: super::VerifyArgs, format: Format) -> anyhow::Result<()> {
    let file = SnapshotFile::open(&args.file)?;
    let bar = super::progress_bar(Some(file.file_size()), "verifying");
    let mut progress = |done| bar.set_position(done);
    let result = match &file {
        SnapshotFile::Cairn(info) => {
            read_body(info, !args.skip_hash_check, &mut progress, &mut |_| Ok(()))
                .map(|summary| cairn(info, &summary))
        }
        SnapshotFile::Etcd(snap) => snap
            .verify(args.skip_hash_check, &mut progress)
            .map(|v| etcd(&v, snap.file_size)),
    };
    bar.finish_and_clear();
    print!("{}", render(&report(&result?), format));
    Ok(())
}

/// One verified file, whichever its format.
struct Verified {
    format: &'static str,
    revision: i64,
    compact_revision: i64,
    live_keys: i64,
    summary: BodySummary,
    total_size: u64,
    auth_enabled: bool,
    users: u64,
    roles: u64,
}

fn cairn(info: &SnapshotInfo, summary: &BodySummary) -> Verified {
    let h = &info.header;
    Verified {
        format: "cairn",
        revision: h.revision,
        compact_revision: h.compact_revision,
        live_keys: h.key_count,
        summary: *summary,
        total_size: info.file_size,
        auth_enabled: h.auth_enabled,
        users: h.user_count,
        roles: h.role_count,
    }
}

fn etcd(v: &EtcdVerified, file_size: u64) -> Verified {
    Verified {
        format: "etcd",
        revision: v.plan.revision,
        compact_revision: v.plan.extras.compact_revision,
        live_keys: v.live_keys,
        summary: v.summary,
        total_size: file_size,
        auth_enabled: v.plan.extras.auth_enabled,
        users: v.plan.extras.users,
        roles: v.plan.extras.roles,
    }
}

fn report(v: &Verified) -> Report {
    let s = &v.summary;
    Report {
        columns: vec![
            "REVISION",
            "COMPACT REVISION",
            "RECORDS",
            "TOTAL KEYS",
            "LEASES",
            "HASH",
            "AUTH",
            "STATUS",
        ],
        rows: vec![vec![
            v.revision.to_string(),
            v.compact_revision.to_string(),
            s.records.to_string(),
            v.live_keys.to_string(),
            s.leases.to_string(),
            format!("{:x}", s.hash),
            super::auth_summary(v.auth_enabled, v.users, v.roles),
            "OK".to_string(),
        ]],
        json: serde_json::json!({
            "format": v.format,
            "revision": v.revision,
            "compactRevision": v.compact_revision,
            "records": s.records,
            "kvRows": s.kv_rows,
            "totalKey": v.live_keys,
            "leases": s.leases,
            "alarms": s.alarms,
            "hash": s.hash,
            "totalSize": v.total_size,
            "authEnabled": v.auth_enabled,
            "users": v.users,
            "roles": v.roles,
            "status": "OK",
        }),
    }
}
