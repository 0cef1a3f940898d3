//! Prints what a bbolt file holds: page size, txid, size, the consistency check, and each
//! top-level bucket with its entry count. An etcdctl snapshot (size 32 more than a multiple
//! of 512) is read without its trailing SHA-256.
//!
//! `cargo run -p cairn-bbolt --example summary -- FILE`

use std::io::Write;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        return Err("usage: summary FILE".into());
    };
    match summary(&path) {
        Err(e) if is_broken_pipe(e.as_ref()) => Ok(()),
        other => other,
    }
}

fn summary(path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let size = std::fs::metadata(path)?.len();
    let len = if size % 512 == 32 { size - 32 } else { size };
    let db = cairn_bbolt::Db::open(path, len)?;
    let mut out = std::io::stdout().lock();
    let (page_size, txid, total) = (db.page_size(), db.txid(), db.size());
    writeln!(out, "page size {page_size}, txid {txid}, size {total}")?;
    match db.check() {
        Ok(()) => writeln!(out, "check: ok")?,
        Err(e) => writeln!(out, "check: {e}")?,
    }
    let mut keys = 0u64;
    for name in db.bucket_names()? {
        let mut count = 0u64;
        db.for_each::<cairn_bbolt::Error>(&[&name], &mut |_, _| {
            count += 1;
            Ok(())
        })?;
        keys += count;
        writeln!(out, "{:<16} {count}", String::from_utf8_lossy(&name))?;
    }
    writeln!(out, "total keys {keys}")?;
    Ok(())
}

fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
