//! `cairnutl snapshot verify FILE`: every check the format has (header, SHA-256, zstd frame,
//! each record, counts, the recomputed HashKV). A failure is the one-line `SnapshotError`,
//! which names the file and the problem, and a non-zero exit.

use cairn_storage::snapshot::{BodySummary, SnapshotInfo, read_header, verify};

use crate::printer::{Format, Report, render};

pub fn run(args: super::FileArg, format: Format) -> anyhow::Result<()> {
    // the header first, so the bar knows the size; verify reads it again (it is tiny)
    let size = read_header(&args.file)?.file_size;
    let bar = super::progress_bar(Some(size), "verifying");
    let result = verify(&args.file, &mut |done| bar.set_position(done));
    bar.finish_and_clear();
    let (info, summary) = result?;
    print!("{}", render(&report(&info, &summary), format));
    Ok(())
}

fn report(info: &SnapshotInfo, s: &BodySummary) -> Report {
    let h = &info.header;
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
            h.revision.to_string(),
            h.compact_revision.to_string(),
            s.records.to_string(),
            h.key_count.to_string(),
            s.leases.to_string(),
            format!("{:x}", s.hash),
            super::auth_summary(h),
            "OK".to_string(),
        ]],
        json: serde_json::json!({
            "revision": h.revision,
            "compactRevision": h.compact_revision,
            "records": s.records,
            "kvRows": s.kv_rows,
            "totalKey": h.key_count,
            "leases": s.leases,
            "alarms": s.alarms,
            "hash": s.hash,
            "totalSize": info.file_size,
            "authEnabled": h.auth_enabled,
            "users": h.user_count,
            "roles": h.role_count,
            "status": "OK",
        }),
    }
}
