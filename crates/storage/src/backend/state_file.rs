//! The raft side's own file (`member/raft.redb`): small named values (the vote, the last
//! purged log id, member and cluster IDs), each written durably on its own, and the log
//! table an older Cairn kept its entries in (moved to the write-ahead log once at open).

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// Where entries were kept before the write-ahead log.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");

/// The raft state file. Errors are strings naming the step (the log store wraps them in
/// openraft's own error types).
pub struct StateFile {
    db: Database,
}

fn err<E: Into<redb::Error>>(context: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{context}: {}", e.into())
}

impl StateFile {
    /// Opens (or creates) the file, with a page cache of `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<StateFile, String> {
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| format!("open raft log {}: {e}", path.display()))?;
        let file = StateFile { db };
        file.write("create tables", |txn| {
            txn.open_table(LOG).map_err(err("open log table"))?;
            txn.open_table(STATE).map_err(err("open state table"))?;
            Ok(())
        })?;
        Ok(file)
    }

    /// The value stored under `name`.
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        let t = self.read_table(STATE)?;
        let v = t.get(name).map_err(err("read state"))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// Stores `value` under `name`, durably.
    pub fn put(&self, name: &str, value: &[u8]) -> Result<(), String> {
        self.write("write state", |txn| {
            let mut t = txn.open_table(STATE).map_err(err("open state table"))?;
            t.insert(name, value).map_err(err("write state"))?;
            Ok(())
        })
    }

    /// The entries an older Cairn kept here, by index, in order.
    pub fn legacy_entries(&self) -> Result<Vec<(u64, Vec<u8>)>, String> {
        let t = self.read_table(LOG)?;
        let mut rows = Vec::new();
        for row in t.iter().map_err(err("scan log table"))? {
            let (k, v) = row.map_err(err("scan log table"))?;
            rows.push((k.value(), v.value().to_vec()));
        }
        Ok(rows)
    }

    /// Whether any legacy entry is left (cheaper than reading them).
    pub fn has_legacy_entries(&self) -> Result<bool, String> {
        let t = self.read_table(LOG)?;
        Ok(t.last().map_err(err("scan log table"))?.is_some())
    }

    /// Deletes the legacy entries (once they are in the write-ahead log).
    pub fn clear_legacy_entries(&self) -> Result<(), String> {
        self.write("clear log table", |txn| {
            let mut t = txn.open_table(LOG).map_err(err("open log table"))?;
            t.retain(|_, _| false).map_err(err("clear log table"))
        })
    }

    fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: TableDefinition<'_, K, V>,
    ) -> Result<redb::ReadOnlyTable<K, V>, String> {
        let txn = self.db.begin_read().map_err(err("begin read"))?;
        txn.open_table(def).map_err(err("open table"))
    }

    /// One durable write transaction.
    fn write(
        &self,
        context: &'static str,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), String>,
    ) -> Result<(), String> {
        let txn = self.db.begin_write().map_err(err("begin write"))?;
        f(&txn)?;
        txn.commit().map_err(err(context))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_entries_are_read_in_order_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        let file = StateFile::open(&path, 1 << 20).unwrap();
        assert!(!file.has_legacy_entries().unwrap());
        file.write("seed", |txn| {
            let mut t = txn.open_table(LOG).unwrap();
            for i in [3u64, 1, 2] {
                t.insert(i, format!("e{i}").as_bytes()).unwrap();
            }
            Ok(())
        })
        .unwrap();
        file.put("vote", b"{}").unwrap();
        drop(file);

        let file = StateFile::open(&path, 1 << 20).unwrap();
        assert!(file.has_legacy_entries().unwrap());
        let rows = file.legacy_entries().unwrap();
        let indexes: Vec<u64> = rows.iter().map(|(i, _)| *i).collect();
        assert_eq!(indexes, [1, 2, 3]);
        assert_eq!(rows[0].1, b"e1");
        file.clear_legacy_entries().unwrap();
        assert!(!file.has_legacy_entries().unwrap());
        assert_eq!(file.get("vote").unwrap().as_deref(), Some(&b"{}"[..]));
        assert_eq!(file.get("missing").unwrap(), None);
    }
}
