//! What the writer's rows must be, checked as they come in both passes: a bucket before any
//! entry, bucket names and each bucket's keys strictly ascending, and keys and values within
//! bbolt's limits (`MaxKeySize`, `MaxValueSize`; bbolt also refuses an empty key or bucket
//! name). A row that is not is an `InvalidInput` error naming it by its place, its bucket and
//! key (escaped, and cut at 64 bytes).
//!
//! Only the current bucket's name and the previous key are kept.

use std::io;

use crate::writer::Row;

/// bbolt's `MaxKeySize`.
pub(crate) const MAX_KEY: usize = 32768;
/// bbolt's `MaxValueSize`.
pub(crate) const MAX_VALUE: usize = (1 << 31) - 2;
/// Bytes of a key shown in a message.
const SHOWN: usize = 64;

#[derive(Debug, Default)]
pub(crate) struct Order {
    /// Rows seen, this one included.
    row: u64,
    /// The current bucket's name; `None` before the first bucket.
    bucket: Option<Vec<u8>>,
    /// The current bucket's last key; `None` before its first entry.
    key: Option<Vec<u8>>,
}

impl Order {
    /// Rows seen so far.
    pub fn rows(&self) -> u64 {
        self.row
    }

    /// Checks the next row against those before it.
    pub fn check(&mut self, row: &Row<'_>) -> io::Result<()> {
        self.row += 1;
        match *row {
            Row::Bucket(name) => {
                let at = || format!("row {} (bucket {})", self.row, show(name));
                if name.is_empty() {
                    return Err(invalid(format!(
                        "{}: an empty bucket name; bbolt requires at least one byte",
                        at()
                    )));
                }
                if name.len() > MAX_KEY {
                    return Err(invalid(format!(
                        "{}: the name is {} bytes, more than bbolt's limit of {MAX_KEY}",
                        at(),
                        name.len()
                    )));
                }
                if let Some(prev) = self.bucket.as_deref().filter(|&prev| name <= prev) {
                    let how = if name == prev {
                        "repeats"
                    } else {
                        "comes after"
                    };
                    return Err(invalid(format!(
                        "{}: {how} bucket {}; bucket names must ascend strictly",
                        at(),
                        show(prev)
                    )));
                }
                replace(&mut self.bucket, name);
                self.key = None;
            }
            Row::Entry(key, value) => {
                let Some(bucket) = self.bucket.as_deref() else {
                    return Err(invalid(format!(
                        "row {} (key {}): an entry before any bucket; the rows must start with a Row::Bucket",
                        self.row,
                        show(key)
                    )));
                };
                let at = || {
                    format!(
                        "row {} (key {} of bucket {})",
                        self.row,
                        show(key),
                        show(bucket)
                    )
                };
                if key.is_empty() {
                    return Err(invalid(format!(
                        "{}: an empty key; bbolt requires at least one byte",
                        at()
                    )));
                }
                if key.len() > MAX_KEY {
                    return Err(invalid(format!(
                        "{}: the key is {} bytes, more than bbolt's limit of {MAX_KEY}",
                        at(),
                        key.len()
                    )));
                }
                if value.len() > MAX_VALUE {
                    return Err(invalid(format!(
                        "{}: the value is {} bytes, more than bbolt's limit of {MAX_VALUE}",
                        at(),
                        value.len()
                    )));
                }
                if let Some(prev) = self.key.as_deref().filter(|&prev| key <= prev) {
                    let how = if key == prev {
                        "repeats"
                    } else {
                        "comes after"
                    };
                    return Err(invalid(format!(
                        "{}: {how} key {}; keys must ascend strictly within a bucket",
                        at(),
                        show(prev)
                    )));
                }
                replace(&mut self.key, key);
            }
        }
        Ok(())
    }
}

/// Sets `slot` to `bytes`, reusing its allocation.
fn replace(slot: &mut Option<Vec<u8>>, bytes: &[u8]) {
    let v = slot.get_or_insert_with(Vec::new);
    v.clear();
    v.extend_from_slice(bytes);
}

pub(crate) fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// A key or name for a message: quoted, non-printable bytes escaped, long ones cut short.
pub(crate) fn show(bytes: &[u8]) -> String {
    let shown = bytes.get(..SHOWN).unwrap_or(bytes);
    let mut s = format!("\"{}\"", shown.escape_ascii());
    if shown.len() < bytes.len() {
        s.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(rows: &[Row<'_>]) -> Vec<String> {
        let mut order = Order::default();
        rows.iter()
            .filter_map(|r| order.check(r).err())
            .map(|e| {
                assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
                e.to_string()
            })
            .collect()
    }

    #[test]
    fn ascending_rows_pass() {
        let rows = [
            Row::Bucket(b"a"),
            Row::Bucket(b"b"),
            Row::Entry(b"1", b""),
            Row::Entry(b"2", b"x"),
            Row::Bucket(b"c"),
            Row::Entry(b"1", b"y"),
        ];
        assert!(errors(&rows).is_empty());
    }

    #[test]
    fn each_broken_rule_names_the_row() {
        let big_key = vec![b'k'; MAX_KEY + 1];
        let rows = [
            Row::Entry(b"early", b""),
            Row::Bucket(b"key"),
            Row::Entry(b"b", b""),
            Row::Entry(b"a", b""),
            Row::Entry(b"a", b""),
            Row::Entry(b"", b""),
            Row::Entry(&big_key, b""),
            Row::Bucket(b"key"),
            Row::Bucket(b"abc\x00"),
            Row::Bucket(b""),
        ];
        let want = [
            "row 1 (key \"early\"): an entry before any bucket; the rows must start with a Row::Bucket",
            "row 4 (key \"a\" of bucket \"key\"): comes after key \"b\"; keys must ascend strictly within a bucket",
            "row 6 (key \"\" of bucket \"key\"): an empty key; bbolt requires at least one byte",
            "row 8 (bucket \"key\"): repeats bucket \"key\"; bucket names must ascend strictly",
            "row 9 (bucket \"abc\\x00\"): comes after bucket \"key\"; bucket names must ascend strictly",
            "row 10 (bucket \"\"): an empty bucket name; bbolt requires at least one byte",
        ];
        let got = errors(&rows);
        assert_eq!(got.len(), 8, "{got:#?}");
        for w in want {
            assert!(got.iter().any(|g| g == w), "{w}\n{got:#?}");
        }
        // the key `b` after `a` was refused, so `a` repeated compares with `b` again
        assert!(got[2].starts_with("row 5 (key \"a\" of bucket \"key\"): comes after key \"b\""));
        let long = format!(
            "row 7 (key \"{}\"... (32769 bytes) of bucket \"key\"): the key is 32769 bytes, more than bbolt's limit of 32768",
            "k".repeat(64)
        );
        assert!(got.contains(&long), "{got:#?}");
    }
}
