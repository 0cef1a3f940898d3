//! The writer's layout pass: how many pages each bucket's tree takes, from the sizes of its
//! rows alone, so that the meta pages at the start of the file can name the root page and the
//! high-water mark before any other page is written.
//!
//! A tree's levels are counted as the rows come: each page started on one level is an element
//! of the level above, whose own pages are counted with the same [`Fill`]; a level above is
//! begun only when the one below has a second page. Memory is a few counters a level, and one
//! small record a bucket to check the writing pass against.

use std::io;

use crate::fill::Fill;
use crate::order::Order;
use crate::page::ELEMENT_LEN;
use crate::writer::Row;

const ELEMENT: u64 = ELEMENT_LEN as u64;
/// A bucket's value in its parent: `root u64, sequence u64`.
pub(crate) const BUCKET_VALUE: u64 = 16;

/// What the layout pass found, for the writing pass to write and to be checked against.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub buckets: Vec<BucketPlan>,
    /// The root bucket's root page.
    pub root: u64,
    /// Pages in the file.
    pub hwm: u64,
}

/// One bucket as the layout pass saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BucketPlan {
    pub name_len: u64,
    pub entries: u64,
    /// Bytes of its keys and values.
    pub bytes: u64,
    pub pages: u64,
}

/// The shape of one tree: its pages, and the span of its root page (the last written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub pages: u64,
    pub root_span: u64,
}

/// One tree's pages, counted level by level as its entries come.
#[derive(Debug)]
pub(crate) struct TreePlan {
    page_size: u32,
    /// Leaves first, then the branch levels.
    levels: Vec<Level>,
}

#[derive(Debug)]
struct Level {
    fill: Fill,
    /// Pages started on this level.
    nodes: u64,
    /// Pages completed on this level, overflow included.
    pages: u64,
    /// The first page's first key length, until the level above begins.
    first_key: u64,
}

impl TreePlan {
    pub fn new(page_size: u32) -> TreePlan {
        TreePlan {
            page_size,
            levels: vec![Level::new(Fill::leaves(page_size))],
        }
    }

    /// The next entry, in key order.
    pub fn entry(&mut self, key_len: u64, value_len: u64) {
        self.push(0, ELEMENT + key_len + value_len, key_len);
    }

    /// An element of `size` bytes, with a key of `key_len`, on level `at`.
    fn push(&mut self, at: usize, size: u64, key_len: u64) {
        let Some(level) = self.levels.get_mut(at) else {
            return;
        };
        let Some(done) = level.fill.place(size) else {
            return;
        };
        // the element starts a page: the page it completes is counted, and the new page is an
        // element of the level above
        level.pages += done;
        level.nodes += 1;
        match level.nodes {
            1 => level.first_key = key_len,
            2 => {
                let first = level.first_key;
                self.levels.push(Level::new(Fill::branches(self.page_size)));
                self.push(at + 1, ELEMENT + first, first);
                self.push(at + 1, ELEMENT + key_len, key_len);
            }
            _ => self.push(at + 1, ELEMENT + key_len, key_len),
        }
    }

    pub fn finish(&self) -> Shape {
        let pages = self.levels.iter().map(|l| l.pages + l.fill.span()).sum();
        let root_span = self.levels.last().map_or(0, |l| l.fill.span());
        // an empty tree is one empty leaf page
        Shape {
            pages: u64::max(pages, 1),
            root_span: u64::max(root_span, 1),
        }
    }
}

impl Level {
    fn new(fill: Fill) -> Level {
        Level {
            fill,
            nodes: 0,
            pages: 0,
            first_key: 0,
        }
    }
}

/// The first page of the buckets' trees: after the two meta pages and the freelist page.
pub(crate) const FIRST_TREE_PAGE: u64 = 3;

/// The layout pass over the rows, one at a time.
#[derive(Debug)]
pub(crate) struct Planner {
    page_size: u32,
    order: Order,
    buckets: Vec<BucketPlan>,
    /// The current bucket, and its tree so far.
    current: Option<(BucketPlan, TreePlan)>,
    /// The root bucket's tree: an entry for each bucket.
    root: TreePlan,
}

impl Planner {
    pub fn new(page_size: u32) -> Planner {
        Planner {
            page_size,
            order: Order::default(),
            buckets: Vec::new(),
            current: None,
            root: TreePlan::new(page_size),
        }
    }

    pub fn row(&mut self, row: &Row<'_>) -> io::Result<()> {
        self.order.check(row)?;
        match *row {
            Row::Bucket(name) => {
                self.end_bucket();
                let name_len = name.len() as u64;
                self.root.entry(name_len, BUCKET_VALUE);
                let bucket = BucketPlan {
                    name_len,
                    ..BucketPlan::default()
                };
                self.current = Some((bucket, TreePlan::new(self.page_size)));
            }
            Row::Entry(key, value) => {
                // the order check saw a bucket first
                if let Some((bucket, tree)) = &mut self.current {
                    let (k, v) = (key.len() as u64, value.len() as u64);
                    bucket.entries += 1;
                    bucket.bytes += k + v;
                    tree.entry(k, v);
                }
            }
        }
        Ok(())
    }

    fn end_bucket(&mut self) {
        if let Some((mut bucket, tree)) = self.current.take() {
            bucket.pages = tree.finish().pages;
            self.buckets.push(bucket);
        }
    }

    pub fn finish(mut self) -> Plan {
        self.end_bucket();
        let start = FIRST_TREE_PAGE + self.buckets.iter().map(|b| b.pages).sum::<u64>();
        let shape = self.root.finish();
        let hwm = start + shape.pages;
        Plan {
            buckets: self.buckets,
            root: hwm - shape.root_span,
            hwm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(page_size: u32, entries: &[(u64, u64)]) -> Shape {
        let mut t = TreePlan::new(page_size);
        for &(k, v) in entries {
            t.entry(k, v);
        }
        t.finish()
    }

    #[test]
    fn an_empty_tree_is_one_leaf() {
        let want = Shape {
            pages: 1,
            root_span: 1,
        };
        assert_eq!(shape(4096, &[]), want);
        assert_eq!(shape(4096, &[(3, 3)]), want);
    }

    #[test]
    fn leaves_and_one_branch() {
        // 4096-byte leaves of 16 + 127 * 32 = 4080 bytes: 127 entries each
        let s = shape(4096, &vec![(8, 8); 127 * 3]);
        assert_eq!(
            s,
            Shape {
                pages: 4,
                root_span: 1
            }
        );
        let s = shape(4096, &vec![(8, 8); 127 * 3 + 1]);
        assert_eq!(
            s,
            Shape {
                pages: 5,
                root_span: 1
            }
        );
    }

    #[test]
    fn an_overflowing_root() {
        // one entry of three pages is its own root
        let s = shape(1024, &[(10, 3000)]);
        assert_eq!(
            s,
            Shape {
                pages: 3,
                root_span: 3
            }
        );
        // 1000-byte keys: each leaf of two pages, branches of two keys and two pages
        let s = shape(1024, &[(1000, 0); 4]);
        // 4 leaves (8 pages), 2 branches (4), a root of 2 children (2)
        assert_eq!(
            s,
            Shape {
                pages: 14,
                root_span: 2
            }
        );
    }

    #[test]
    fn the_plan_of_a_file() {
        let mut p = Planner::new(4096);
        for row in [
            Row::Bucket(b"a"),
            Row::Bucket(b"key"),
            Row::Entry(b"k", b"v"),
        ] {
            p.row(&row).unwrap();
        }
        let plan = p.finish();
        // pages 3 and 4 the buckets' leaves, 5 the root bucket's
        assert_eq!((plan.root, plan.hwm), (5, 6));
        assert_eq!(
            plan.buckets[1],
            BucketPlan {
                name_len: 3,
                entries: 1,
                bytes: 2,
                pages: 1
            }
        );
    }
}
