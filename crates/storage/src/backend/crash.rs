//! A file that loses power: a redb storage backend in memory that stops at a chosen write or
//! fsync, as redb's own crash tests do, and then hands out what a disk could hold afterwards.
//!
//! It keeps two images: what reads see (every write so far) and what was synced (as of the
//! last `sync_data`), plus the writes since that sync in order. At the planned point the
//! operation fails and so does every later one (the process is as good as dead: redb sees
//! I/O errors, the store above fails its commit). [`CrashFile::after_crash`] then builds the
//! file a restart would find: the synced image with none, all, or a prefix of the unsynced
//! writes, the last of them possibly torn in half — the orders a disk may persist them in
//! that keep earlier writes before later ones. (A disk may also reorder unsynced writes; redb
//! relies only on fsync ordering, and its commit checksums catch the rest.)

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

/// Where the power goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPlan {
    Never,
    /// The `n`th write (1-based) fails, and everything after it.
    AtWrite(u64),
    /// The `n`th fsync (1-based) fails before anything of it reaches the disk.
    AtSync(u64),
}

/// What of the writes since the last fsync the disk kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Torn {
    /// None of them.
    Lost,
    /// All of them.
    Kept,
    /// The first `n`, and half of the next one.
    Prefix(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug)]
struct Disk {
    current: Vec<u8>,
    synced: Vec<u8>,
    unsynced: Vec<Op>,
    plan: CrashPlan,
    writes: u64,
    syncs: u64,
    crashed: bool,
}

/// The simulated file; clones share it (the test keeps one, redb owns the other).
#[derive(Debug, Clone)]
pub struct CrashFile(Arc<Mutex<Disk>>);

fn power_loss() -> io::Error {
    io::Error::other("simulated power loss")
}

fn apply(image: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write(offset, data) => {
            let start = *offset as usize;
            let end = start + data.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            image[start..end].copy_from_slice(data);
        }
        Op::SetLen(len) => image.resize(*len as usize, 0),
    }
}

impl CrashFile {
    /// An empty file that crashes as `plan` says.
    pub fn new(plan: CrashPlan) -> CrashFile {
        Self::from_bytes(Vec::new(), plan)
    }

    /// A file holding `bytes` (all of them synced), e.g. what [`CrashFile::after_crash`] gave.
    pub fn from_bytes(bytes: Vec<u8>, plan: CrashPlan) -> CrashFile {
        CrashFile(Arc::new(Mutex::new(Disk {
            current: bytes.clone(),
            synced: bytes,
            unsynced: Vec::new(),
            plan,
            writes: 0,
            syncs: 0,
            crashed: false,
        })))
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(&self) -> io::Result<MutexGuard<'_, Disk>> {
        let disk = self.disk();
        if disk.crashed {
            return Err(power_loss());
        }
        Ok(disk)
    }

    /// Whether the planned point was reached.
    pub fn crashed(&self) -> bool {
        self.disk().crashed
    }

    /// Writes so far (the failed one included).
    pub fn writes(&self) -> u64 {
        self.disk().writes
    }

    /// Fsyncs so far (the failed one included).
    pub fn syncs(&self) -> u64 {
        self.disk().syncs
    }

    /// Writes and length changes since the last fsync.
    pub fn unsynced(&self) -> usize {
        self.disk().unsynced.len()
    }

    /// The file a restart finds, keeping `torn` of the unsynced writes.
    pub fn after_crash(&self, torn: Torn) -> Vec<u8> {
        let disk = self.disk();
        let mut image = disk.synced.clone();
        let kept = match torn {
            Torn::Lost => 0,
            Torn::Kept => disk.unsynced.len(),
            Torn::Prefix(n) => n.min(disk.unsynced.len()),
        };
        for op in &disk.unsynced[..kept] {
            apply(&mut image, op);
        }
        if let Torn::Prefix(_) = torn
            && let Some(Op::Write(offset, data)) = disk.unsynced.get(kept)
        {
            apply(
                &mut image,
                &Op::Write(*offset, data[..data.len() / 2].to_vec()),
            );
        }
        image
    }
}

impl redb::StorageBackend for CrashFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.live()?.current.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let disk = self.live()?;
        let start = offset as usize;
        let Some(bytes) = disk.current.get(start..start + out.len()) else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the file",
            ));
        };
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut disk = self.live()?;
        let op = Op::SetLen(len);
        apply(&mut disk.current, &op);
        disk.unsynced.push(op);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut disk = self.live()?;
        disk.syncs += 1;
        if disk.plan == CrashPlan::AtSync(disk.syncs) {
            disk.crashed = true;
            return Err(power_loss());
        }
        disk.synced = disk.current.clone();
        disk.unsynced.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut disk = self.live()?;
        disk.writes += 1;
        if disk.plan == CrashPlan::AtWrite(disk.writes) {
            disk.crashed = true;
            return Err(power_loss());
        }
        let op = Op::Write(offset, data.to_vec());
        apply(&mut disk.current, &op);
        disk.unsynced.push(op);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use redb::StorageBackend;

    use super::*;

    #[test]
    fn a_restart_keeps_what_was_synced_and_as_much_after_as_asked() {
        let f = CrashFile::new(CrashPlan::AtWrite(3));
        f.write(0, b"aaaa").unwrap();
        f.sync_data().unwrap();
        f.write(0, b"bbbb").unwrap();
        assert!(f.write(4, b"cccc").is_err(), "the third write fails");
        assert!(f.crashed());
        assert!(f.read(0, &mut [0; 4]).is_err(), "nothing works after it");
        assert!(f.sync_data().is_err());
        assert_eq!(f.after_crash(Torn::Lost), b"aaaa");
        assert_eq!(f.after_crash(Torn::Kept), b"bbbb");
        assert_eq!(f.after_crash(Torn::Prefix(0)), b"bbaa", "half of the first");
        assert_eq!((f.writes(), f.syncs(), f.unsynced()), (3, 1, 1));
    }

    #[test]
    fn a_failed_sync_persists_nothing_of_it() {
        let f = CrashFile::from_bytes(b"xy".to_vec(), CrashPlan::AtSync(1));
        f.set_len(4).unwrap();
        f.write(2, b"zz").unwrap();
        let mut got = [0; 4];
        f.read(0, &mut got).unwrap();
        assert_eq!(&got, b"xyzz");
        assert!(f.sync_data().is_err());
        assert_eq!(f.after_crash(Torn::Lost), b"xy");
        assert_eq!(f.after_crash(Torn::Prefix(1)), b"xyz\0");
        assert_eq!(f.after_crash(Torn::Kept), b"xyzz");
    }

    #[test]
    fn redb_runs_on_it_and_reopens_what_it_synced() {
        let table: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("t");
        let f = CrashFile::new(CrashPlan::Never);
        {
            let db = redb::Builder::new().create_with_backend(f.clone()).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(table).unwrap().insert(1, 10).unwrap();
            txn.commit().unwrap();
        }
        let db = redb::Builder::new()
            .create_with_backend(CrashFile::from_bytes(
                f.after_crash(Torn::Lost),
                CrashPlan::Never,
            ))
            .unwrap();
        let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
        let t = txn.open_table(table).unwrap();
        assert_eq!(
            redb::ReadableTable::get(&t, 1).unwrap().unwrap().value(),
            10
        );
    }
}
