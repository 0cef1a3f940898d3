//! Finding a nested bucket by name: one path down the parent's tree, as bbolt's cursor seeks,
//! each page checked on the way and the path bounded by [`MAX_DEPTH`].

use crate::db::Db;
use crate::error::{Error, corrupt};
use crate::page::{BRANCH, LEAF, Loc, PageView, kind};
use crate::walk::{
    MAX_DEPTH, OwnedRoot, Ref, Value, entry, inline_not_leaf, not_ascending, too_deep,
};

/// The bucket `name` in the bucket whose tree is `root`; `None` when there is no such key or
/// its value is not a bucket. `depth` grows by the pages descended.
pub(crate) fn bucket(
    db: &Db,
    root: &OwnedRoot,
    name: &[u8],
    depth: &mut u32,
) -> Result<Option<OwnedRoot>, Error> {
    let (mut pgid, mut from) = match root {
        OwnedRoot::Inline(bytes, loc) => {
            if *depth > MAX_DEPTH {
                return Err(too_deep(loc));
            }
            let view = PageView::new(bytes, *loc)?;
            if view.flags() != LEAF {
                return Err(inline_not_leaf(&view));
            }
            return leaf(&view, name);
        }
        OwnedRoot::Page(pgid, from) => (*pgid, *from),
    };
    let mut path = Vec::new();
    loop {
        if *depth > MAX_DEPTH {
            return Err(too_deep(format_args!("page {pgid} ({from} points to it)")));
        }
        if path.contains(&pgid) {
            return Err(corrupt(format!(
                "page {pgid} reached twice (a cycle or a shared page)"
            )));
        }
        path.push(pgid);
        let (buf, _) = db.read_page(pgid, from)?;
        let view = PageView::new(&buf, Loc::Page(pgid))?;
        if view.flags() != BRANCH {
            return leaf(&view, name);
        }
        // the last element whose key is at most `name`
        let mut next = None;
        let mut prev: Option<&[u8]> = None;
        for i in 0..view.count() {
            let e = view.branch(i)?;
            if prev.is_some_and(|p| e.key <= p) {
                return Err(not_ascending(view.loc(), i));
            }
            if e.key > name {
                break;
            }
            prev = Some(e.key);
            next = Some((e.child, i));
        }
        let Some((child, index)) = next else {
            return Ok(None);
        };
        from = Ref::Branch { page: pgid, index };
        pgid = child;
        *depth += 1;
    }
}

fn leaf(view: &PageView<'_>, name: &[u8]) -> Result<Option<OwnedRoot>, Error> {
    let loc = view.loc();
    if view.flags() != LEAF {
        return Err(corrupt(format!(
            "{loc} is {} where a branch or leaf page was expected",
            kind(view.flags())
        )));
    }
    let mut prev: Option<&[u8]> = None;
    for i in 0..view.count() {
        let e = view.leaf(i)?;
        if prev.is_some_and(|p| e.key <= p) {
            return Err(not_ascending(loc, i));
        }
        if e.key > name {
            break;
        }
        if e.key == name {
            return Ok(match entry(e, loc, i)?.value {
                Value::Bucket(root) => Some(root.to_owned()),
                Value::Plain(_) => None,
            });
        }
        prev = Some(e.key);
    }
    Ok(None)
}
