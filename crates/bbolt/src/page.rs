//! A page: its 16-byte header and its branch or leaf elements, read out of a byte buffer with
//! every offset checked against the buffer's end.
//!
//! The buffer is either a whole page span read from the file (`(1 + overflow) * page_size`
//! bytes) or, for an inline bucket, the part of a leaf value after the bucket header.

use std::fmt;

use crate::error::{Error, corrupt};

/// `id u64, flags u16, count u16, overflow u32`.
pub(crate) const HEADER_LEN: usize = 16;
/// Both element kinds are 16 bytes: branch `pos u32, ksize u32, pgid u64`; leaf
/// `flags u32, pos u32, ksize u32, vsize u32`.
pub(crate) const ELEMENT_LEN: usize = 16;

pub(crate) const BRANCH: u16 = 0x01;
pub(crate) const LEAF: u16 = 0x02;
pub(crate) const META: u16 = 0x04;
pub(crate) const FREELIST: u16 = 0x10;

/// Leaf element flag: the value is a sub-bucket.
pub(crate) const BUCKET_ELEMENT: u32 = 0x01;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub id: u64,
    pub flags: u16,
    pub count: u16,
    pub overflow: u32,
}

impl Header {
    /// The header at the start of `bytes`; `None` if there are fewer than 16 bytes.
    pub fn parse(bytes: &[u8]) -> Option<Header> {
        Some(Header {
            id: le_u64(bytes, 0)?,
            flags: le_u16(bytes, 8)?,
            count: le_u16(bytes, 10)?,
            overflow: le_u32(bytes, 12)?,
        })
    }
}

/// A page's type for a message, "a branch page" or "a page of unknown type (flags 0x3)" (a
/// page has exactly one type flag).
pub(crate) fn kind(flags: u16) -> String {
    match flags {
        BRANCH => "a branch page".into(),
        LEAF => "a leaf page".into(),
        META => "a meta page".into(),
        FREELIST => "a freelist page".into(),
        f => format!("a page of unknown type (flags {f:#x})"),
    }
}

/// Where a page's bytes came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    Page(u64),
    /// An inline bucket, stored in element `index` of leaf page `host`.
    Inline {
        host: u64,
        index: usize,
    },
}

impl Loc {
    /// The file page holding these bytes.
    pub fn host(self) -> u64 {
        match self {
            Loc::Page(id) | Loc::Inline { host: id, .. } => id,
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Page(id) => write!(f, "page {id}"),
            Loc::Inline { host, index } => {
                write!(f, "the inline bucket in element {index} of page {host}")
            }
        }
    }
}

/// A page over checked bytes; a branch or leaf page's elements fit in them.
pub(crate) struct PageView<'a> {
    bytes: &'a [u8],
    header: Header,
    loc: Loc,
}

pub(crate) struct BranchElement<'a> {
    pub key: &'a [u8],
    pub child: u64,
}

pub(crate) struct LeafElement<'a> {
    pub flags: u32,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl<'a> PageView<'a> {
    /// Reads the header; for a branch or leaf page, the elements must fit in `bytes`.
    pub fn new(bytes: &'a [u8], loc: Loc) -> Result<PageView<'a>, Error> {
        let header = Header::parse(bytes).ok_or_else(|| {
            corrupt(format!(
                "{loc}: {} bytes, too short for a page header ({HEADER_LEN})",
                bytes.len()
            ))
        })?;
        if matches!(header.flags, BRANCH | LEAF) {
            let end = HEADER_LEN + usize::from(header.count) * ELEMENT_LEN;
            if end > bytes.len() {
                return Err(corrupt(format!(
                    "{loc}: {} elements of {ELEMENT_LEN} bytes do not fit in its {} bytes",
                    header.count,
                    bytes.len()
                )));
            }
        }
        Ok(PageView { bytes, header, loc })
    }

    pub fn flags(&self) -> u16 {
        self.header.flags
    }

    pub fn count(&self) -> usize {
        usize::from(self.header.count)
    }

    pub fn loc(&self) -> Loc {
        self.loc
    }

    /// Branch element `i` (< `count()`).
    pub fn branch(&self, i: usize) -> Result<BranchElement<'a>, Error> {
        let at = self.element(i)?;
        let pos = self.field_u32(at)?;
        let ksize = self.field_u32(at + 4)?;
        let child = le_u64(self.bytes, at + 8).ok_or_else(|| self.no_element(i))?;
        let key = self.span(i, "key", at as u64 + pos, ksize)?;
        Ok(BranchElement { key, child })
    }

    /// Leaf element `i` (< `count()`): the value follows the key.
    pub fn leaf(&self, i: usize) -> Result<LeafElement<'a>, Error> {
        let at = self.element(i)?;
        let flags = le_u32(self.bytes, at).ok_or_else(|| self.no_element(i))?;
        let pos = self.field_u32(at + 4)?;
        let ksize = self.field_u32(at + 8)?;
        let vsize = self.field_u32(at + 12)?;
        let key_start = at as u64 + pos;
        let key = self.span(i, "key", key_start, ksize)?;
        let value = self.span(i, "value", key_start + ksize, vsize)?;
        Ok(LeafElement { flags, key, value })
    }

    fn element(&self, i: usize) -> Result<usize, Error> {
        if i >= self.count() {
            return Err(self.no_element(i));
        }
        Ok(HEADER_LEN + i * ELEMENT_LEN)
    }

    fn field_u32(&self, at: usize) -> Result<u64, Error> {
        le_u32(self.bytes, at)
            .map(u64::from)
            .ok_or_else(|| corrupt(format!("{}: an element header is cut short", self.loc)))
    }

    fn no_element(&self, i: usize) -> Error {
        corrupt(format!(
            "{}: element {i} is past its element count",
            self.loc
        ))
    }

    /// `len` bytes at `start` (both below 2^34, so the sum cannot overflow).
    fn span(&self, i: usize, what: &str, start: u64, len: u64) -> Result<&'a [u8], Error> {
        let end = start + len;
        let range = usize::try_from(start).ok().zip(usize::try_from(end).ok());
        range
            .and_then(|(s, e)| self.bytes.get(s..e))
            .ok_or_else(|| {
                corrupt(format!(
                    "{}: element {i}'s {what} runs past the end of the page (offset {end} of {})",
                    self.loc,
                    self.bytes.len()
                ))
            })
    }
}

pub(crate) fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub(crate) fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub(crate) fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(flags: u16, count: u16, size: usize) -> Vec<u8> {
        let mut b = vec![0u8; size];
        b[8..10].copy_from_slice(&flags.to_le_bytes());
        b[10..12].copy_from_slice(&count.to_le_bytes());
        b
    }

    fn leaf_element(b: &mut [u8], i: usize, pos: u32, ksize: u32, vsize: u32) {
        let at = HEADER_LEN + i * ELEMENT_LEN;
        b[at + 4..at + 8].copy_from_slice(&pos.to_le_bytes());
        b[at + 8..at + 12].copy_from_slice(&ksize.to_le_bytes());
        b[at + 12..at + 16].copy_from_slice(&vsize.to_le_bytes());
    }

    #[test]
    fn reads_a_leaf_element() {
        let mut b = page(LEAF, 1, 64);
        leaf_element(&mut b, 0, 16, 3, 2);
        b[32..37].copy_from_slice(b"keyvv");
        let view = PageView::new(&b, Loc::Page(5)).unwrap();
        let e = view.leaf(0).unwrap();
        assert_eq!((e.key, e.value, e.flags), (&b"key"[..], &b"vv"[..], 0));
    }

    #[test]
    fn refuses_a_count_that_does_not_fit() {
        let b = page(LEAF, 4, 64);
        let err = PageView::new(&b, Loc::Page(7)).err().unwrap().to_string();
        assert_eq!(
            err,
            "page 7: 4 elements of 16 bytes do not fit in its 64 bytes"
        );
    }

    #[test]
    fn refuses_a_key_past_the_end() {
        let mut b = page(LEAF, 1, 64);
        leaf_element(&mut b, 0, 40, 20, 0);
        let view = PageView::new(&b, Loc::Page(12)).unwrap();
        let err = view.leaf(0).err().unwrap().to_string();
        assert_eq!(
            err,
            "page 12: element 0's key runs past the end of the page (offset 76 of 64)"
        );
        leaf_element(&mut b, 0, u32::MAX, u32::MAX, u32::MAX);
        let view = PageView::new(&b, Loc::Page(12)).unwrap();
        assert!(view.leaf(0).is_err());
    }

    #[test]
    fn refuses_a_value_past_the_end() {
        let mut b = page(LEAF, 1, 64);
        leaf_element(&mut b, 0, 16, 4, 100);
        let view = PageView::new(&b, Loc::Page(3)).unwrap();
        let err = view.leaf(0).err().unwrap().to_string();
        assert!(err.contains("element 0's value runs past the end"), "{err}");
    }

    #[test]
    fn short_buffers_are_errors() {
        assert!(Header::parse(&[0; 15]).is_none());
        assert!(PageView::new(&[0; 3], Loc::Page(1)).is_err());
        assert_eq!(le_u64(&[1; 4], usize::MAX - 2), None);
    }
}
