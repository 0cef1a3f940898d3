//! A small reader of bbolt database files: etcd's backend (`member/snap/db`) and the files
//! `etcdctl snapshot save` writes; and a streaming writer of them ([`write_db`]), for serving
//! and converting snapshots in etcd's format. No `unsafe` and no mmap: pages are read with
//! `pread` as they are visited, so memory stays at the few pages on the current path, whatever
//! the file's size; the writer writes pages in order and keeps no more than one bucket's
//! leaves' first keys.
//!
//! Nothing in the file is trusted. A page must lie below the high-water mark and inside the
//! file, name itself in its header, be of the expected type and hold its elements inside its
//! span; no page may be reached twice (a cycle or a shared page); a path is at most 64 pages
//! and buckets deep; keys ascend strictly. A violation is one [`Error`] naming the page and
//! what is wrong, never a panic, and no allocation is larger than the file.
//!
//! # Layout
//! - [`Db`] (`db`): open (the meta page chosen), page reads, the public calls.
//! - `meta`: the two meta pages, their checksum and the page size.
//! - `page`: a page's header and elements over checked bytes; `freelist`: the freelist page.
//! - `walk`: one bucket's tree in key order; `find`: one path down to a nested bucket.
//! - `check`: the consistency check (bbolt's `tx.Check`); `bitset`: the pages seen.
//! - [`write_db`] (`writer`): the writer's two passes and the file it writes; `order`: what
//!   the rows must be; `fill`: how pages fill; `plan`: the layout pass; `spill`: the writing
//!   pass; `out`: pages built and written.
//!
//! # The format (bbolt's `page.go`, `bucket.go`, `db.go`; little-endian)
//! - Page `pgid` starts at `pgid * page_size` and spans `(1 + overflow) * page_size` bytes;
//!   its 16-byte header is `id u64, flags u16, count u16, overflow u32`, flags one of branch
//!   0x01, leaf 0x02, meta 0x04, freelist 0x10.
//! - Pages 0 and 1 are meta pages: at byte 16, `magic u32 (0xED0CDAED), version u32 (2),
//!   page_size u32, flags u32, root {pgid u64, sequence u64}, freelist u64, pgid u64 (the
//!   high-water mark), txid u64, checksum u64` (FNV-1a 64 of the 56 bytes before it). The
//!   valid one with the higher txid is the database; `size = pgid * page_size`.
//! - After a branch or leaf header come `count` 16-byte elements: branch `pos u32, ksize u32,
//!   pgid u64`; leaf `flags u32, pos u32, ksize u32, vsize u32`. A key is `pos` bytes after
//!   its element, a leaf value right after the key. A branch key is its child's first key.
//! - A leaf element with flag 0x01 is a nested bucket: its value is `root u64, sequence u64`,
//!   and root 0 means an inline bucket whose one leaf page follows inside the value.
//! - The meta's root bucket holds the top-level buckets (for etcd `key`, `meta`, `lease`,
//!   `members`, `auth`, ...).
//! - The freelist page lists free page ids as u64s, `count` of them, or, when `count` is
//!   0xFFFF, as many as its first u64 says; freelist pgid all-ones means it is not stored.

mod bitset;
mod check;
mod db;
mod error;
mod fill;
mod find;
mod freelist;
mod meta;
mod order;
mod out;
mod page;
mod plan;
mod spill;
mod walk;
mod writer;

pub use db::Db;
pub use error::Error;
pub use writer::{Row, Rows, write_db};
