//! A tiny bbolt writer for the tests, and helpers to open and read what it writes.
//!
//! It lays a [`Tree`] out the way bbolt's spill would: leaves filled up to the page size,
//! branch levels above them until one page is left, a value too big for a page in a leaf with
//! overflow pages, a bucket with no sub-buckets and at most a quarter page of content inline
//! in its parent's value. Raw pages ([`Writer::page`], [`leaf_body`], [`branch_body`]) let a
//! test build what bbolt never would.

#![allow(dead_code)]

use std::path::PathBuf;

use cairn_bbolt::{Db, Error};

pub const NO_FREELIST: u64 = u64::MAX;
pub const BRANCH: u16 = 0x01;
pub const LEAF: u16 = 0x02;
pub const META: u16 = 0x04;
pub const FREELIST: u16 = 0x10;
pub const BUCKET: u32 = 0x01;
const HEADER: usize = 16;
const ELEMENT: usize = 16;

/// A bucket's content: keys with values or nested buckets.
#[derive(Clone, Default)]
pub struct Tree {
    entries: Vec<(Vec<u8>, Node)>,
}

#[derive(Clone)]
pub enum Node {
    Value(Vec<u8>),
    Bucket(Tree),
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    pub fn value(mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Tree {
        self.entries
            .push((key.as_ref().to_vec(), Node::Value(value.as_ref().to_vec())));
        self
    }

    pub fn bucket(mut self, key: impl AsRef<[u8]>, tree: Tree) -> Tree {
        self.entries
            .push((key.as_ref().to_vec(), Node::Bucket(tree)));
        self
    }

    fn sorted(&self) -> Vec<&(Vec<u8>, Node)> {
        let mut v: Vec<_> = self.entries.iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Fits in a quarter page, and holds no bucket: bbolt's `inlineable`.
    fn inlineable(&self, page_size: usize) -> bool {
        let mut size = HEADER;
        for (k, node) in &self.entries {
            let Node::Value(v) = node else { return false };
            size += ELEMENT + k.len() + v.len();
        }
        size <= page_size / 4
    }
}

/// What goes in meta page 0 or 1.
#[derive(Clone, Copy)]
pub struct Meta {
    pub root: u64,
    pub txid: u64,
    pub freelist: u64,
}

/// A database image under construction: pages 0 and 1 are reserved for the metas.
pub struct Writer {
    pub page_size: usize,
    image: Vec<u8>,
    next: u64,
}

impl Writer {
    pub fn new(page_size: usize) -> Writer {
        Writer {
            page_size,
            image: vec![0; 2 * page_size],
            next: 2,
        }
    }

    /// The high-water mark so far.
    pub fn hwm(&self) -> u64 {
        self.next
    }

    /// `pages` zeroed pages; the first id.
    pub fn alloc(&mut self, pages: u64) -> u64 {
        let id = self.next;
        self.next += pages;
        self.image.resize(self.next as usize * self.page_size, 0);
        id
    }

    /// A page (with overflow pages if the body needs them) of the given flags and count.
    pub fn page(&mut self, flags: u16, count: u16, body: &[u8]) -> u64 {
        let pages = (HEADER + body.len()).div_ceil(self.page_size).max(1) as u64;
        let id = self.alloc(pages);
        let at = id as usize * self.page_size;
        let p = &mut self.image[at..];
        p[0..8].copy_from_slice(&id.to_le_bytes());
        p[8..10].copy_from_slice(&flags.to_le_bytes());
        p[10..12].copy_from_slice(&count.to_le_bytes());
        p[12..16].copy_from_slice(&((pages - 1) as u32).to_le_bytes());
        p[HEADER..HEADER + body.len()].copy_from_slice(body);
        id
    }

    /// Writes `tree` as a page-rooted bucket; its root page.
    pub fn bucket(&mut self, tree: &Tree) -> u64 {
        let mut elements = Vec::new();
        for (k, node) in tree.sorted() {
            let (flags, value) = match node {
                Node::Value(v) => (0, v.clone()),
                Node::Bucket(t) => (BUCKET, self.bucket_value(t)),
            };
            elements.push((flags, k.clone(), value));
        }
        // leaves, as full as the page size allows
        let mut level: Vec<(Vec<u8>, u64)> = Vec::new();
        for chunk in pack(&elements, self.page_size, |(_, k, v)| {
            ELEMENT + k.len() + v.len()
        }) {
            let body = leaf_body(
                &chunk
                    .iter()
                    .map(|(f, k, v)| (*f, &k[..], &v[..]))
                    .collect::<Vec<_>>(),
            );
            let first = chunk.first().map(|e| e.1.clone()).unwrap_or_default();
            level.push((first, self.page(LEAF, chunk.len() as u16, &body)));
        }
        while level.len() > 1 {
            let mut up = Vec::new();
            for chunk in pack(&level, self.page_size, |(k, _)| ELEMENT + k.len()) {
                let body = branch_body(
                    &chunk
                        .iter()
                        .map(|(k, id)| (&k[..], *id))
                        .collect::<Vec<_>>(),
                );
                up.push((
                    chunk[0].0.clone(),
                    self.page(BRANCH, chunk.len() as u16, &body),
                ));
            }
            level = up;
        }
        level[0].1
    }

    /// A nested bucket's value: the bucket header, and the inline page when it fits.
    fn bucket_value(&mut self, tree: &Tree) -> Vec<u8> {
        if tree.inlineable(self.page_size) {
            let elements: Vec<_> = tree
                .sorted()
                .into_iter()
                .map(|(k, node)| match node {
                    Node::Value(v) => (0, &k[..], &v[..]),
                    Node::Bucket(_) => unreachable!("inlineable buckets hold no buckets"),
                })
                .collect();
            inline_value(&elements)
        } else {
            let root = self.bucket(tree);
            bucket_header(root)
        }
    }

    /// `ids.len()` zeroed pages to list in the freelist.
    pub fn free_pages(&mut self, n: usize) -> Vec<u64> {
        (0..n).map(|_| self.alloc(1)).collect()
    }

    /// A freelist page listing `ids` (with the count in the data past 0xFFFE ids).
    pub fn freelist(&mut self, ids: &[u64]) -> u64 {
        let mut body = Vec::new();
        let count = if ids.len() >= 0xFFFF {
            body.extend_from_slice(&(ids.len() as u64).to_le_bytes());
            0xFFFF
        } else {
            ids.len() as u16
        };
        for id in ids {
            body.extend_from_slice(&id.to_le_bytes());
        }
        self.page(FREELIST, count, &body)
    }

    /// The image with both meta pages written, the high-water mark the pages written.
    pub fn finish(mut self, metas: [Meta; 2]) -> Vec<u8> {
        let hwm = self.next;
        for (i, m) in metas.iter().enumerate() {
            let at = i * self.page_size;
            let p = &mut self.image[at..at + self.page_size];
            p[0..8].copy_from_slice(&(i as u64).to_le_bytes());
            p[8..10].copy_from_slice(&META.to_le_bytes());
            p[16..80].copy_from_slice(&meta_struct(self.page_size as u32, m, hwm));
        }
        self.image
    }
}

/// Splits `items` into runs that fit a page after the header (at least one item each).
fn pack<T: Clone>(items: &[T], page_size: usize, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = vec![Vec::new()];
    let mut used = HEADER;
    for item in items {
        let n = size(item);
        if out.last().is_some_and(|cur| !cur.is_empty()) && used + n > page_size {
            out.push(Vec::new());
            used = HEADER;
        }
        out.last_mut().expect("one run").push(item.clone());
        used += n;
    }
    out
}

/// Leaf elements then their keys and values, `pos` counted from each element.
pub fn leaf_body(elements: &[(u32, &[u8], &[u8])]) -> Vec<u8> {
    let mut body = vec![0u8; elements.len() * ELEMENT];
    for (i, (flags, k, v)) in elements.iter().enumerate() {
        let pos = (body.len() - i * ELEMENT) as u32;
        let e = &mut body[i * ELEMENT..(i + 1) * ELEMENT];
        e[0..4].copy_from_slice(&flags.to_le_bytes());
        e[4..8].copy_from_slice(&pos.to_le_bytes());
        e[8..12].copy_from_slice(&(k.len() as u32).to_le_bytes());
        e[12..16].copy_from_slice(&(v.len() as u32).to_le_bytes());
        body.extend_from_slice(k);
        body.extend_from_slice(v);
    }
    body
}

/// Branch elements then their keys.
pub fn branch_body(elements: &[(&[u8], u64)]) -> Vec<u8> {
    let mut body = vec![0u8; elements.len() * ELEMENT];
    for (i, (k, child)) in elements.iter().enumerate() {
        let pos = (body.len() - i * ELEMENT) as u32;
        let e = &mut body[i * ELEMENT..(i + 1) * ELEMENT];
        e[0..4].copy_from_slice(&pos.to_le_bytes());
        e[4..8].copy_from_slice(&(k.len() as u32).to_le_bytes());
        e[8..16].copy_from_slice(&child.to_le_bytes());
        body.extend_from_slice(k);
    }
    body
}

/// A bucket header for a page-rooted bucket.
pub fn bucket_header(root: u64) -> Vec<u8> {
    let mut v = root.to_le_bytes().to_vec();
    v.extend_from_slice(&0u64.to_le_bytes());
    v
}

/// An inline bucket's value: header with root 0, then a leaf page (id 0, no overflow).
pub fn inline_value(elements: &[(u32, &[u8], &[u8])]) -> Vec<u8> {
    let mut v = bucket_header(0);
    v.extend_from_slice(&0u64.to_le_bytes());
    v.extend_from_slice(&LEAF.to_le_bytes());
    v.extend_from_slice(&(elements.len() as u16).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&leaf_body(elements));
    v
}

pub fn meta_struct(page_size: u32, m: &Meta, hwm: u64) -> [u8; 64] {
    let mut s = [0u8; 64];
    s[0..4].copy_from_slice(&0xED0C_DAEDu32.to_le_bytes());
    s[4..8].copy_from_slice(&2u32.to_le_bytes());
    s[8..12].copy_from_slice(&page_size.to_le_bytes());
    s[16..24].copy_from_slice(&m.root.to_le_bytes());
    s[32..40].copy_from_slice(&m.freelist.to_le_bytes());
    s[40..48].copy_from_slice(&hwm.to_le_bytes());
    s[48..56].copy_from_slice(&m.txid.to_le_bytes());
    let sum = fnv1a64(&s[..56]);
    s[56..64].copy_from_slice(&sum.to_le_bytes());
    s
}

pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The usual database: `tree` as the root bucket, meta 0 at txid 4 and meta 1 at txid 3 (as
/// `tx.WriteTo` writes them), no stored freelist.
pub fn build(tree: &Tree, page_size: usize) -> Vec<u8> {
    let mut w = Writer::new(page_size);
    let root = w.bucket(tree);
    w.finish(metas(root, NO_FREELIST))
}

pub fn metas(root: u64, freelist: u64) -> [Meta; 2] {
    [
        Meta {
            root,
            txid: 4,
            freelist,
        },
        Meta {
            root,
            txid: 3,
            freelist,
        },
    ]
}

/// Sets the u64 at `offset` of meta page `which`'s meta struct and fixes its checksum.
pub fn set_meta_u64(image: &mut [u8], page_size: usize, which: usize, offset: usize, v: u64) {
    let at = which * page_size + 16;
    image[at + offset..at + offset + 8].copy_from_slice(&v.to_le_bytes());
    let sum = fnv1a64(&image[at..at + 56]);
    image[at + 56..at + 64].copy_from_slice(&sum.to_le_bytes());
}

/// Every page header in the image, following overflow: `(id, flags, count, overflow)`.
pub fn pages(image: &[u8], page_size: usize) -> Vec<(u64, u16, u16, u32)> {
    let mut out = Vec::new();
    let mut id = 2u64;
    while (id as usize + 1) * page_size <= image.len() {
        let p = &image[id as usize * page_size..];
        let flags = u16::from_le_bytes([p[8], p[9]]);
        let count = u16::from_le_bytes([p[10], p[11]]);
        let overflow = u32::from_le_bytes([p[12], p[13], p[14], p[15]]);
        out.push((id, flags, count, overflow));
        id += 1 + u64::from(overflow);
    }
    out
}

/// The first page with these flags.
pub fn find_page(image: &[u8], page_size: usize, flags: u16) -> u64 {
    pages(image, page_size)
        .into_iter()
        .find(|p| p.1 == flags)
        .expect("a page of that kind")
        .0
}

/// Byte offset of element `i` of page `id`.
pub fn element_at(page_size: usize, id: u64, i: usize) -> usize {
    id as usize * page_size + HEADER + i * ELEMENT
}

/// A temporary file holding `bytes`.
pub struct Temp {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn write_temp(bytes: &[u8]) -> Temp {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("db");
    std::fs::write(&path, bytes).expect("write the image");
    Temp { _dir: dir, path }
}

/// Opens `bytes` as a database (its whole length).
pub fn open(bytes: &[u8]) -> (Temp, Result<Db, Error>) {
    let t = write_temp(bytes);
    let db = Db::open(&t.path, bytes.len() as u64);
    (t, db)
}

/// A bucket's entries: key, and the value (`None` for a nested bucket).
pub type Entries = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// One bucket's entries; `None` when there is no such bucket.
pub fn entries(db: &Db, path: &[&[u8]]) -> Result<Option<Entries>, Error> {
    let mut out = Vec::new();
    let found = db.for_each::<Error>(path, &mut |k, v| {
        out.push((k.to_vec(), v.map(<[u8]>::to_vec)));
        Ok(())
    })?;
    Ok(found.then_some(out))
}

/// Everything a caller can do: the check, the bucket names, and `for_each` over every
/// bucket and nested bucket (8 levels at most). The number of entries seen.
pub fn exercise(db: &Db) -> Result<usize, Error> {
    let checked = db.check();
    let seen = walk_all(db)?;
    checked.map(|()| seen)
}

/// `for_each` over every bucket and nested bucket (8 levels at most), without the check.
pub fn walk_all(db: &Db) -> Result<usize, Error> {
    let mut seen = 0;
    for name in db.bucket_names()? {
        visit(db, vec![name], &mut seen)?;
    }
    Ok(seen)
}

fn visit(db: &Db, path: Vec<Vec<u8>>, seen: &mut usize) -> Result<(), Error> {
    let refs: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
    let mut nested = Vec::new();
    let found = db.for_each::<Error>(&refs, &mut |k, v| {
        *seen += 1;
        if v.is_none() {
            nested.push(k.to_vec());
        }
        Ok(())
    })?;
    assert!(found, "a bucket listed by its parent must be found");
    if path.len() < 8 {
        for k in nested {
            let mut p = path.clone();
            p.push(k);
            visit(db, p, seen)?;
        }
    }
    Ok(())
}
