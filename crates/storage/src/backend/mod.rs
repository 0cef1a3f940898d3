//! The storage backend: the only code in Cairn that names redb.
//!
//! Above it, MVCC (reads, writes, txns), compaction, HashKV, leases, watch replay, snapshots
//! and defragmentation work with [`Backend`], its read and write transactions ([`ReadTx`],
//! [`WriteTx`]) and the table wrappers of `tables.rs`, which hand out byte slices; the raft
//! side keeps its vote and IDs in a [`StateFile`]. redb is one writer at a time and many
//! snapshot readers (copy-on-write); a commit is durable only with `durable` (one fsync),
//! which also makes every earlier non-durable commit durable. Its calls are synchronous:
//! callers on an async runtime run them on blocking threads.
//!
//! `crash::CrashFile` replaces the file with one that simulates a power loss, for the
//! crash-consistency tests (`crash_consistency.rs`).

#[cfg(test)]
pub(crate) mod crash;
mod state_file;
mod tables;

use std::path::Path;

use redb::{Database, Durability, ReadableDatabase};

use crate::error::{Result, StoreError, backend};
pub use state_file::StateFile;
pub(crate) use tables::{AlarmScan, KeyScan, ReadAlarms, ReadKeys, ReadLeases, ReadNamed, Tables};

/// redb's page cache for the store (its default is 1 GiB). Pages beyond it are read through
/// the kernel's page cache, as etcd's bbolt reads its memory map; a bigger cache made RSS grow
/// with the data (2.5 GB at 1M keys of 1 KiB) for no measurable read speed.
pub(crate) const STORE_CACHE_BYTES: usize = 256 << 20;

/// One store file (`member/kv.redb`, or a copy being built beside it).
pub(crate) struct Backend {
    db: Database,
}

impl Backend {
    /// Opens (or creates) the file at `path` with every table present.
    pub fn open(path: &Path) -> Result<Backend> {
        Self::open_with_cache(path, STORE_CACHE_BYTES)
    }

    /// [`Backend::open`] with a page cache of `cache_bytes` (a bulk copy keeps its own small).
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Backend> {
        if !path.exists() {
            create(path, cache_bytes)?;
        }
        Self::with_tables(create_db(path, cache_bytes)?)
    }

    /// A store on a [`crash::CrashFile`] instead of a file on disk.
    #[cfg(test)]
    pub fn open_on(file: crash::CrashFile) -> Result<Backend> {
        let db = redb::Builder::new()
            .set_cache_size(STORE_CACHE_BYTES)
            .create_with_backend(file)
            .map_err(backend("open database"))?;
        Self::with_tables(db)
    }

    fn with_tables(db: Database) -> Result<Backend> {
        let backend = Backend { db };
        let txn = backend.write(false)?;
        txn.tables()?;
        txn.commit("create tables")?;
        Ok(backend)
    }

    /// A snapshot of the committed data; writes committed later are not in it.
    pub fn read(&self) -> Result<ReadTx> {
        self.db
            .begin_read()
            .map(ReadTx)
            .map_err(backend("begin read"))
    }

    /// The write transaction, waiting for the one in flight; `durable`: its commit is fsync'd.
    pub fn write(&self, durable: bool) -> Result<WriteTx> {
        let txn = self.db.begin_write().map_err(backend("begin write"))?;
        WriteTx::new(txn, durable)
    }

    /// [`Backend::write`] if no other write transaction is in flight; `None` otherwise.
    pub fn try_write(&self, durable: bool) -> Result<Option<WriteTx>> {
        match self.db.try_begin_write() {
            Ok(txn) => WriteTx::new(txn, durable).map(Some),
            Err(redb::TransactionError::WouldBlock) => Ok(None),
            Err(e) => Err(backend("begin write")(e)),
        }
    }

    /// Returns once no other write transaction is in flight (it may have begun again by the
    /// time the caller tries): for callers that must not wait for the writer while they hold
    /// a lock, and try with [`Backend::try_write`] again after this.
    pub fn wait_for_writer(&self) -> Result<()> {
        // an empty write transaction, dropped: redb aborts it without writing anything
        self.write(false).map(drop)
    }

    /// One durable (fsync'd) commit: every earlier non-durable commit becomes durable too.
    pub fn flush(&self) -> Result<()> {
        self.write(true)?.commit("flush")
    }
}

fn create_db(path: &Path, cache_bytes: usize) -> Result<Database> {
    redb::Builder::new()
        .set_cache_size(cache_bytes)
        .create(path)
        .map_err(|e| StoreError::Backend {
            context: "open database",
            message: format!("{}: {e}", path.display()),
        })
}

/// Creates a new file at `path` under a temporary name first, renamed once it is complete and
/// durable: a crash while redb writes a new file's first pages would otherwise leave a file it
/// refuses to open ("magic number mismatch") where a fresh member should start.
fn create(path: &Path, cache_bytes: usize) -> Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(".creating");
    let temp = std::path::PathBuf::from(name);
    match std::fs::remove_file(&temp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(fs_error("remove an unfinished new file", &temp)(e));
        }
        _ => {}
    }
    Backend::with_tables(create_db(&temp, cache_bytes)?)?.flush()?;
    std::fs::rename(&temp, path).map_err(fs_error("rename a new file", path))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fs_error("fsync the directory of a new file", dir))
}

fn fs_error<'a>(
    context: &'static str,
    p: &'a Path,
) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |e| StoreError::Backend {
        context,
        message: format!("{}: {e}", p.display()),
    }
}

/// A read transaction: the tables as they were when it began.
pub(crate) struct ReadTx(redb::ReadTransaction);

impl ReadTx {
    pub fn keys(&self) -> Result<ReadKeys> {
        self.0
            .open_table(tables::KEY)
            .map(tables::Keys)
            .map_err(backend("open key table"))
    }

    pub fn meta(&self) -> Result<ReadNamed> {
        self.0
            .open_table(tables::META)
            .map(tables::Named)
            .map_err(backend("open meta table"))
    }

    pub fn leases(&self) -> Result<ReadLeases> {
        self.0
            .open_table(tables::LEASE)
            .map(tables::Leases)
            .map_err(backend("open lease table"))
    }

    pub fn alarms(&self) -> Result<ReadAlarms> {
        self.0
            .open_table(tables::ALARM)
            .map(tables::Alarms)
            .map_err(backend("open alarm table"))
    }

    /// The `authUsers` table; `None` in a file written before auth existed.
    pub fn users(&self) -> Result<Option<ReadNamed>> {
        self.optional(tables::AUTH_USERS, "open authUsers")
    }

    /// The `authRoles` table; `None` in a file written before auth existed.
    pub fn roles(&self) -> Result<Option<ReadNamed>> {
        self.optional(tables::AUTH_ROLES, "open authRoles")
    }

    fn optional(
        &self,
        def: redb::TableDefinition<&'static str, &'static [u8]>,
        context: &'static str,
    ) -> Result<Option<ReadNamed>> {
        match self.0.open_table(def) {
            Ok(t) => Ok(Some(tables::Named(t))),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(backend(context)(e)),
        }
    }
}

/// A write transaction; nothing of it is visible before [`WriteTx::commit`], and dropping it
/// uncommitted discards it.
pub(crate) struct WriteTx(redb::WriteTransaction);

impl WriteTx {
    fn new(mut txn: redb::WriteTransaction, durable: bool) -> Result<WriteTx> {
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        txn.set_durability(durability)
            .map_err(backend("set durability"))?;
        Ok(WriteTx(txn))
    }

    /// The tables, for writing (one set at a time).
    pub fn tables(&self) -> Result<Tables<'_>> {
        Tables::open(&self.0)
    }

    /// Commits; `context` names the step in the error.
    pub fn commit(self, context: &'static str) -> Result<()> {
        self.0.commit().map_err(backend(context))
    }
}

/// What a look at a file found, without changing it (offline tools, before they open it).
#[derive(Debug)]
pub enum Probe {
    /// A database no process holds (or one killed mid-write, which opening repairs).
    Free,
    /// A running process holds it.
    InUse,
    /// Not a database of ours: why.
    Foreign(String),
}

/// Looks at a file: opening it read-only takes the file lock, which is released again here.
pub fn probe(file: &Path) -> Probe {
    match redb::ReadOnlyDatabase::open(file) {
        Ok(db) => {
            drop(db);
            Probe::Free
        }
        // not closed cleanly (killed): a read-only handle may not repair it; a writer will
        Err(redb::DatabaseError::RepairAborted) => Probe::Free,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Probe::InUse,
        Err(e) => Probe::Foreign(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_is_built_aside_and_a_leftover_of_a_crash_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv.redb");
        let leftover = dir.path().join("kv.redb.creating");
        std::fs::write(&leftover, b"half a header").unwrap();
        let db = Backend::open(&path).unwrap();
        assert!(!leftover.exists(), "the temporary name is gone");
        let txn = db.write(true).unwrap();
        txn.tables().unwrap().meta.insert("k", b"v").unwrap();
        txn.commit("test").unwrap();
        drop(db);
        let db = Backend::open(&path).unwrap();
        assert_eq!(
            db.read()
                .unwrap()
                .meta()
                .unwrap()
                .get("k")
                .unwrap()
                .as_deref(),
            Some(&b"v"[..])
        );
    }
}
