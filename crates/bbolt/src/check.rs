//! The consistency check, what bbolt's `tx.Check` catches: every page reachable from the root
//! bucket, the freelist and the two meta pages is reached once ([`Walker`] refuses a second
//! time, a page past the high-water mark, a wrong page type, keys out of order); no freed page
//! is reachable; and, when the freelist is stored, every page below the high-water mark is
//! either reachable or free. (Without a stored freelist, bbolt rebuilds it from the pages not
//! reachable, so there is nothing to compare.)

use crate::bitset::Bitset;
use crate::db::Db;
use crate::error::{Error, corrupt};
use crate::freelist;
use crate::meta::NO_FREELIST;
use crate::page::{FREELIST, kind};
use crate::walk::{Entry, Ref, Root, Value, Walker, plain_at_top};

/// Runs the check; the first problem found is the error.
pub(crate) fn run(db: &Db) -> Result<(), Error> {
    let meta = *db.meta();
    let mut walker = Walker::new(db);
    if meta.freelist != NO_FREELIST {
        let freed = read_freelist(db, &mut walker, meta.freelist)?;
        walker.set_freed(freed);
    }
    let root = Root::Page(meta.root, Ref::RootBucket);
    walker.bucket(&root, 0, &mut |w, e: Entry<'_>, depth| match &e.value {
        Value::Plain(_) => Err(plain_at_top(e.key)),
        Value::Bucket(root) => w.bucket(root, depth + 1, &mut nested),
    })?;
    if let Some(freed) = walker.freed() {
        let seen = walker.seen();
        if let Some(id) = (2..meta.hwm).find(|&id| !seen.contains(id) && !freed.contains(id)) {
            return Err(corrupt(format!(
                "page {id} is neither reachable nor in the freelist (a leaked page)"
            )));
        }
    }
    Ok(())
}

/// Every nested bucket, at any depth.
fn nested(w: &mut Walker<'_>, e: Entry<'_>, depth: u32) -> Result<(), Error> {
    match &e.value {
        Value::Plain(_) => Ok(()),
        Value::Bucket(root) => w.bucket(root, depth + 1, &mut nested),
    }
}

/// The freed pages, from the freelist page `pgid`: each below the high-water mark, none a
/// meta page or the freelist itself, none listed twice.
fn read_freelist(db: &Db, walker: &mut Walker<'_>, pgid: u64) -> Result<Bitset, Error> {
    let (buf, header) = db.read_page(pgid, Ref::Freelist)?;
    if header.flags != FREELIST {
        return Err(corrupt(format!(
            "page {pgid} is {}, yet the meta page names it the freelist",
            kind(header.flags)
        )));
    }
    walker.mark(pgid, header.overflow)?;
    let hwm = db.meta().hwm;
    let mut freed = Bitset::new(hwm);
    for id in freelist::ids(&buf, pgid)? {
        if id >= hwm {
            return Err(corrupt(format!(
                "freelist page {pgid} lists page {id}, past the high-water mark {hwm}"
            )));
        }
        if walker.seen().contains(id) {
            return Err(corrupt(format!(
                "freelist page {pgid} lists page {id}, a meta page or the freelist itself"
            )));
        }
        if !freed.insert(id) {
            return Err(corrupt(format!(
                "freelist page {pgid} lists page {id} twice"
            )));
        }
    }
    Ok(freed)
}
