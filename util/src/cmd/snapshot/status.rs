//! `cairnutl snapshot status FILE`: etcdutl's HASH | REVISION | TOTAL KEYS | TOTAL SIZE |
//! VERSION, from the header alone, so it answers at once for a file of any size. It does not
//! read the body or check the digest: `snapshot verify` does that.

use cairn_storage::snapshot::{SnapshotInfo, read_header};

use crate::printer::{Format, Report, render};

pub fn run(args: super::FileArg, format: Format) -> anyhow::Result<()> {
    let info = read_header(&args.file)?;
    print!("{}", render(&report(&info, format), format));
    Ok(())
}

fn report(info: &SnapshotInfo, format: Format) -> Report {
    let h = &info.header;
    let json = serde_json::json!({
        "hash": h.hash,
        "revision": h.revision,
        "totalKey": h.key_count,
        "totalSize": info.file_size,
        "version": h.server_version,
        // Cairn's, after etcdutl's five (the table keeps etcdutl's columns for scripts)
        "authEnabled": h.auth_enabled,
        "users": h.user_count,
        "roles": h.role_count,
    });
    if format == Format::Fields {
        // etcdutl's fields printer has its own titles and prints raw numbers
        return Report {
            columns: vec!["Hash", "Revision", "Keys", "Size", "Version"],
            rows: vec![vec![
                h.hash.to_string(),
                h.revision.to_string(),
                h.key_count.to_string(),
                info.file_size.to_string(),
                h.server_version.clone(),
            ]],
            json,
        };
    }
    Report {
        columns: vec!["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE", "VERSION"],
        rows: vec![vec![
            format!("{:x}", h.hash),
            h.revision.to_string(),
            h.key_count.to_string(),
            humanize_bytes(info.file_size),
            h.server_version.clone(),
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
