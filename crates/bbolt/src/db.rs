//! The database file: opening it (choosing a meta page), reading a page by id, and the
//! public calls.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::check;
use crate::error::{Error, corrupt};
use crate::find;
use crate::meta::{self, META_END, META_LEN, Meta};
use crate::page::{HEADER_LEN, Header};
use crate::walk::{Entry, OwnedRoot, Ref, Root, Value, Walker, plain_at_top};

/// An open bbolt database, read-only. Pages are read with `pread` when visited; nothing is
/// cached and nothing is mapped, so the file may be of any size.
#[derive(Debug)]
pub struct Db {
    file: File,
    path: PathBuf,
    /// Bytes of the file that belong to the database.
    len: u64,
    meta: Meta,
}

impl Db {
    /// Opens `path` read-only, considering only its first `len` bytes (an etcdctl snapshot
    /// file ends with a 32-byte sha256 that is not part of the database).
    ///
    /// The meta page chosen must fit: its high-water mark inside `len`, its root bucket and
    /// freelist among the data pages. The pages themselves are read only when visited.
    pub fn open(path: &Path, len: u64) -> Result<Db, Error> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if len > size {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the file holds {size} bytes, fewer than the {len} to read"),
            )));
        }
        let mut read = |offset: u64| -> Result<Option<[u8; META_LEN]>, Error> {
            if offset.checked_add(META_END).is_none_or(|end| end > len) {
                return Ok(None);
            }
            let mut m = [0u8; META_LEN];
            file.read_exact_at(&mut m, offset + HEADER_LEN as u64)
                .map_err(io)?;
            Ok(Some(m))
        };
        let chosen = meta::choose(&mut read)?;
        meta::check_fits(&chosen, len)?;
        Ok(Db {
            file,
            path: path.to_path_buf(),
            len,
            meta: chosen.meta,
        })
    }

    pub fn page_size(&self) -> u32 {
        self.meta.page_size
    }

    pub fn txid(&self) -> u64 {
        self.meta.txid
    }

    /// bbolt's `tx.Size()`: the high-water page id times the page size.
    pub fn size(&self) -> u64 {
        // checked against the file's length at open
        self.meta.hwm.saturating_mul(u64::from(self.meta.page_size))
    }

    /// Names of the top-level buckets, in key order.
    pub fn bucket_names(&self) -> Result<Vec<Vec<u8>>, Error> {
        let mut names = Vec::new();
        let root = Root::Page(self.meta.root, Ref::RootBucket);
        Walker::new(self).bucket(&root, 0, &mut |_, e: Entry<'_>, _| match e.value {
            Value::Bucket(_) => {
                names.push(e.key.to_vec());
                Ok::<(), Error>(())
            }
            Value::Plain(_) => Err(plain_at_top(e.key)),
        })?;
        Ok(names)
    }

    /// Calls `f(key, value)` for every entry of the bucket at `path` (top-level name, then
    /// nested bucket names), in key order; a nested bucket's own entry comes with `None`.
    /// Ok(false) when there is no such bucket. An empty `path` is the root bucket, whose
    /// entries are the top-level buckets.
    ///
    /// Keys are checked to ascend strictly as they come, so `f` may have seen some entries
    /// of a bucket that then proves corrupt.
    #[allow(clippy::type_complexity)] // the signature the workspace calls, spelled out
    pub fn for_each<E: From<Error>>(
        &self,
        path: &[&[u8]],
        f: &mut dyn FnMut(&[u8], Option<&[u8]>) -> Result<(), E>,
    ) -> Result<bool, E> {
        let mut root = OwnedRoot::Page(self.meta.root, Ref::RootBucket);
        let mut depth = 0;
        for name in path {
            match find::bucket(self, &root, name, &mut depth)? {
                Some(child) => root = child,
                None => return Ok(false),
            }
            depth += 1;
        }
        Walker::new(self).bucket(&root.borrow(), depth, &mut |_, e: Entry<'_>, _| {
            f(e.key, e.value.plain())
        })?;
        Ok(true)
    }

    /// The consistency check (what bbolt's `tx.Check` catches): walks every page reachable
    /// from the root and the freelist once; every page id below the high-water mark and
    /// inside the file, no page reached twice (no cycles, no sharing), a freed page never
    /// reachable, page flags as expected, keys strictly ascending in every bucket and branch
    /// keys equal to the first key of their child; with a stored freelist, no page leaked.
    /// Returns the first problem found.
    pub fn check(&self) -> Result<(), Error> {
        check::run(self)
    }

    pub(crate) fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Page `pgid`'s whole span (header and overflow pages), pointed at by `from`: a data page
    /// below the high-water mark, its overflow too, whose header names it.
    pub(crate) fn read_page(&self, pgid: u64, from: Ref) -> Result<(Vec<u8>, Header), Error> {
        let hwm = self.meta.hwm;
        if pgid < 2 {
            return Err(corrupt(format!(
                "page {pgid} is a meta page, yet {from} points to it"
            )));
        }
        if pgid >= hwm {
            return Err(corrupt(format!(
                "page {pgid} is past the high-water mark {hwm} ({from} points to it)"
            )));
        }
        let page_size = u64::from(self.meta.page_size);
        // below the high-water mark, which open checked against the length
        let offset = pgid * page_size;
        let mut buf = vec![0u8; self.meta.page_size as usize];
        self.read_at(&mut buf, offset)?;
        let Some(header) = Header::parse(&buf) else {
            return Err(corrupt(format!("page {pgid}: shorter than a page header")));
        };
        if header.id != pgid {
            return Err(corrupt(format!(
                "page {pgid}: its header says it is page {} ({from} points to it)",
                header.id
            )));
        }
        if header.overflow > 0 {
            let pages = u64::from(header.overflow) + 1;
            if pgid + pages > hwm {
                return Err(corrupt(format!(
                    "page {pgid}: its {} overflow pages run past the high-water mark {hwm}",
                    header.overflow
                )));
            }
            let span = usize::try_from(pages * page_size)
                .map_err(|_| corrupt(format!("page {pgid}: its span does not fit in memory")))?;
            buf.resize(span, 0);
            let rest = buf
                .get_mut(self.meta.page_size as usize..)
                .unwrap_or_default();
            self.read_at(rest, offset + page_size)?;
        }
        Ok((buf, header))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<(), Error> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.len) {
            return Err(corrupt(format!(
                "bytes {offset}.. lie past the end of the database ({} bytes)",
                self.len
            )));
        }
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| Error::Io {
                path: self.path.clone(),
                source,
            })
    }
}
