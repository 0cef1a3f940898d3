//! The writer's output, in whole pages: a page is built in one buffer (header, elements, keys
//! and values), zero-filled to its span and written with one `write_all`. The next page's id
//! is the number of pages written so far.

use std::io;

use crate::page::{ELEMENT_LEN, HEADER_LEN, LEAF};

const HEADER: u64 = HEADER_LEN as u64;
const ELEMENT: u64 = ELEMENT_LEN as u64;

pub(crate) struct Out<'w> {
    inner: &'w mut dyn io::Write,
    page_size: u32,
    written: u64,
    /// The page being built.
    page: Vec<u8>,
}

impl<'w> Out<'w> {
    pub fn new(inner: &'w mut dyn io::Write, page_size: u32) -> Out<'w> {
        Out {
            inner,
            page_size,
            written: 0,
            page: Vec::with_capacity(page_size as usize),
        }
    }

    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// The id of the next page.
    pub fn pgid(&self) -> u64 {
        self.written / u64::from(self.page_size)
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    /// Starts the next page: its header `id, flags, count, overflow`, for a page of `span`
    /// pages.
    pub fn begin(&mut self, flags: u16, count: u64, span: u64) -> io::Result<()> {
        let id = self.pgid();
        let count = narrow::<u16>(count, "element count")?;
        let overflow = narrow::<u32>(span.saturating_sub(1), "overflow page count")?;
        self.page.clear();
        self.page.extend_from_slice(&id.to_le_bytes());
        self.page.extend_from_slice(&flags.to_le_bytes());
        self.page.extend_from_slice(&count.to_le_bytes());
        self.page.extend_from_slice(&overflow.to_le_bytes());
        Ok(())
    }

    /// A leaf element: `flags u32, pos u32, ksize u32, vsize u32`.
    pub fn leaf_element(
        &mut self,
        flags: u32,
        pos: u64,
        key: usize,
        value: usize,
    ) -> io::Result<()> {
        for field in [u64::from(flags), pos, key as u64, value as u64] {
            let field = narrow::<u32>(field, "leaf element field")?;
            self.page.extend_from_slice(&field.to_le_bytes());
        }
        Ok(())
    }

    /// A branch element: `pos u32, ksize u32, pgid u64`.
    pub fn branch_element(&mut self, pos: u64, key: usize, pgid: u64) -> io::Result<()> {
        let pos = narrow::<u32>(pos, "branch element pos")?;
        let key = narrow::<u32>(key as u64, "branch key size")?;
        self.page.extend_from_slice(&pos.to_le_bytes());
        self.page.extend_from_slice(&key.to_le_bytes());
        self.page.extend_from_slice(&pgid.to_le_bytes());
        Ok(())
    }

    pub fn put(&mut self, bytes: &[u8]) {
        self.page.extend_from_slice(bytes);
    }

    /// Writes the page, zero-filled to a whole number of pages.
    pub fn end(&mut self) -> io::Result<()> {
        let page_size = u64::from(self.page_size);
        let span = (self.page.len() as u64).div_ceil(page_size);
        self.page.resize((span * page_size) as usize, 0);
        self.inner.write_all(&self.page)?;
        self.written += self.page.len() as u64;
        Ok(())
    }

    /// A leaf page of one entry too big for a page, with its overflow pages: written from the
    /// entry itself, so that its value (up to 2 GiB) is never copied.
    pub fn alone(&mut self, flags: u32, key: &[u8], value: &[u8]) -> io::Result<()> {
        let size = HEADER + ELEMENT + (key.len() + value.len()) as u64;
        let page_size = u64::from(self.page_size);
        let span = size.div_ceil(page_size);
        self.begin(LEAF, 1, span)?;
        self.leaf_element(flags, ELEMENT, key.len(), value.len())?;
        self.page.extend_from_slice(key);
        self.inner.write_all(&self.page)?;
        self.inner.write_all(value)?;
        let zeros = [0u8; 4096];
        let mut pad = span * page_size - size;
        while pad > 0 {
            let n = pad.min(zeros.len() as u64);
            self.inner
                .write_all(zeros.get(..n as usize).unwrap_or_default())?;
            pad -= n;
        }
        self.written += span * page_size;
        Ok(())
    }
}

/// `v` as a narrower integer; the layout keeps every field in range, so failing is a bug.
fn narrow<T: TryFrom<u64>>(v: u64, what: &str) -> io::Result<T> {
    T::try_from(v)
        .map_err(|_| io::Error::other(format!("bbolt writer: {what} {v} out of range (a bug)")))
}
