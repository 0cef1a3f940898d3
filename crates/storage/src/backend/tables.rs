//! The tables of the store file and what the layers above may do with them: each wrapper
//! offers a table's reads (on a read or a write transaction) and, on a write transaction,
//! its writes; rows come out as byte slices, never as redb guards.
//!
//! | table       | key                          | value                                  |
//! |-------------|------------------------------|----------------------------------------|
//! | `key`       | 17/18-byte revision (etcd's) | protobuf `mvccpb.KeyValue` (etcd's)     |
//! | `meta`      | name                         | bytes (compact revisions, raft state)  |
//! | `lease`     | lease ID                     | protobuf `LeaseRecord`                 |
//! | `alarm`     | member ID ++ alarm type      | empty                                  |
//! | `authUsers` | user name                    | protobuf `authpb.User` (etcd's)        |
//! | `authRoles` | role name                    | protobuf `authpb.Role` (etcd's)        |

use std::ops::Bound;

use redb::{AccessGuard, ReadableTable, TableDefinition};

use crate::error::{Result, backend};

pub(super) const KEY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("key");
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(super) const LEASE: TableDefinition<i64, &[u8]> = TableDefinition::new("lease");
pub(super) const ALARM: TableDefinition<&[u8], ()> = TableDefinition::new("alarm");
pub(super) const AUTH_USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("authUsers");
pub(super) const AUTH_ROLES: TableDefinition<&str, &[u8]> = TableDefinition::new("authRoles");

type Bytes = &'static [u8];
type Name = &'static str;

/// The `key` table: revision key to encoded KeyValue.
pub(crate) struct Keys<T>(pub(super) T);
/// A table keyed by name (`meta`, `authUsers`, `authRoles`).
pub(crate) struct Named<T>(pub(super) T);
/// The `lease` table.
pub(crate) struct Leases<T>(pub(super) T);
/// The `alarm` table (keys only).
pub(crate) struct Alarms<T>(pub(super) T);

/// The key table of a read transaction (it outlives the transaction value).
pub(crate) type ReadKeys = Keys<redb::ReadOnlyTable<Bytes, Bytes>>;
pub(crate) type ReadNamed = Named<redb::ReadOnlyTable<Name, Bytes>>;
pub(crate) type ReadLeases = Leases<redb::ReadOnlyTable<i64, Bytes>>;
pub(crate) type ReadAlarms = Alarms<redb::ReadOnlyTable<Bytes, ()>>;

/// The tables one write transaction works on.
pub(crate) struct Tables<'t> {
    pub key: Keys<redb::Table<'t, Bytes, Bytes>>,
    pub meta: Named<redb::Table<'t, Name, Bytes>>,
    pub lease: Leases<redb::Table<'t, i64, Bytes>>,
    pub alarm: Alarms<redb::Table<'t, Bytes, ()>>,
    pub users: Named<redb::Table<'t, Name, Bytes>>,
    pub roles: Named<redb::Table<'t, Name, Bytes>>,
}

impl<'t> Tables<'t> {
    pub(super) fn open(txn: &'t redb::WriteTransaction) -> Result<Self> {
        Ok(Tables {
            key: Keys(txn.open_table(KEY).map_err(backend("open key table"))?),
            meta: Named(txn.open_table(META).map_err(backend("open meta table"))?),
            lease: Leases(txn.open_table(LEASE).map_err(backend("open lease table"))?),
            alarm: Alarms(txn.open_table(ALARM).map_err(backend("open alarm table"))?),
            users: Named(
                txn.open_table(AUTH_USERS)
                    .map_err(backend("open authUsers table"))?,
            ),
            roles: Named(
                txn.open_table(AUTH_ROLES)
                    .map_err(backend("open authRoles table"))?,
            ),
        })
    }
}

/// One stored row of the key table.
pub(crate) struct Row<'a>(AccessGuard<'a, Bytes>, AccessGuard<'a, Bytes>);

impl Row<'_> {
    pub fn key(&self) -> &[u8] {
        self.0.value()
    }
    pub fn value(&self) -> &[u8] {
        self.1.value()
    }
}

/// Key table rows in key order.
pub(crate) struct Rows<'a>(redb::Range<'a, Bytes, Bytes>);

impl<'a> Iterator for Rows<'a> {
    type Item = Result<Row<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0
            .next()
            .map(|r| r.map(|(k, v)| Row(k, v)).map_err(backend("scan key table")))
    }
}

/// A value read from a table.
pub(crate) struct Value<'a>(AccessGuard<'a, Bytes>);

impl Value<'_> {
    pub fn bytes(&self) -> &[u8] {
        self.0.value()
    }
}

/// Reads of the key table, on a read transaction's table or a write transaction's.
pub(crate) trait KeyScan {
    /// The row stored under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Value<'_>>>;
    /// The rows in `start..end`, in key order.
    fn range(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> Result<Rows<'_>>;
    /// Every row, in key order.
    fn iter(&self) -> Result<Rows<'_>> {
        self.range(Bound::Unbounded, Bound::Unbounded)
    }
    /// How many rows.
    fn len(&self) -> Result<u64>;
}

impl<T: ReadableTable<Bytes, Bytes>> KeyScan for Keys<T> {
    fn get(&self, key: &[u8]) -> Result<Option<Value<'_>>> {
        Ok(self
            .0
            .get(key)
            .map_err(backend("read key table"))?
            .map(Value))
    }
    fn range(&self, start: Bound<&[u8]>, end: Bound<&[u8]>) -> Result<Rows<'_>> {
        self.0
            .range::<&[u8]>((start, end))
            .map(Rows)
            .map_err(backend("scan key table"))
    }
    fn len(&self) -> Result<u64> {
        self.0.len().map_err(backend("count key rows"))
    }
}

impl Keys<redb::Table<'_, Bytes, Bytes>> {
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0
            .insert(key, value)
            .map(drop)
            .map_err(backend("write key table"))
    }

    /// Keeps the rows of `first..=last` for which `keep` holds (one walk of their pages).
    pub fn retain_in(
        &mut self,
        first: &[u8],
        last: &[u8],
        mut keep: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        self.0
            .retain_in::<&[u8], _>(first..=last, |k, v| keep(k, v))
            .map_err(backend("compact key table"))
    }
}

impl<T: ReadableTable<Name, Bytes>> Named<T> {
    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .0
            .get(name)
            .map_err(backend("read table"))?
            .map(|v| v.value().to_vec()))
    }

    /// Calls `f` with each (name, value), in name order.
    pub fn each(&self, mut f: impl FnMut(&str, &[u8]) -> Result<()>) -> Result<()> {
        for row in self.0.iter().map_err(backend("scan table"))? {
            let (k, v) = row.map_err(backend("scan table"))?;
            f(k.value(), v.value())?;
        }
        Ok(())
    }
}

impl Named<redb::Table<'_, Name, Bytes>> {
    pub fn insert(&mut self, name: &str, value: &[u8]) -> Result<()> {
        self.0
            .insert(name, value)
            .map(drop)
            .map_err(backend("write table"))
    }

    /// Whether there was a row to remove.
    pub fn remove(&mut self, name: &str) -> Result<bool> {
        Ok(self
            .0
            .remove(name)
            .map_err(backend("write table"))?
            .is_some())
    }
}

impl<T: ReadableTable<i64, Bytes>> Leases<T> {
    /// Calls `f` with each stored lease record, in ID order.
    pub fn each(&self, mut f: impl FnMut(i64, &[u8]) -> Result<()>) -> Result<()> {
        for row in self.0.iter().map_err(backend("scan lease table"))? {
            let (k, v) = row.map_err(backend("scan lease table"))?;
            f(k.value(), v.value())?;
        }
        Ok(())
    }

    pub fn len(&self) -> Result<u64> {
        self.0.len().map_err(backend("count lease rows"))
    }
}

impl Leases<redb::Table<'_, i64, Bytes>> {
    pub fn insert(&mut self, id: i64, record: &[u8]) -> Result<()> {
        self.0
            .insert(id, record)
            .map(drop)
            .map_err(backend("write lease table"))
    }

    pub fn remove(&mut self, id: i64) -> Result<bool> {
        Ok(self
            .0
            .remove(id)
            .map_err(backend("write lease table"))?
            .is_some())
    }
}

/// Reads of the alarm table, on a read transaction's table or a write transaction's.
pub(crate) trait AlarmScan {
    /// Calls `f` with each alarm key, in key order.
    fn each_key(&self, f: impl FnMut(&[u8]) -> Result<()>) -> Result<()>;
    /// How many alarms.
    fn len(&self) -> Result<u64>;
}

impl<T: ReadableTable<Bytes, ()>> AlarmScan for Alarms<T> {
    fn each_key(&self, mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
        for row in self.0.iter().map_err(backend("scan alarm table"))? {
            let (k, _) = row.map_err(backend("scan alarm table"))?;
            f(k.value())?;
        }
        Ok(())
    }

    fn len(&self) -> Result<u64> {
        self.0.len().map_err(backend("count alarm rows"))
    }
}

impl Alarms<redb::Table<'_, Bytes, ()>> {
    pub fn insert(&mut self, key: &[u8]) -> Result<()> {
        self.0
            .insert(key, ())
            .map(drop)
            .map_err(backend("write alarm table"))
    }

    pub fn remove(&mut self, key: &[u8]) -> Result<bool> {
        Ok(self
            .0
            .remove(key)
            .map_err(backend("write alarm table"))?
            .is_some())
    }
}
