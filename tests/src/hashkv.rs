//! A model of etcd's `HashKV`: CRC-32C over the `key` bucket name and then each stored
//! revision key and `mvccpb.KeyValue` bytes, in revision order, up to the hash revision.
//!
//! Which rows count (etcd's `HashByRev`, checked against 3.4.23): a row with
//! main <= compact_revision is hashed only if it is in `kvindex.Keep(hash_revision)`, i.e. it is
//! the newest revision of a key that is still live at the hash revision. So after compacting at
//! 4, a key put at 3 and deleted at 5 is still readable at revision 4 but no longer hashed.
//! (When no key at all is live, Keep is empty and nothing is skipped.)
//!
//! Tests list the rows they expect etcd to hash and compare the model's hash with the server's.

use cairn_proto::mvccpb::KeyValue;
use prost::Message;

/// One row of etcd's `key` bucket.
#[derive(Clone, Debug)]
pub struct Entry {
    pub main: i64,
    pub sub: i64,
    pub tombstone: bool,
    pub kv: KeyValue,
}

impl Entry {
    /// A put of `key=value` at revision (main, sub).
    pub fn put(main: i64, sub: i64, key: &str, value: &str, create: i64, version: i64) -> Entry {
        Entry {
            main,
            sub,
            tombstone: false,
            kv: KeyValue {
                key: key.as_bytes().to_vec(),
                create_revision: create,
                mod_revision: main,
                version,
                value: value.as_bytes().to_vec(),
                lease: 0,
            },
        }
    }

    /// A delete of `key` at revision (main, sub): etcd stores `KeyValue{key}` under a tombstone.
    pub fn tombstone(main: i64, sub: i64, key: &str) -> Entry {
        Entry {
            main,
            sub,
            tombstone: true,
            kv: KeyValue {
                key: key.as_bytes().to_vec(),
                ..Default::default()
            },
        }
    }

    /// The bucket key: 8-byte BE main, `_`, 8-byte BE sub, and `t` for a tombstone.
    pub fn revision_key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(18);
        k.extend_from_slice(&self.main.to_be_bytes());
        k.push(b'_');
        k.extend_from_slice(&self.sub.to_be_bytes());
        if self.tombstone {
            k.push(b't');
        }
        k
    }
}

/// The hash etcd reports for a backend holding exactly `entries` (already in revision order).
pub fn hash(entries: &[Entry]) -> u32 {
    let mut crc = crc32c::crc32c(b"key");
    for e in entries {
        crc = crc32c::crc32c_append(crc, &e.revision_key());
        crc = crc32c::crc32c_append(crc, &e.kv.encode_to_vec());
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_hash_etcd_3_4_reported() {
        // put a=1, put b=2, put a=3, del b, put c=4 on a fresh etcd 3.4.23: HashKV 2750537463.
        let rows = [
            Entry::put(2, 0, "a", "1", 2, 1),
            Entry::put(3, 0, "b", "2", 3, 1),
            Entry::put(4, 0, "a", "3", 2, 2),
            Entry::tombstone(5, 0, "b"),
            Entry::put(6, 0, "c", "4", 6, 1),
        ];
        assert_eq!(hash(&rows), 2750537463);
        assert_eq!(rows[3].revision_key().len(), 18);
    }
}
