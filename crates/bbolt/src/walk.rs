//! Walking one bucket's B+tree in key order, every step checked.
//!
//! A walk follows branch elements depth first, so it holds only the pages on the current path.
//! It refuses a page reached twice (a cycle or a shared page: the [`Walker`] keeps a bit per
//! page id), a path deeper than [`MAX_DEPTH`] pages and buckets, keys that do not strictly
//! ascend across the bucket's leaves, and a child whose first key is below the key its branch
//! element holds for it. (bbolt's spill writes each child's first key into its parent, so the
//! two are normally equal; the check only asks for what bbolt's own `tx.Check` asks, the
//! order, so that a database bbolt accepts is never refused here.)
//! The visitor gets each leaf entry, a nested bucket as its root; [`crate::check`] follows
//! those roots with the same walker, [`crate::Db::for_each`] does not.

use std::fmt;

use crate::bitset::Bitset;
use crate::db::Db;
use crate::error::{Error, corrupt};
use crate::page::{BRANCH, BUCKET_ELEMENT, LEAF, LeafElement, Loc, PageView, kind, le_u64};

/// The deepest path followed: the pages of nested trees plus the buckets between them.
/// bbolt's trees are a few pages deep; only a cycle or a crafted file gets near this.
pub(crate) const MAX_DEPTH: u32 = 64;
/// A nested bucket's value starts with `root pgid u64, sequence u64`.
const BUCKET_HEADER_LEN: usize = 16;

/// What pointed at a page, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ref {
    RootBucket,
    Freelist,
    Branch { page: u64, index: usize },
    Bucket { loc: Loc, index: usize },
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::RootBucket => write!(f, "the meta page's root bucket"),
            Ref::Freelist => write!(f, "the meta page's freelist"),
            Ref::Branch { page, index } => write!(f, "element {index} of branch page {page}"),
            Ref::Bucket { loc, index } => write!(f, "the bucket in element {index} of {loc}"),
        }
    }
}

/// A bucket's tree: a page of the file, or the one leaf page stored inline in a value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Root<'a> {
    Page(u64, Ref),
    Inline(&'a [u8], Loc),
}

/// A [`Root`] that outlives the page it was read from.
#[derive(Debug, Clone)]
pub(crate) enum OwnedRoot {
    Page(u64, Ref),
    Inline(Vec<u8>, Loc),
}

impl Root<'_> {
    pub fn to_owned(self) -> OwnedRoot {
        match self {
            Root::Page(id, from) => OwnedRoot::Page(id, from),
            Root::Inline(bytes, loc) => OwnedRoot::Inline(bytes.to_vec(), loc),
        }
    }
}

impl OwnedRoot {
    pub fn borrow(&self) -> Root<'_> {
        match self {
            OwnedRoot::Page(id, from) => Root::Page(*id, *from),
            OwnedRoot::Inline(bytes, loc) => Root::Inline(bytes, *loc),
        }
    }
}

/// One leaf entry of a bucket.
pub(crate) struct Entry<'a> {
    pub key: &'a [u8],
    pub value: Value<'a>,
}

pub(crate) enum Value<'a> {
    Plain(&'a [u8]),
    Bucket(Root<'a>),
}

impl<'a> Value<'a> {
    /// The value, `None` for a nested bucket.
    pub fn plain(&self) -> Option<&'a [u8]> {
        match self {
            Value::Plain(v) => Some(v),
            Value::Bucket(_) => None,
        }
    }
}

/// Element `index` of the leaf at `loc` as an entry: a plain value, or a bucket header and
/// (when its root is 0) the inline page after it.
pub(crate) fn entry<'a>(e: LeafElement<'a>, loc: Loc, index: usize) -> Result<Entry<'a>, Error> {
    let value = match e.flags {
        0 => Value::Plain(e.value),
        BUCKET_ELEMENT if matches!(loc, Loc::Inline { .. }) => {
            // bbolt inlines only buckets without sub-buckets; allowing them would let
            // overlapping inline values nest into exponentially many buckets
            return Err(corrupt(format!(
                "{loc}: element {index} is a nested bucket, which an inline bucket never holds"
            )));
        }
        BUCKET_ELEMENT => {
            let root = le_u64(e.value, 0).filter(|_| e.value.len() >= BUCKET_HEADER_LEN);
            let Some(root) = root else {
                return Err(corrupt(format!(
                    "{loc}: element {index} is a bucket whose {}-byte value is shorter than a bucket header ({BUCKET_HEADER_LEN})",
                    e.value.len()
                )));
            };
            if root == 0 {
                let page = e.value.get(BUCKET_HEADER_LEN..).unwrap_or_default();
                let host = loc.host();
                Value::Bucket(Root::Inline(page, Loc::Inline { host, index }))
            } else if e.value.len() != BUCKET_HEADER_LEN {
                return Err(corrupt(format!(
                    "{loc}: element {index} is a bucket rooted at page {root}, yet its value holds {} bytes after the bucket header",
                    e.value.len() - BUCKET_HEADER_LEN
                )));
            } else {
                Value::Bucket(Root::Page(root, Ref::Bucket { loc, index }))
            }
        }
        f => {
            return Err(corrupt(format!(
                "{loc}: element {index} has unknown flags {f:#x}"
            )));
        }
    };
    Ok(Entry { key: e.key, value })
}

/// The error for a plain key among the top-level buckets, which bbolt cannot write.
pub(crate) fn plain_at_top(key: &[u8]) -> Error {
    corrupt(format!(
        "the root bucket holds the plain key \"{}\" (only buckets sit at the top level)",
        show(key)
    ))
}

/// A key as escaped text for a message, cut at 64 bytes.
pub(crate) fn show(key: &[u8]) -> String {
    let mut s: String = key
        .iter()
        .take(64)
        .flat_map(|b| b.escape_ascii())
        .map(char::from)
        .collect();
    if key.len() > 64 {
        s.push_str("...");
    }
    s
}

pub(crate) fn inline_not_leaf(view: &PageView<'_>) -> Error {
    corrupt(format!(
        "{} is {}; an inline bucket is always a leaf page",
        view.loc(),
        kind(view.flags())
    ))
}

pub(crate) fn too_deep(what: impl fmt::Display) -> Error {
    corrupt(format!(
        "{what} is more than {MAX_DEPTH} pages and buckets deep (a cycle?)"
    ))
}

/// Called with each entry of the bucket walked and the depth of its leaf.
pub(crate) type Visit<'v, 'd, E> = dyn FnMut(&mut Walker<'d>, Entry<'_>, u32) -> Result<(), E> + 'v;

/// The pages reached so far in one walk (the two meta pages from the start), and, during the
/// consistency check, the freed pages no tree may reach.
pub(crate) struct Walker<'d> {
    db: &'d Db,
    seen: Bitset,
    freed: Option<Bitset>,
}

impl<'d> Walker<'d> {
    pub fn new(db: &'d Db) -> Walker<'d> {
        let mut seen = Bitset::new(db.meta().hwm);
        seen.insert(0);
        seen.insert(1);
        Walker {
            db,
            seen,
            freed: None,
        }
    }

    pub fn seen(&self) -> &Bitset {
        &self.seen
    }

    pub fn set_freed(&mut self, freed: Bitset) {
        self.freed = Some(freed);
    }

    pub fn freed(&self) -> Option<&Bitset> {
        self.freed.as_ref()
    }

    /// Records the span of page `first` (`read_page` checked it lies below the high-water mark).
    pub fn mark(&mut self, first: u64, overflow: u32) -> Result<(), Error> {
        for id in first..=first.saturating_add(u64::from(overflow)) {
            if !self.seen.insert(id) {
                return Err(corrupt(format!(
                    "page {id} reached twice (a cycle or a shared page)"
                )));
            }
            if self.freed.as_ref().is_some_and(|f| f.contains(id)) {
                return Err(corrupt(format!(
                    "page {id} is in use but also in the freelist"
                )));
            }
        }
        Ok(())
    }

    /// Walks the bucket whose tree is `root`, at `depth`.
    pub fn bucket<E: From<Error>>(
        &mut self,
        root: &Root<'_>,
        depth: u32,
        visit: &mut Visit<'_, 'd, E>,
    ) -> Result<(), E> {
        let mut order = Order::default();
        match *root {
            Root::Page(pgid, from) => self.page(pgid, from, None, depth, &mut order, visit),
            Root::Inline(bytes, loc) => {
                if depth > MAX_DEPTH {
                    return Err(too_deep(loc).into());
                }
                let view = PageView::new(bytes, loc)?;
                if view.flags() != LEAF {
                    return Err(inline_not_leaf(&view).into());
                }
                self.items(&view, None, depth, &mut order, visit)
            }
        }
    }

    /// Page `pgid`, pointed at by `from`; `first` is the key its parent branch holds for it.
    fn page<E: From<Error>>(
        &mut self,
        pgid: u64,
        from: Ref,
        first: Option<&[u8]>,
        depth: u32,
        order: &mut Order,
        visit: &mut Visit<'_, 'd, E>,
    ) -> Result<(), E> {
        if depth > MAX_DEPTH {
            return Err(too_deep(format_args!("page {pgid} ({from} points to it)")).into());
        }
        let (buf, header) = self.db.read_page(pgid, from)?;
        self.mark(pgid, header.overflow)?;
        let view = PageView::new(&buf, Loc::Page(pgid))?;
        self.items(&view, first.map(|k| (k, from)), depth, order, visit)
    }

    fn items<E: From<Error>>(
        &mut self,
        view: &PageView<'_>,
        first: Option<(&[u8], Ref)>,
        depth: u32,
        order: &mut Order,
        visit: &mut Visit<'_, 'd, E>,
    ) -> Result<(), E> {
        let loc = view.loc();
        if let Some((_, from)) = first
            && view.count() == 0
        {
            return Err(corrupt(format!("{loc} is empty, yet {from} points to it")).into());
        }
        match view.flags() {
            BRANCH => {
                let mut prev: Option<&[u8]> = None;
                for i in 0..view.count() {
                    let e = view.branch(i)?;
                    if i == 0 {
                        first_key(loc, e.key, first)?;
                    }
                    if let Some(p) = prev
                        && e.key <= p
                    {
                        return Err(not_ascending(loc, i).into());
                    }
                    prev = Some(e.key);
                    let from = Ref::Branch {
                        page: loc.host(),
                        index: i,
                    };
                    self.page(e.child, from, Some(e.key), depth + 1, order, visit)?;
                }
            }
            LEAF => {
                for i in 0..view.count() {
                    let e = view.leaf(i)?;
                    if i == 0 {
                        first_key(loc, e.key, first)?;
                    }
                    order.next(e.key, loc, i)?;
                    visit(self, entry(e, loc, i)?, depth)?;
                }
            }
            f => {
                return Err(corrupt(format!(
                    "{loc} is {} where a branch or leaf page was expected",
                    kind(f)
                ))
                .into());
            }
        }
        Ok(())
    }
}

/// A child's first key may not be below the key its parent branch element holds for it.
fn first_key(loc: Loc, key: &[u8], first: Option<(&[u8], Ref)>) -> Result<(), Error> {
    match first {
        Some((expected, from)) if key < expected => Err(corrupt(format!(
            "{loc}: its first key is below the key {from} holds for it"
        ))),
        _ => Ok(()),
    }
}

pub(crate) fn not_ascending(loc: Loc, i: usize) -> Error {
    corrupt(format!(
        "{loc}: element {i}'s key is not greater than the key before it (keys must be strictly ascending)"
    ))
}

/// The last key seen in a bucket, across its leaves.
#[derive(Default)]
struct Order {
    last: Option<Vec<u8>>,
}

impl Order {
    fn next(&mut self, key: &[u8], loc: Loc, i: usize) -> Result<(), Error> {
        match &mut self.last {
            Some(last) if key <= last.as_slice() => Err(not_ascending(loc, i)),
            Some(last) => {
                last.clear();
                last.extend_from_slice(key);
                Ok(())
            }
            None => {
                self.last = Some(key.to_vec());
                Ok(())
            }
        }
    }
}
