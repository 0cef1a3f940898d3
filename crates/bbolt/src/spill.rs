//! The writer's writing pass (bbolt's word for writing nodes out as pages is "spill"): each
//! bucket's leaves as its entries come, one leaf page buffered; when the bucket ends, its
//! branch levels bottom-up from the leaves' first keys; after the last bucket, the root
//! bucket's tree. Page ids are handed out in the order pages are written.
//!
//! Each bucket is checked against the layout pass's [`Plan`] as it goes: more entries, bytes
//! or leaf pages than planned stop the pass at once; fewer entries or bytes stop it when the
//! bucket ends, before its branch pages; any other page count once they are written. So a
//! file whose meta pages do not describe it is never finished, and the caller gets an error.
//!
//! Memory: one leaf page, the current bucket's leaves' first keys and page ids, and each
//! bucket's name (for the root bucket's tree).

use std::io;

use crate::fill::Fill;
use crate::order::{Order, invalid, show};
use crate::out::Out;
use crate::page::{BRANCH, BUCKET_ELEMENT, ELEMENT_LEN, HEADER_LEN, LEAF};
use crate::plan::{BucketPlan, Plan};
use crate::writer::Row;

const HEADER: u64 = HEADER_LEN as u64;
const ELEMENT: u64 = ELEMENT_LEN as u64;

/// A page written: its id and where its first key is in [`Tree::keys`].
#[derive(Debug, Clone, Copy)]
struct Node {
    pgid: u64,
    key: usize,
    len: usize,
}

/// One tree being written.
struct Tree {
    page_size: u32,
    fill: Fill,
    /// The leaf page being filled: its elements `(flags, key, value)` lengths and its keys and
    /// values.
    elements: Vec<(u32, usize, usize)>,
    data: Vec<u8>,
    /// The leaves written.
    nodes: Vec<Node>,
    keys: Vec<u8>,
}

impl Tree {
    fn new(page_size: u32) -> Tree {
        Tree {
            page_size,
            fill: Fill::leaves(page_size),
            elements: Vec::new(),
            data: Vec::new(),
            nodes: Vec::new(),
            keys: Vec::new(),
        }
    }

    fn entry(&mut self, out: &mut Out<'_>, flags: u32, key: &[u8], value: &[u8]) -> io::Result<()> {
        let size = ELEMENT + (key.len() + value.len()) as u64;
        if self.fill.place(size).is_some() {
            self.flush(out)?;
            self.nodes.push(Node {
                pgid: out.pgid(),
                key: self.keys.len(),
                len: key.len(),
            });
            self.keys.extend_from_slice(key);
            if HEADER + size > u64::from(self.page_size) {
                return out.alone(flags, key, value);
            }
        }
        self.elements.push((flags, key.len(), value.len()));
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(value);
        Ok(())
    }

    /// Writes the leaf being filled, if any.
    fn flush(&mut self, out: &mut Out<'_>) -> io::Result<()> {
        if self.elements.is_empty() {
            return Ok(());
        }
        self.leaf(out)?;
        self.elements.clear();
        self.data.clear();
        Ok(())
    }

    fn leaf(&self, out: &mut Out<'_>) -> io::Result<()> {
        let n = self.elements.len() as u64;
        out.begin(LEAF, n, 1)?;
        // `pos` counts from the element to its key
        let mut pos = n * ELEMENT;
        for &(flags, k, v) in &self.elements {
            out.leaf_element(flags, pos, k, v)?;
            pos = pos + (k + v) as u64 - ELEMENT;
        }
        out.put(&self.data);
        out.end()
    }

    /// Writes the rest: the last leaf and the branch levels; the root page.
    fn finish(mut self, out: &mut Out<'_>) -> io::Result<u64> {
        self.flush(out)?;
        if self.nodes.is_empty() {
            let root = out.pgid();
            self.leaf(out)?;
            return Ok(root);
        }
        let mut level = std::mem::take(&mut self.nodes);
        while level.len() > 1 {
            let mut up = Vec::with_capacity(level.len() / 2 + 1);
            let mut fill = Fill::branches(self.page_size);
            let mut start = 0;
            for (i, child) in level.iter().enumerate() {
                if fill.place(ELEMENT + child.len as u64).is_some() && i > start {
                    up.push(self.branch(out, &level[start..i])?);
                    start = i;
                }
            }
            up.push(self.branch(out, &level[start..])?);
            level = up;
        }
        Ok(level[0].pgid)
    }

    /// A branch page over `children`; the node it is in the level above.
    fn branch(&self, out: &mut Out<'_>, children: &[Node]) -> io::Result<Node> {
        let pgid = out.pgid();
        let n = children.len() as u64;
        let size = HEADER + children.iter().map(|c| ELEMENT + c.len as u64).sum::<u64>();
        out.begin(BRANCH, n, size.div_ceil(u64::from(self.page_size)))?;
        let mut pos = n * ELEMENT;
        for child in children {
            out.branch_element(pos, child.len, child.pgid)?;
            pos = pos + child.len as u64 - ELEMENT;
        }
        for child in children {
            out.put(self.key(child));
        }
        out.end()?;
        let first = children.first().copied().unwrap_or(Node {
            pgid,
            key: 0,
            len: 0,
        });
        Ok(Node { pgid, ..first })
    }

    fn key(&self, node: &Node) -> &[u8] {
        self.keys
            .get(node.key..node.key + node.len)
            .unwrap_or_default()
    }
}

/// The writing pass over the rows, one at a time.
pub(crate) struct Spiller<'p, 'w> {
    plan: &'p Plan,
    out: Out<'w>,
    order: Order,
    current: Option<Current>,
    /// Each bucket begun: its name and root page.
    buckets: Vec<(Vec<u8>, u64)>,
}

/// The bucket being written.
struct Current {
    /// Its place among the buckets.
    index: usize,
    /// What it has had so far, to compare with the plan.
    seen: BucketPlan,
    /// Its first page.
    start: u64,
    tree: Tree,
}

impl<'p, 'w> Spiller<'p, 'w> {
    /// Continues `out`, which holds the pages before the first bucket's.
    pub fn new(plan: &'p Plan, out: Out<'w>) -> Spiller<'p, 'w> {
        Spiller {
            plan,
            out,
            order: Order::default(),
            current: None,
            buckets: Vec::new(),
        }
    }

    pub fn row(&mut self, row: &Row<'_>) -> io::Result<()> {
        self.order.check(row).map_err(|e| {
            invalid(format!(
                "{e} (they were in order in the layout pass; Rows::each must give the same rows both times; the output so far is incomplete)"
            ))
        })?;
        match *row {
            Row::Bucket(name) => {
                self.end_bucket()?;
                let index = self.buckets.len();
                let planned = self.planned(index)?;
                if planned.name_len != name.len() as u64 {
                    return Err(self.differ(format!(
                        "bucket {}'s name {} is {} bytes long, the layout pass's was {}",
                        index + 1,
                        show(name),
                        name.len(),
                        planned.name_len
                    )));
                }
                self.buckets.push((name.to_vec(), 0));
                self.current = Some(Current {
                    index,
                    seen: BucketPlan {
                        name_len: name.len() as u64,
                        ..BucketPlan::default()
                    },
                    start: self.out.pgid(),
                    tree: Tree::new(self.out.page_size()),
                });
            }
            Row::Entry(key, value) => {
                // the order check saw a bucket first
                let Some(cur) = &mut self.current else {
                    return Ok(());
                };
                cur.seen.entries += 1;
                cur.seen.bytes += (key.len() + value.len()) as u64;
                cur.tree.entry(&mut self.out, 0, key, value)?;
                let (index, start, mut seen) = (cur.index, cur.start, cur.seen);
                seen.pages = self.out.pgid() - start;
                let planned = self.planned(index)?;
                if seen.entries > planned.entries
                    || seen.bytes > planned.bytes
                    || seen.pages > planned.pages
                {
                    return Err(self.mismatch(index, &seen, &planned));
                }
            }
        }
        Ok(())
    }

    /// Writes the root bucket's tree; the bytes written in all.
    pub fn finish(mut self) -> io::Result<u64> {
        self.end_bucket()?;
        let (have, planned) = (self.buckets.len(), self.plan.buckets.len());
        if have != planned {
            return Err(self.differ(format!("{have} buckets, the layout pass's {planned}")));
        }
        let mut root = Tree::new(self.out.page_size());
        for (name, pgid) in &self.buckets {
            let mut value = pgid.to_le_bytes().to_vec();
            value.extend_from_slice(&0u64.to_le_bytes());
            root.entry(&mut self.out, BUCKET_ELEMENT, name, &value)?;
        }
        let root = root.finish(&mut self.out)?;
        let (hwm, plan) = (self.out.pgid(), self.plan);
        if (root, hwm) != (plan.root, plan.hwm) {
            return Err(io::Error::other(format!(
                "bbolt writer: the root bucket's page is {root} of {hwm}, the meta pages say {} of {} (a bug)",
                plan.root, plan.hwm
            )));
        }
        self.out.flush()?;
        Ok(self.out.written())
    }

    /// Ends the current bucket: its branch pages, once it proves to be as planned.
    fn end_bucket(&mut self) -> io::Result<()> {
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        let planned = self.planned(cur.index)?;
        let mut seen = cur.seen;
        seen.pages = self.out.pgid() - cur.start;
        if (seen.entries, seen.bytes) != (planned.entries, planned.bytes) {
            return Err(self.mismatch(cur.index, &seen, &planned));
        }
        let root = cur.tree.finish(&mut self.out)?;
        seen.pages = self.out.pgid() - cur.start;
        if seen != planned {
            return Err(self.mismatch(cur.index, &seen, &planned));
        }
        if let Some(last) = self.buckets.last_mut() {
            last.1 = root;
        }
        Ok(())
    }

    fn planned(&self, index: usize) -> io::Result<BucketPlan> {
        self.plan.buckets.get(index).copied().ok_or_else(|| {
            self.differ(format!(
                "a bucket more than the layout pass's {}",
                self.plan.buckets.len()
            ))
        })
    }

    fn mismatch(&self, index: usize, seen: &BucketPlan, planned: &BucketPlan) -> io::Error {
        let name = self
            .buckets
            .get(index)
            .map_or(String::new(), |b| show(&b.0));
        let describe = |b: &BucketPlan| {
            format!(
                "{} entries of {} bytes in {} pages",
                b.entries, b.bytes, b.pages
            )
        };
        self.differ(format!(
            "bucket {name} has {}, the layout pass's had {}",
            describe(seen),
            describe(planned)
        ))
    }

    fn differ(&self, what: String) -> io::Error {
        invalid(format!(
            "row {}: the rows differ from the layout pass's: {what}; Rows::each must give the same rows both times (the output so far is incomplete)",
            self.order.rows()
        ))
    }
}
