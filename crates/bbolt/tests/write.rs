//! The writer: what it writes reads back with this crate's reader (the check passes and every
//! bucket holds exactly its rows) across shapes and page sizes, in the layout the writer
//! documents; bad rows and a writing pass that differs from the layout pass are refused.

mod common;

use std::io;

use cairn_bbolt::{Db, Row, Rows, write_db};
use common::*;

/// A bucket's entries, in order.
type KeyValues = Vec<(Vec<u8>, Vec<u8>)>;
/// Buckets and their entries, in order.
type Data = Vec<(Vec<u8>, KeyValues)>;

/// The rows of `Data`, the same each pass.
struct Given<'d>(&'d Data);

impl Rows for Given<'_> {
    fn each(&mut self, f: &mut dyn FnMut(Row<'_>) -> io::Result<()>) -> io::Result<()> {
        each(self.0, f)
    }
}

fn each(data: &Data, f: &mut dyn FnMut(Row<'_>) -> io::Result<()>) -> io::Result<()> {
    for (name, entries) in data {
        f(Row::Bucket(name))?;
        for (k, v) in entries {
            f(Row::Entry(k, v))?;
        }
    }
    Ok(())
}

/// One set of rows in the layout pass and another in the writing pass.
struct Twice {
    first: Data,
    second: Data,
    passes: usize,
}

impl Rows for Twice {
    fn each(&mut self, f: &mut dyn FnMut(Row<'_>) -> io::Result<()>) -> io::Result<()> {
        self.passes += 1;
        each(
            if self.passes == 1 {
                &self.first
            } else {
                &self.second
            },
            f,
        )
    }
}

fn bucket(name: &str, entries: KeyValues) -> (Vec<u8>, KeyValues) {
    (name.as_bytes().to_vec(), entries)
}

/// `n` entries `key-0000000` .. with short values.
fn small(n: usize) -> KeyValues {
    (0..n)
        .map(|i| {
            (
                format!("key-{i:07}").into_bytes(),
                format!("v{i}").into_bytes(),
            )
        })
        .collect()
}

fn write(page_size: u32, data: &Data) -> Vec<u8> {
    let mut out = Vec::new();
    let n = write_db(page_size, &mut Given(data), &mut out).expect("write_db");
    assert_eq!(n, out.len() as u64);
    assert_eq!(n % u64::from(page_size), 0);
    out
}

fn u64_at(image: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(image[at..at + 8].try_into().unwrap())
}

fn u16_at(image: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(image[at..at + 2].try_into().unwrap())
}

/// The page headers `(id, flags, count, overflow)` from page 0 to the end, checking the
/// documented layout: two metas, the empty freelist, then leaf and branch pages each naming
/// itself, the last one the root bucket's root, the high-water mark the end of the file.
fn layout(image: &[u8], page_size: u32) -> Vec<(u64, u16, u16, u32)> {
    let ps = page_size as usize;
    let mut out = Vec::new();
    let mut id = 0u64;
    let mut last = 0;
    while (id as usize) * ps < image.len() {
        let at = id as usize * ps;
        let header = (
            u64_at(image, at),
            u16_at(image, at + 8),
            u16_at(image, at + 10),
            u32::from_le_bytes(image[at + 12..at + 16].try_into().unwrap()),
        );
        assert_eq!(header.0, id, "page {id} names itself");
        let want = match id {
            0 | 1 => META,
            2 => FREELIST,
            _ => header.1,
        };
        assert_eq!(header.1, want, "page {id}");
        assert!(id < 3 || [LEAF, BRANCH].contains(&header.1), "page {id}");
        out.push(header);
        last = id;
        id += 1 + u64::from(header.3);
    }
    assert_eq!(id as usize * ps, image.len(), "the last page ends the file");
    assert_eq!(out[2], (2, FREELIST, 0, 0));
    for meta in 0..2 {
        let m = meta * ps + 16;
        assert_eq!(
            u64_at(image, m + 16),
            last,
            "meta {meta}: the root is the last page"
        );
        assert_eq!(u64_at(image, m + 32), 2, "meta {meta}: the freelist");
        assert_eq!(
            u64_at(image, m + 40),
            id,
            "meta {meta}: the high-water mark"
        );
        assert_eq!(
            u64_at(image, m + 48),
            2 + meta as u64,
            "meta {meta}: the txid"
        );
    }
    out
}

/// Writes `data`, checks the layout, reads it back with the check and `for_each`; the image.
fn round_trip(page_size: u32, data: &Data) -> Vec<u8> {
    let image = write(page_size, data);
    layout(&image, page_size);
    let (_t, db) = open(&image);
    let db = db.expect("the reader opens it");
    db.check().expect("the check passes");
    assert_eq!(db.page_size(), page_size);
    assert_eq!(db.txid(), 3);
    assert_eq!(db.size(), image.len() as u64);
    let names: Vec<Vec<u8>> = data.iter().map(|b| b.0.clone()).collect();
    assert_eq!(db.bucket_names().unwrap(), names);
    for (name, entries) in data {
        let want: Entries = entries
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        let got = common::entries(&db, &[name]).unwrap().expect("the bucket");
        assert!(got == want, "bucket {name:?} at page size {page_size}");
    }
    image
}

const SIZES: [u32; 3] = [1024, 4096, 16384];

#[test]
fn an_empty_database() {
    for ps in SIZES {
        let image = round_trip(ps, &Vec::new());
        // metas, freelist, the root bucket's empty leaf
        assert_eq!(image.len(), 4 * ps as usize);
    }
}

#[test]
fn empty_buckets() {
    let data = vec![
        bucket("a", vec![]),
        bucket("b", vec![]),
        bucket("c", vec![]),
    ];
    for ps in SIZES {
        let image = round_trip(ps, &data);
        assert_eq!(image.len(), 7 * ps as usize);
        let (_t, db) = open(&image);
        assert!(
            common::entries(&db.unwrap(), &[b"b"])
                .unwrap()
                .unwrap()
                .is_empty()
        );
    }
}

#[test]
fn one_key() {
    let data = vec![bucket("key", vec![(b"k".to_vec(), b"v".to_vec())])];
    for ps in [512, 1024, 4096, 16384, 65536] {
        let image = round_trip(ps, &data);
        assert_eq!(image.len(), 5 * ps as usize);
    }
}

#[test]
fn an_empty_value_and_binary_keys() {
    let data = vec![
        bucket("\u{0}", vec![(vec![0], vec![]), (vec![0, 0], vec![0xff])]),
        bucket("\u{7f}", vec![(vec![0xff; 3], b"x".to_vec())]),
    ];
    round_trip(4096, &data);
}

#[test]
fn a_hundred_thousand_keys_have_two_branch_levels() {
    let data = vec![
        bucket("key", small(100_000)),
        bucket("meta", vec![(b"consistent_index".to_vec(), vec![0; 8])]),
    ];
    let image = round_trip(4096, &data);
    let pages = layout(&image, 4096);
    // the key bucket's root is a branch page over branch pages
    let root = u64_at(&image, 16 + 16) as usize * 4096;
    let (pos, ksize) = (
        u32::from_le_bytes(image[root + 20..root + 24].try_into().unwrap()) as usize,
        u32::from_le_bytes(image[root + 24..root + 28].try_into().unwrap()) as usize,
    );
    let key_root = u64_at(&image, root + 16 + pos + ksize) as usize;
    assert_eq!(u16_at(&image, key_root * 4096 + 8), BRANCH);
    let child = u64_at(&image, key_root * 4096 + 16 + 8) as usize;
    assert_eq!(u16_at(&image, child * 4096 + 8), BRANCH);
    assert!(pages.iter().filter(|p| p.1 == BRANCH).count() >= 3);
    for ps in [1024, 16384] {
        round_trip(ps, &data);
    }
}

#[test]
fn values_of_three_pages_overflow() {
    for ps in SIZES {
        let big = 3 * ps as usize - 100;
        let mut entries = small(30);
        for (i, e) in entries.iter_mut().enumerate() {
            if i % 7 == 3 {
                e.1 = vec![i as u8; big];
            }
        }
        let data = vec![bucket("key", entries), bucket("lease", small(5))];
        let image = round_trip(ps, &data);
        let spans: Vec<u32> = layout(&image, ps)
            .iter()
            .filter(|p| p.1 == LEAF && p.2 == 1)
            .map(|p| p.3)
            .collect();
        assert_eq!(spans.iter().filter(|&&o| o == 2).count(), 4, "{spans:?}");
    }
}

#[test]
fn keys_of_a_thousand_bytes() {
    let entries: Vec<_> = (0..300u32)
        .map(|i| {
            let mut k = vec![b'k'; 1000];
            k[990..].copy_from_slice(format!("{i:010}").as_bytes());
            (k, i.to_be_bytes().to_vec())
        })
        .collect();
    let data = vec![bucket("big-keys", entries), bucket("z", small(3))];
    for ps in SIZES {
        round_trip(ps, &data);
    }
}

#[test]
fn the_largest_keys_and_names() {
    let name = vec![b'n'; 32768];
    let data = vec![
        (
            b"a".to_vec(),
            vec![(vec![1; 32768], vec![2; 5000]), (vec![3; 10], vec![])],
        ),
        (name.clone(), vec![(vec![b'k'; 32768], vec![])]),
        ([name.as_slice(), b"x"].concat()[1..].to_vec(), small(10)),
    ];
    for ps in [512, 1024, 4096] {
        round_trip(ps, &data);
    }
}

#[test]
fn many_buckets_make_the_root_bucket_a_tree() {
    let data: Data = (0..3000)
        .map(|i| bucket(&format!("bucket-{i:05}"), small(i % 3)))
        .collect();
    for ps in SIZES {
        let image = round_trip(ps, &data);
        let root = layout(&image, ps).last().copied().unwrap();
        assert_eq!(root.1, BRANCH);
    }
}

#[test]
fn a_full_leaf_holds_exactly_a_page() {
    // 16 + n * (16 + 1 + v): 60 entries of 51 bytes of value fill 4096 bytes to the byte
    let exact: Vec<_> = (0..60u8).map(|i| (vec![i + 1], vec![b'v'; 51])).collect();
    let image = round_trip(4096, &vec![bucket("k", exact.clone())]);
    assert_eq!(image.len(), 5 * 4096);
    let mut over = exact;
    over[59].1.push(b'!');
    let image = round_trip(4096, &vec![bucket("k", over)]);
    // two leaves and a branch
    assert_eq!(image.len(), 7 * 4096);
}

#[test]
fn a_file_etcd_shaped() {
    let rev = |main: u64| {
        let mut k = main.to_be_bytes().to_vec();
        k.push(b'_');
        k.extend_from_slice(&0u64.to_be_bytes());
        k
    };
    let data = vec![
        bucket("alarm", vec![]),
        bucket("auth", vec![(b"authEnabled".to_vec(), vec![0])]),
        bucket("authRoles", vec![]),
        bucket("authUsers", vec![]),
        bucket(
            "cluster",
            vec![(b"clusterVersion".to_vec(), b"3.4.0".to_vec())],
        ),
        bucket(
            "key",
            (2..2000).map(|r| (rev(r), vec![b'x'; 100])).collect(),
        ),
        bucket("lease", vec![]),
        bucket("members", vec![]),
        bucket("members_removed", vec![]),
        bucket(
            "meta",
            vec![(b"consistent_index".to_vec(), 7u64.to_be_bytes().to_vec())],
        ),
    ];
    let image = round_trip(4096, &data);
    // etcdctl's status counts every bucket's entries; this reader's walk does too
    let (_t, db) = open(&image);
    assert_eq!(walk_all(&db.unwrap()).unwrap(), 1998 + 3);
}

/// The error `write_db` returns for `rows`, which must be `InvalidInput` and leave the output
/// empty.
fn refused(page_size: u32, rows: &mut dyn Rows) -> String {
    let mut out = Vec::new();
    let err = write_db(page_size, rows, &mut out).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    assert!(
        out.is_empty(),
        "nothing written before the rows are known good"
    );
    err.to_string()
}

#[test]
fn rows_out_of_order_are_refused_before_a_byte_is_written() {
    let kv = |k: &str| (k.as_bytes().to_vec(), b"v".to_vec());
    let cases: Vec<(Data, &str)> = vec![
        (
            vec![bucket("key", vec![kv("b"), kv("a")])],
            "row 3 (key \"a\" of bucket \"key\"): comes after key \"b\"",
        ),
        (
            vec![bucket("key", vec![kv("a"), kv("a")])],
            "row 3 (key \"a\" of bucket \"key\"): repeats key \"a\"",
        ),
        (
            vec![bucket("key", vec![]), bucket("key", vec![])],
            "row 2 (bucket \"key\"): repeats bucket \"key\"",
        ),
        (
            vec![bucket("meta", vec![kv("a")]), bucket("key", vec![])],
            "row 3 (bucket \"key\"): comes after bucket \"meta\"",
        ),
        (
            vec![bucket("key", vec![kv("")])],
            "row 2 (key \"\" of bucket \"key\"): an empty key",
        ),
        (
            vec![bucket("", vec![])],
            "row 1 (bucket \"\"): an empty bucket name",
        ),
        (
            vec![bucket("key", vec![(vec![b'k'; 32769], vec![])])],
            "the key is 32769 bytes, more than bbolt's limit of 32768",
        ),
        (
            vec![(vec![b'b'; 32769], vec![])],
            "the name is 32769 bytes, more than bbolt's limit of 32768",
        ),
    ];
    for (data, want) in cases {
        let err = refused(4096, &mut Given(&data));
        assert!(
            err.starts_with(want) || err.contains(want),
            "{err}\nwant {want}"
        );
    }
}

#[test]
fn an_entry_before_any_bucket_is_refused() {
    struct Early;
    impl Rows for Early {
        fn each(&mut self, f: &mut dyn FnMut(Row<'_>) -> io::Result<()>) -> io::Result<()> {
            f(Row::Entry(b"k", b"v"))?;
            f(Row::Bucket(b"key"))
        }
    }
    let err = refused(4096, &mut Early);
    assert!(
        err.starts_with("row 1 (key \"k\"): an entry before any bucket"),
        "{err}"
    );
}

#[test]
fn a_value_too_large_for_bbolt_is_refused() {
    // zeroed memory the check never touches: the length is all it reads
    let value = vec![0u8; (1 << 31) - 1];
    struct Huge<'v>(&'v [u8]);
    impl Rows for Huge<'_> {
        fn each(&mut self, f: &mut dyn FnMut(Row<'_>) -> io::Result<()>) -> io::Result<()> {
            f(Row::Bucket(b"key"))?;
            f(Row::Entry(b"k", self.0))
        }
    }
    let err = refused(4096, &mut Huge(&value));
    assert_eq!(
        err,
        "row 2 (key \"k\" of bucket \"key\"): the value is 2147483647 bytes, more than bbolt's limit of 2147483646"
    );
}

#[test]
fn page_sizes_bbolt_does_not_use_are_refused() {
    for ps in [0, 256, 1000, 4097, 32 << 20] {
        let err = refused(ps, &mut Given(&Vec::new()));
        assert!(err.starts_with(&format!("page size {ps}: ")), "{err}");
    }
}

/// The error of a writing pass given `second` after a layout pass given `first`.
fn differs(first: Data, second: Data) -> String {
    let mut rows = Twice {
        first,
        second,
        passes: 0,
    };
    let err = write_db(1024, &mut rows, &mut io::sink()).unwrap_err();
    assert_eq!(rows.passes, 2);
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    let err = err.to_string();
    assert!(
        err.contains("Rows::each must give the same rows both times"),
        "{err}"
    );
    err
}

#[test]
fn a_writing_pass_that_differs_is_refused() {
    let base = || {
        vec![
            bucket("a", small(50)),
            bucket("b", small(50)),
            bucket("c", small(5)),
        ]
    };
    let with = |f: &dyn Fn(&mut Data)| {
        let mut d = base();
        f(&mut d);
        d
    };
    // an entry more, in the middle bucket: refused at the 51st of 50
    let err = differs(
        base(),
        with(&|d| d[1].1.insert(10, (b"key-0000009x".to_vec(), b"v".to_vec()))),
    );
    let want = "row 103: the rows differ from the layout pass's: bucket \"b\" has 51 entries";
    assert!(err.starts_with(want), "{err}");
    // more entries than planned: refused at the first one too many
    let err = differs(base(), with(&|d| d[2].1 = small(1000)));
    let want = "row 109: the rows differ from the layout pass's: bucket \"c\" has 6 entries";
    assert!(err.starts_with(want), "{err}");
    // an entry fewer: refused when the bucket ends
    let err = differs(base(), with(&|d| _ = d[1].1.pop()));
    assert!(err.contains("bucket \"b\" has 49 entries of"), "{err}");
    // a longer value
    let err = differs(base(), with(&|d| d[0].1[3].1.push(b'!')));
    assert!(err.contains("bucket \"a\" has 50 entries of"), "{err}");
    // a bucket more, a bucket fewer, a bucket renamed longer
    let err = differs(base(), with(&|d| d.push(bucket("d", vec![]))));
    assert!(
        err.contains("a bucket more than the layout pass's 3"),
        "{err}"
    );
    let err = differs(base(), with(&|d| _ = d.pop()));
    assert!(err.contains("2 buckets, the layout pass's 3"), "{err}");
    let err = differs(base(), with(&|d| d[2].0 = b"cc".to_vec()));
    assert!(
        err.contains("bucket 3's name \"cc\" is 2 bytes long, the layout pass's was 1"),
        "{err}"
    );
    // out of order the second time
    let err = differs(base(), with(&|d| d[0].1.swap(0, 1)));
    assert!(err.contains("comes after key"), "{err}");
}

#[test]
fn the_same_sizes_laid_out_on_more_pages_are_refused() {
    // element sizes (16 + 1 + value) 504 x 4 fill two 1024-byte leaves exactly; 503, 506, 503,
    // 504 (the same bytes in all) need three
    let rows = |sizes: [usize; 4]| {
        let entries = sizes
            .iter()
            .enumerate()
            .map(|(i, s)| (vec![b'a' + i as u8], vec![b'v'; s - 17]))
            .collect();
        vec![bucket("key", entries)]
    };
    let err = differs(rows([504; 4]), rows([503, 506, 503, 504]));
    assert!(
        err.contains("in 4 pages, the layout pass's had 4 entries of 1952 bytes in 3 pages"),
        "{err}"
    );
}

#[test]
fn the_same_sizes_with_other_bytes_are_written_as_given() {
    // the layout depends on the sizes only, so the file is whole: it holds the second rows
    let first = vec![bucket("key", small(500))];
    let mut second = first.clone();
    for e in &mut second[0].1 {
        e.1.reverse();
    }
    let mut out = Vec::new();
    let mut rows = Twice {
        first,
        second: second.clone(),
        passes: 0,
    };
    write_db(4096, &mut rows, &mut out).unwrap();
    let (_t, db) = open(&out);
    let db = db.unwrap();
    db.check().unwrap();
    let got = common::entries(&db, &[b"key"]).unwrap().unwrap();
    assert_eq!(got[123].1.as_deref(), Some(&second[0].1[123].1[..]));
}

#[test]
fn errors_of_the_rows_themselves_pass_through() {
    struct Failing(usize);
    impl Rows for Failing {
        fn each(&mut self, f: &mut dyn FnMut(Row<'_>) -> io::Result<()>) -> io::Result<()> {
            self.0 += 1;
            f(Row::Bucket(b"key"))?;
            if self.0 == 2 {
                return Err(io::Error::other("the store went away"));
            }
            Ok(())
        }
    }
    let err = write_db(4096, &mut Failing(0), &mut io::sink()).unwrap_err();
    assert_eq!(err.to_string(), "the store went away");
    let err = write_db(4096, &mut Failing(1), &mut io::sink()).unwrap_err();
    assert_eq!(err.to_string(), "the store went away");
}

#[test]
fn rows_that_ignore_a_refusal_are_still_refused() {
    struct Deaf;
    impl Rows for Deaf {
        fn each(&mut self, f: &mut dyn FnMut(Row<'_>) -> io::Result<()>) -> io::Result<()> {
            for row in [Row::Bucket(b"b"), Row::Bucket(b"a"), Row::Bucket(b"c")] {
                let _ = f(row);
            }
            Ok(())
        }
    }
    let err = refused(4096, &mut Deaf);
    assert!(
        err.starts_with("row 2 (bucket \"a\"): comes after bucket \"b\""),
        "{err}"
    );
}

#[test]
fn output_errors_pass_through() {
    struct Full(usize);
    impl io::Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.0 < buf.len() {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
            }
            self.0 -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let data = vec![bucket("key", small(1000))];
    let err = write_db(4096, &mut Given(&data), &mut Full(10 * 4096)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::StorageFull);
}

/// Rows made as they are given: `buckets` buckets of `per_bucket` entries, nothing kept.
struct Generated {
    buckets: u32,
    per_bucket: u32,
    value: Vec<u8>,
}

impl Rows for Generated {
    fn each(&mut self, f: &mut dyn FnMut(Row<'_>) -> io::Result<()>) -> io::Result<()> {
        for b in 0..self.buckets {
            f(Row::Bucket(format!("bucket-{b:04}").as_bytes()))?;
            for i in 0..self.per_bucket {
                f(Row::Entry(&u64::from(i).to_be_bytes(), &self.value))?;
            }
        }
        Ok(())
    }
}

#[test]
fn a_million_rows_stream_to_a_sink() {
    let mut rows = Generated {
        buckets: 4,
        per_bucket: 250_000,
        value: vec![b'v'; 20],
    };
    let n = write_db(4096, &mut rows, &mut io::sink()).unwrap();
    // a bucket: 2718 leaves of 92 entries (16 + 92 * (16 + 8 + 20) = 4064), 16 branch pages
    // of 170 (16 + 170 * (16 + 8) = 4096) and their root; then the metas, the freelist and
    // the root bucket's leaf
    assert_eq!(n, (3 + 4 * (2718 + 16 + 1) + 1) * 4096);
}

#[test]
fn generated_rows_read_back() {
    let mut rows = Generated {
        buckets: 3,
        per_bucket: 20_000,
        value: vec![7; 300],
    };
    let mut out = Vec::new();
    write_db(16384, &mut rows, &mut out).unwrap();
    let (_t, db) = open(&out);
    let db: Db = db.unwrap();
    db.check().unwrap();
    assert_eq!(walk_all(&db).unwrap(), 60_000);
    let got = common::entries(&db, &[b"bucket-0002"]).unwrap().unwrap();
    assert_eq!(got[19_999].0, 19_999u64.to_be_bytes());
}
