//! Writes a sample etcd 3.4 backend with [`cairn_bbolt::write_db`], to try real etcd on it by
//! hand: etcd's buckets, `KEYS` puts in `key` (revisions 2.. as etcd's mvcc keys, values
//! `mvccpb.KeyValue`, every 500th 10 KiB so that it spans overflow pages), and `auth`,
//! `cluster` and `meta` entries; and a bucket `cairn-sample` that etcd ignores, of 200 keys
//! of 1,000 bytes, every 50th value three pages long, to give bbolt's check branch and leaf
//! pages that overflow. The rows are made as they are given, twice, never held.
//!
//! `cargo run -p cairn-bbolt --example write_sample -- FILE [KEYS [PAGE_SIZE]]`
//!
//! Then `etcdctl snapshot status -w json FILE` (totalKey is KEYS + 204, revision KEYS + 1); with
//! the sha256 appended, `etcdctl snapshot restore` takes it and etcd serves the keys.

use std::io::{BufWriter, Write};

use cairn_bbolt::{Row, Rows};

struct Sample {
    keys: u64,
    page_size: u32,
}

/// Entries of the `cairn-sample` bucket.
const WIDE: u64 = 200;

impl Rows for Sample {
    fn each(&mut self, f: &mut dyn FnMut(Row<'_>) -> std::io::Result<()>) -> std::io::Result<()> {
        f(Row::Bucket(b"alarm"))?;
        f(Row::Bucket(b"auth"))?;
        f(Row::Entry(b"authEnabled", &[0]))?;
        f(Row::Entry(b"authRevision", &1u64.to_be_bytes()))?;
        f(Row::Bucket(b"authRoles"))?;
        f(Row::Bucket(b"authUsers"))?;
        f(Row::Bucket(b"cairn-sample"))?;
        for i in 0..WIDE {
            let key = format!("{}{i:010}", "k".repeat(990));
            let len = if i % 50 == 0 {
                3 * self.page_size as usize
            } else {
                8
            };
            f(Row::Entry(key.as_bytes(), &vec![b'w'; len]))?;
        }
        f(Row::Bucket(b"cluster"))?;
        f(Row::Entry(b"clusterVersion", b"3.4.0"))?;
        f(Row::Bucket(b"key"))?;
        for i in 0..self.keys {
            let rev = i + 2;
            let key = format!("sample/{i:06}");
            let len = if i % 500 == 499 {
                10 << 10
            } else {
                100 + i % 900
            };
            let value = vec![b'a' + (i % 26) as u8; len as usize];
            f(Row::Entry(
                &revision(rev),
                &key_value(key.as_bytes(), rev, &value),
            ))?;
        }
        f(Row::Bucket(b"lease"))?;
        f(Row::Bucket(b"members"))?;
        f(Row::Bucket(b"members_removed"))?;
        f(Row::Bucket(b"meta"))?;
        f(Row::Entry(
            b"consistent_index",
            &(self.keys + 1).to_be_bytes(),
        ))
    }
}

/// etcd's mvcc key for revision `main`: `main` big-endian, `_`, sub-revision 0.
fn revision(main: u64) -> Vec<u8> {
    let mut k = main.to_be_bytes().to_vec();
    k.push(b'_');
    k.extend_from_slice(&0u64.to_be_bytes());
    k
}

/// A `mvccpb.KeyValue` put at `rev` for the first time: key, create and mod revision,
/// version 1, value.
fn key_value(key: &[u8], rev: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let bytes = |tag: u8, b: &[u8], out: &mut Vec<u8>| {
        out.push(tag);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    };
    bytes(0x0a, key, &mut out);
    for (tag, v) in [(0x10, rev), (0x18, rev), (0x20, 1)] {
        out.push(tag);
        varint(v, &mut out);
    }
    bytes(0x2a, value, &mut out);
    out
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        return Err("usage: write_sample FILE [KEYS [PAGE_SIZE]]".into());
    };
    let keys = args.next().map_or(Ok(1000), |a| a.parse())?;
    let page_size = args.next().map_or(Ok(4096), |a| a.parse())?;
    let mut out = BufWriter::new(std::fs::File::create(&path)?);
    let n = cairn_bbolt::write_db(page_size, &mut Sample { keys, page_size }, &mut out)?;
    out.flush()?;
    println!("{path}: {n} bytes, {} entries", keys + WIDE + 4);
    Ok(())
}
