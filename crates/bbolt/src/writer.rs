//! Writing a bbolt database from sorted rows, streaming: for `Maintenance.Snapshot` in etcd's
//! format and for converting a Cairn snapshot to an etcd one offline.
//!
//! The output is written once, in page order, to a [`std::io::Write`] (no seeking), and memory
//! does not grow with the rows. Because the meta pages at the start name the root page and the
//! high-water mark, the rows are read twice: a layout pass that only counts pages (`plan`),
//! then the writing pass (`spill`), which checks each bucket against the plan.
//!
//! # The file
//! - Pages 0 and 1: meta pages, identical but for the txid: 2 on page 0 and 3 on page 1,
//!   bbolt's parity (it writes meta page `txid % 2`), so page 1 is the current one and page 0
//!   its copy. Root bucket `{root page, sequence 0}`, freelist page 2, high-water mark the
//!   file's page count, flags 0.
//! - Page 2: the freelist, stored and empty, so that any bbolt takes the file as it is:
//!   bbolt 1.3 (etcd 3.4) reads the page at open instead of scanning every page for the free
//!   ones (as it must when the meta's freelist is `u64::MAX`, not stored), and opened
//!   read-write with default options (the `bbolt` tool, etcd off Linux) it has no freelist
//!   to write at open. etcd on Linux (`NoFreelistSync`) frees the page at its first commit
//!   and stores no freelist from then on. `tx.Check` finds every page reachable, none free.
//! - Then each bucket's pages: its leaves in key order, then its branch levels bottom-up,
//!   the last page its root; an empty bucket is one empty leaf. Every bucket has its own
//!   pages (none inline).
//! - Last, the root bucket's tree: one entry a bucket (flag 0x01, value `{root, 0}`).
//!
//! Pages fill as in [`crate::fill`]. The file's length is a multiple of the page size (so an
//! etcdctl snapshot, with its sha256 appended, is 32 bytes more than a multiple of 512).

use std::io;

use crate::meta::{self, MAX_PAGE_SIZE, MIN_PAGE_SIZE, Meta};
use crate::order::invalid;
use crate::out::Out;
use crate::page::{FREELIST, META};
use crate::plan::Planner;
use crate::spill::Spiller;

/// One item of the rows a database is written from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row<'a> {
    /// Starts the next top-level bucket (names strictly ascending; a bucket may be empty).
    Bucket(&'a [u8]),
    /// An entry of the current bucket (keys strictly ascending within it).
    Entry(&'a [u8], &'a [u8]),
}

/// The rows, given once per pass, the same both times.
pub trait Rows {
    /// Calls `f` with each row in order, stopping at (and returning) the first error `f`
    /// returns.
    fn each(&mut self, f: &mut dyn FnMut(Row<'_>) -> io::Result<()>) -> io::Result<()>;
}

/// The txids of meta pages 0 and 1.
const TXIDS: [u64; 2] = [2, 3];
/// The freelist's page.
const FREELIST_PAGE: u64 = 2;

/// Writes a bbolt database holding `rows` to `out` (pages in order from page 0: two metas, an
/// empty freelist page, then the buckets' pages bottom-up, then the root bucket's page);
/// returns the bytes written (a multiple of `page_size`). Rows out of order, an entry before
/// any bucket, or a key/value too large for bbolt (key > 32768 bytes, value > 2^31-2) are an
/// `io::ErrorKind::InvalidInput` error naming the row.
///
/// The layout pass reads all the rows before the first byte is written, so bad rows leave
/// `out` untouched. Rows that differ in the writing pass are an `InvalidInput` error too,
/// with `out` holding an unfinished file. `page_size` is a power of two from 512 to 16 MiB
/// (etcd uses 4096). Pages are written one `write_all` each (an entry's value too big for a
/// page in one call of its own), and `out` is flushed at the end; give a file a `BufWriter`.
pub fn write_db(page_size: u32, rows: &mut dyn Rows, out: &mut dyn io::Write) -> io::Result<u64> {
    if !meta::plausible(page_size) {
        return Err(invalid(format!(
            "page size {page_size}: bbolt's page size is a power of two from {MIN_PAGE_SIZE} to {MAX_PAGE_SIZE} bytes (etcd uses 4096)"
        )));
    }
    let mut planner = Planner::new(page_size);
    pass(rows, &mut |row| planner.row(row))?;
    let plan = planner.finish();

    let mut out = Out::new(out, page_size);
    for txid in TXIDS {
        let m = Meta {
            page_size,
            root: plan.root,
            freelist: FREELIST_PAGE,
            hwm: plan.hwm,
            txid,
        };
        out.begin(META, 0, 1)?;
        out.put(&meta::encode(&m));
        out.end()?;
    }
    out.begin(FREELIST, 0, 1)?;
    out.end()?;

    let mut spiller = Spiller::new(&plan, out);
    pass(rows, &mut |row| spiller.row(row))?;
    spiller.finish()
}

/// One pass over the rows. The first error of `f` is the pass's, even if `each` does not
/// pass it on; rows after it are refused.
fn pass(rows: &mut dyn Rows, f: &mut dyn FnMut(&Row<'_>) -> io::Result<()>) -> io::Result<()> {
    let mut failed: Option<io::Error> = None;
    let result = rows.each(&mut |row| {
        if failed.is_some() {
            return Err(io::Error::other(
                "the bbolt writer has refused a row before this one",
            ));
        }
        f(&row).map_err(|e| {
            let echo = io::Error::new(e.kind(), e.to_string());
            failed = Some(e);
            echo
        })
    });
    match failed {
        Some(e) => Err(e),
        None => result,
    }
}
