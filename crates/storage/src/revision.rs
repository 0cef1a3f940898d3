//! Revisions and their on-disk encoding.
//!
//! A revision is `(main, sub)`: `main` grows by one per write transaction, `sub` numbers the
//! changes inside it. The `key` table is keyed by etcd's exact byte encoding so that HashKV
//! (which hashes those bytes) matches etcd: 8-byte big-endian main, `_`, 8-byte big-endian sub,
//! and an 18th byte `t` for a tombstone.

/// Length of an encoded revision without the tombstone mark.
pub const REV_BYTES_LEN: usize = 17;
/// Length of an encoded tombstone revision.
pub const TOMBSTONE_BYTES_LEN: usize = 18;
const TOMBSTONE_MARK: u8 = b't';

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    pub const fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    /// etcd's 17-byte encoding, plus the tombstone mark when `tombstone` is set.
    pub fn to_bytes(self, tombstone: bool) -> Vec<u8> {
        let mut b = Vec::with_capacity(TOMBSTONE_BYTES_LEN);
        b.extend_from_slice(&(self.main as u64).to_be_bytes());
        b.push(b'_');
        b.extend_from_slice(&(self.sub as u64).to_be_bytes());
        if tombstone {
            b.push(TOMBSTONE_MARK);
        }
        b
    }

    /// Decodes a key of the `key` table; `None` if it is not a revision key.
    pub fn from_bytes(b: &[u8]) -> Option<(Revision, bool)> {
        let tombstone = match b.len() {
            REV_BYTES_LEN => false,
            TOMBSTONE_BYTES_LEN if b[17] == TOMBSTONE_MARK => true,
            _ => return None,
        };
        if b[8] != b'_' {
            return None;
        }
        let main = u64::from_be_bytes(b[0..8].try_into().ok()?) as i64;
        let sub = u64::from_be_bytes(b[9..17].try_into().ok()?) as i64;
        Some((Revision { main, sub }, tombstone))
    }

    /// The smallest encoded key whose main revision is `main` (a scan start).
    pub fn scan_start(main: i64) -> Vec<u8> {
        Revision::new(main, 0).to_bytes(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_matches_etcd_layout() {
        let b = Revision::new(5, 2).to_bytes(false);
        assert_eq!(b, [0, 0, 0, 0, 0, 0, 0, 5, b'_', 0, 0, 0, 0, 0, 0, 0, 2]);
        let t = Revision::new(5, 2).to_bytes(true);
        assert_eq!(t.len(), 18);
        assert_eq!(t[17], b't');
    }

    #[test]
    fn round_trip_and_order() {
        let revs = [
            Revision::new(1, 0),
            Revision::new(1, 3),
            Revision::new(2, 0),
            Revision::new(300, 1),
        ];
        let mut encoded: Vec<Vec<u8>> = revs.iter().map(|r| r.to_bytes(false)).collect();
        for (r, b) in revs.iter().zip(&encoded) {
            assert_eq!(Revision::from_bytes(b), Some((*r, false)));
        }
        encoded.reverse();
        encoded.sort();
        assert_eq!(Revision::from_bytes(&encoded[0]).unwrap().0, revs[0]);
        assert_eq!(Revision::from_bytes(&encoded[3]).unwrap().0, revs[3]);
        assert_eq!(
            Revision::from_bytes(&Revision::new(9, 9).to_bytes(true)),
            Some((Revision::new(9, 9), true))
        );
    }

    #[test]
    fn rejects_non_revision_keys() {
        assert_eq!(Revision::from_bytes(b"consistent_index"), None);
        let mut bad = Revision::new(1, 1).to_bytes(false);
        bad[8] = b'-';
        assert_eq!(Revision::from_bytes(&bad), None);
        let mut bad_mark = Revision::new(1, 1).to_bytes(true);
        bad_mark[17] = b'x';
        assert_eq!(Revision::from_bytes(&bad_mark), None);
    }
}
