//! `cairnutl snapshot status FILE`: etcdutl's HASH | REVISION | TOTAL KEYS | TOTAL SIZE |
//! VERSION, from the header alone, so it answers at once for a file of any size. It does not
//! read the body or check the digest: `snapshot verify` does that.

use cairn_storage::snapshot::{EtcdSnapshot, SnapshotFile, SnapshotInfo};

use crate::printer::{Format, Report, render};

pub fn run(args: super::FileArg, format: Format) -> anyhow::Result<()> {
    let status = match SnapshotFile::open(&args.file)? {
        SnapshotFile::Cairn(info) => cairn(&info),
        SnapshotFile::Etcd(snap) => etcd(&snap)?,
    };
    print!("{}", render(&report(&status, format), format));
    Ok(())
}

/// etcdutl's five fields, then Cairn's own (JSON only: the table keeps etcdutl's columns for
/// scripts).
struct Status {
    hash: u32,
    revision: i64,
    total_key: u64,
    total_size: u64,
    version: String,
    extras: serde_json::Value,
}

fn cairn(info: &SnapshotInfo) -> Status {
    let h = &info.header;
    Status {
        hash: h.hash,
        revision: h.revision,
        total_key: h.key_count as u64,
        total_size: info.file_size,
        version: h.server_version.clone(),
        extras: serde_json::json!({
            "authEnabled": h.auth_enabled,
            "users": h.user_count,
            "roles": h.role_count,
        }),
    }
}

/// An etcd file: etcdutl's numbers computed as etcdutl computes them (its consistency check
/// first, so a damaged database is refused as etcdutl refuses it).
fn etcd(snap: &EtcdSnapshot) -> anyhow::Result<Status> {
    let st = snap.status()?;
    let x = snap.extras()?;
    Ok(Status {
        hash: st.hash,
        revision: st.revision,
        total_key: st.total_key,
        total_size: st.total_size,
        version: x.version.clone(),
        extras: serde_json::json!({
            "format": "etcd",
            "digest": snap.has_digest,
            "compactRevision": x.compact_revision,
            "authEnabled": x.auth_enabled,
            "users": x.users,
            "roles": x.roles,
        }),
    })
}

fn report(st: &Status, format: Format) -> Report {
    let mut json = serde_json::json!({
        "hash": st.hash,
        "revision": st.revision,
        "totalKey": st.total_key,
        "totalSize": st.total_size,
        "version": st.version,
    });
    if let (Some(all), Some(extras)) = (json.as_object_mut(), st.extras.as_object()) {
        all.extend(extras.clone());
    }
    if format == Format::Fields {
        // etcdutl's fields printer has its own titles and prints raw numbers
        return Report {
            columns: vec!["Hash", "Revision", "Keys", "Size", "Version"],
            rows: vec![vec![
                st.hash.to_string(),
                st.revision.to_string(),
                st.total_key.to_string(),
                st.total_size.to_string(),
                st.version.clone(),
            ]],
            json,
        };
    }
    Report {
        columns: vec!["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE", "VERSION"],
        rows: vec![vec![
            format!("{:x}", st.hash),
            st.revision.to_string(),
            st.total_key.to_string(),
            humanize_bytes(st.total_size),
            st.version.clone(),
        ]],
        json,
    }
}

/// Go's `humanize.Bytes`: SI units, one decimal below 10 ("1.2 kB", "94 MB", "512 B").
pub(super) fn humanize_bytes(size: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if size < 10 {
        return format!("{size} B");
    }
    let base = 1000f64;
    let e = ((size as f64).ln() / base.ln()).floor();
    let unit = UNITS[(e as usize).min(UNITS.len() - 1)];
    let val = ((size as f64) / base.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {unit}")
    } else {
        format!("{val:.0} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_go_humanize() {
        assert_eq!(humanize_bytes(0), "0 B");
        assert_eq!(humanize_bytes(9), "9 B");
        assert_eq!(humanize_bytes(512), "512 B");
        assert_eq!(humanize_bytes(1_234), "1.2 kB");
        assert_eq!(humanize_bytes(9_960), "10 kB");
        assert_eq!(humanize_bytes(82_854_982), "83 MB");
        assert_eq!(humanize_bytes(94_000_032), "94 MB");
        assert_eq!(humanize_bytes(2_500_000_000), "2.5 GB");
    }
}
