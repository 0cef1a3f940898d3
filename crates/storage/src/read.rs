//! Range reads at a revision, with every etcd option (limit, sort, min/max filters,
//! keys_only, count_only). Works over a read transaction or inside a write transaction.

use crate::backend::{Backend, KeyScan, ReadKeys};
use crate::error::{Result, StoreError};
use crate::index::{KeyRange, TreeIndex};
use crate::overlay::Overlay;
use crate::revision::Revision;
use cairn_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use cairn_proto::etcdserverpb::{RangeRequest, RangeResponse, ResponseHeader};
use cairn_proto::mvccpb::KeyValue;
use prost::Message;

/// Where the `key` table's rows are read from: a transaction's table, or one opened on first use.
pub(crate) trait KeyRows {
    /// Calls `f` with the row stored under `key`, if any.
    fn with_row(
        &self,
        key: &[u8],
        f: &mut dyn FnMut(&[u8]) -> Result<KeyValue>,
    ) -> Result<Option<KeyValue>>;
}

impl<T: KeyScan> KeyRows for T {
    fn with_row(
        &self,
        key: &[u8],
        f: &mut dyn FnMut(&[u8]) -> Result<KeyValue>,
    ) -> Result<Option<KeyValue>> {
        let raw = self.get(key)?;
        raw.map(|raw| f(raw.bytes())).transpose()
    }
}

/// What a read needs: the index, the `key` table's rows (applied writes not in redb yet
/// first), and the revision bounds of the view.
pub(crate) struct View<'a> {
    pub index: &'a TreeIndex,
    pub overlay: &'a Overlay,
    pub table: &'a dyn KeyRows,
    pub current_rev: i64,
    pub compact_rev: i64,
}

impl View<'_> {
    /// Loads the KeyValue stored at `rev`.
    pub fn kv_at(&self, rev: Revision) -> Result<KeyValue> {
        let key = rev.to_bytes(false);
        let mut decode = |raw: &[u8]| {
            KeyValue::decode(raw)
                .map_err(|e| StoreError::Corrupt(format!("KeyValue at revision {}: {e}", rev.main)))
        };
        let kv = match self.overlay.row(&key) {
            Some(raw) => Some(decode(raw)?),
            None => self.table.with_row(&key, &mut decode)?,
        };
        kv.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "revision {}/{} is indexed but not stored",
                rev.main, rev.sub
            ))
        })
    }

    /// The revision a read of `requested` (0 = current) resolves to.
    pub fn check_rev(&self, requested: i64) -> Result<i64> {
        if requested > self.current_rev {
            return Err(StoreError::FutureRevision);
        }
        let rev = if requested <= 0 {
            self.current_rev
        } else {
            requested
        };
        if rev < self.compact_rev {
            return Err(StoreError::Compacted);
        }
        Ok(rev)
    }

    /// etcd's mvcc-level range: key-ordered KVs at `rev` (up to `limit`, 0 = all) and the count.
    pub fn range_kvs(
        &self,
        range: &KeyRange,
        requested_rev: i64,
        limit: usize,
    ) -> Result<(Vec<KeyValue>, usize)> {
        let rev = self.check_rev(requested_rev)?;
        let (revs, total) = self.index.revisions(range, rev, limit);
        let kvs = revs
            .into_iter()
            .map(|(_, at)| self.kv_at(at.modified))
            .collect::<Result<Vec<_>>>()?;
        Ok((kvs, total))
    }

    /// The current value of one key, if it exists.
    pub fn get(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        match self.index.get(key, self.current_rev) {
            Some(at) => Ok(Some(self.kv_at(at.modified)?)),
            None => Ok(None),
        }
    }

    /// etcd's server-level Range: options applied on top of the mvcc range.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        let range = KeyRange::new(req.key.clone(), req.range_end.clone());
        let sort_order =
            SortOrder::try_from(req.sort_order).map_err(|_| StoreError::InvalidSortOption)?;
        let sort_target =
            SortTarget::try_from(req.sort_target).map_err(|_| StoreError::InvalidSortOption)?;
        let filtered = req.min_mod_revision != 0
            || req.max_mod_revision != 0
            || req.min_create_revision != 0
            || req.max_create_revision != 0;
        let header = |revision| {
            Some(ResponseHeader {
                revision,
                ..Default::default()
            })
        };

        if req.count_only {
            let rev = self.check_rev(req.revision)?;
            let count = self.index.count(&range, rev) as i64;
            return Ok(RangeResponse {
                header: header(self.current_rev),
                count,
                ..Default::default()
            });
        }
        // Sorting or filtering needs every match; otherwise fetch one extra to learn `more`.
        let fetch = if sort_order != SortOrder::None || filtered || req.limit <= 0 {
            0
        } else {
            req.limit as usize + 1
        };
        let (mut kvs, total) = self.range_kvs(&range, req.revision, fetch)?;

        kvs.retain(|kv| {
            (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
                && (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
                && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
                && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
        });
        // The mvcc range is key-ascending already; a non-key target sorts ascending by default.
        let order = if sort_target != SortTarget::Key && sort_order == SortOrder::None {
            SortOrder::Ascend
        } else {
            sort_order
        };
        if order != SortOrder::None {
            sort_kvs(&mut kvs, sort_target, order == SortOrder::Descend);
        }
        let mut more = false;
        if req.limit > 0 && kvs.len() > req.limit as usize {
            kvs.truncate(req.limit as usize);
            more = true;
        }
        if req.keys_only {
            kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        Ok(RangeResponse {
            header: header(self.current_rev),
            kvs,
            more,
            count: total as i64,
        })
    }
}

/// A stable sort (ties keep key order, as etcd's small-slice sort does), descending by
/// flipping the comparison rather than reversing, so ties stay key-ascending either way.
fn sort_kvs(kvs: &mut [KeyValue], target: SortTarget, descend: bool) {
    let cmp = |a: &KeyValue, b: &KeyValue| match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    };
    if descend {
        kvs.sort_by(|a, b| cmp(b, a));
    } else {
        kvs.sort_by(cmp);
    }
}

/// The `key` table of a read transaction begun on first use: an apply that writes to the
/// overlay reads redb only for prev_kv, compares and the like.
pub(crate) struct LazyTable<'a> {
    db: &'a Backend,
    table: std::cell::OnceCell<ReadKeys>,
}

impl<'a> LazyTable<'a> {
    pub fn new(db: &'a Backend) -> Self {
        LazyTable {
            db,
            table: std::cell::OnceCell::new(),
        }
    }
}

impl KeyRows for LazyTable<'_> {
    fn with_row(
        &self,
        key: &[u8],
        f: &mut dyn FnMut(&[u8]) -> Result<KeyValue>,
    ) -> Result<Option<KeyValue>> {
        let table = match self.table.get() {
            Some(t) => t,
            None => {
                let t = self.db.read()?.keys()?;
                self.table.get_or_init(|| t)
            }
        };
        table.with_row(key, f)
    }
}
