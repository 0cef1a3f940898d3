//! The two meta pages: which copy to trust, and the page size.
//!
//! bbolt writes meta page `txid % 2` at each commit, so one of the two is always whole; a
//! reader takes the valid one (magic, version, checksum) with the higher txid. The page size
//! is in the meta itself: when meta page 0 is damaged, meta page 1's offset is unknown and the
//! likely page sizes are tried in turn, as bbolt's `getPageSizeFromSecondMeta` does.

use std::fmt;

use crate::error::{Error, corrupt};
use crate::page::{HEADER_LEN, le_u32, le_u64};

pub(crate) const MAGIC: u32 = 0xED0C_DAED;
pub(crate) const VERSION: u32 = 2;
/// `meta.freelist` when the freelist is not stored (bbolt's `NoFreelistSync`, as etcd uses).
pub(crate) const NO_FREELIST: u64 = u64::MAX;
/// The meta struct: 56 checksummed bytes, then the checksum.
pub(crate) const META_LEN: usize = 64;
const CHECKSUMMED: usize = 56;
/// Bytes from a meta page's start to its meta struct's end.
pub(crate) const META_END: u64 = (HEADER_LEN + META_LEN) as u64;
/// Page sizes believed: bbolt takes the OS page size (4 KiB to 64 KiB in practice) or the
/// one its caller gives; it probes up to 16 MiB.
pub(crate) const MIN_PAGE_SIZE: u32 = 512;
pub(crate) const MAX_PAGE_SIZE: u32 = 16 << 20;
/// Where meta page 1 is looked for when meta page 0 does not say: the common size first.
const PROBE_FIRST: u32 = 4096;

/// The fields of a meta page this reader uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub page_size: u32,
    /// The root bucket's root page.
    pub root: u64,
    pub freelist: u64,
    /// The high-water mark: the first page id never allocated.
    pub hwm: u64,
    pub txid: u64,
}

/// Why a meta page is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    Short,
    Magic,
    Version(u32),
    Checksum,
    PageSize(u32),
    Misplaced { page_size: u32, offset: u64 },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Short => write!(f, "cut short"),
            Invalid::Magic => write!(f, "bad magic number"),
            Invalid::Version(v) => write!(f, "format version {v} (this reader knows {VERSION})"),
            Invalid::Checksum => write!(f, "bad checksum"),
            Invalid::PageSize(p) => write!(f, "implausible page size {p}"),
            Invalid::Misplaced { page_size, offset } => {
                write!(
                    f,
                    "page size {page_size} does not match its place at offset {offset}"
                )
            }
        }
    }
}

/// The meta chosen, and which page (0 or 1) it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chosen {
    pub meta: Meta,
    pub page: u8,
}

/// Reads the meta struct of the page at a byte offset; `None` when the struct would end past
/// the database.
pub(crate) type ReadMeta<'r> = dyn FnMut(u64) -> Result<Option<[u8; META_LEN]>, Error> + 'r;

/// Picks the meta to trust, bbolt's way; `NotBbolt` when neither page is valid.
pub(crate) fn choose(read: &mut ReadMeta<'_>) -> Result<Chosen, Error> {
    let raw0 = read(0)?;
    let meta0 = raw0.as_ref().map_or(Err(Invalid::Short), parse);
    let meta1 = match meta0 {
        Ok(m) => meta_at(read, m.page_size)?,
        Err(_) => probe_meta1(read, raw0.as_ref())?,
    };
    match (meta0, meta1) {
        (Ok(a), Ok(b)) if b.txid > a.txid => Ok(Chosen { meta: b, page: 1 }),
        (Ok(a), _) => Ok(Chosen { meta: a, page: 0 }),
        (Err(_), Ok(b)) => Ok(Chosen { meta: b, page: 1 }),
        (Err(a), Err(b)) => {
            let which = if a == b {
                format!("meta pages 0 and 1: {a}")
            } else {
                format!("meta page 0: {a}; meta page 1: {b}")
            };
            Err(Error::NotBbolt(format!(
                "{which}; this is not a bbolt database, or both its meta pages are damaged"
            )))
        }
    }
}

/// The checks of the chosen meta against the file: bbolt trusts them, a reader cannot.
pub(crate) fn check_fits(chosen: &Chosen, len: u64) -> Result<(), Error> {
    let Chosen { meta: m, page } = *chosen;
    if m.hwm < 2 {
        return Err(corrupt(format!(
            "meta page {page}: high-water mark {} is below 2 (the two meta pages)",
            m.hwm
        )));
    }
    let bytes = m.hwm.checked_mul(u64::from(m.page_size));
    if bytes.is_none_or(|b| b > len) {
        let bytes = bytes.map_or("more than 2^64".into(), |b| b.to_string());
        return Err(corrupt(format!(
            "the database is truncated: meta page {page} counts {} pages of {} bytes ({bytes} bytes) but the file holds {len}",
            m.hwm, m.page_size
        )));
    }
    if m.root < 2 || m.root >= m.hwm {
        return Err(corrupt(format!(
            "meta page {page}: the root bucket's page {} is outside the data pages 2..{}",
            m.root, m.hwm
        )));
    }
    if m.freelist != NO_FREELIST && (m.freelist < 2 || m.freelist >= m.hwm) {
        return Err(corrupt(format!(
            "meta page {page}: the freelist page {} is outside the data pages 2..{}",
            m.freelist, m.hwm
        )));
    }
    Ok(())
}

/// Decodes and validates a meta struct: magic, version, checksum (bbolt's order), then a
/// plausible page size.
pub(crate) fn parse(m: &[u8; META_LEN]) -> Result<Meta, Invalid> {
    let u32_at = |at| le_u32(m, at).unwrap_or_default();
    let u64_at = |at| le_u64(m, at).unwrap_or_default();
    if u32_at(0) != MAGIC {
        return Err(Invalid::Magic);
    }
    if u32_at(4) != VERSION {
        return Err(Invalid::Version(u32_at(4)));
    }
    if u64_at(CHECKSUMMED) != fnv1a64(&m[..CHECKSUMMED]) {
        return Err(Invalid::Checksum);
    }
    let page_size = u32_at(8);
    if !plausible(page_size) {
        return Err(Invalid::PageSize(page_size));
    }
    Ok(Meta {
        page_size,
        root: u64_at(16),
        freelist: u64_at(32),
        hwm: u64_at(40),
        txid: u64_at(48),
    })
}

/// The meta struct holding `m` (flags 0, root bucket sequence 0) with its checksum: what
/// bbolt's `meta.write` puts at byte 16 of a meta page.
pub(crate) fn encode(m: &Meta) -> [u8; META_LEN] {
    let mut out = [0u8; META_LEN];
    let fields: [&[u8]; 9] = [
        &MAGIC.to_le_bytes(),
        &VERSION.to_le_bytes(),
        &m.page_size.to_le_bytes(),
        &0u32.to_le_bytes(),
        &m.root.to_le_bytes(),
        &0u64.to_le_bytes(),
        &m.freelist.to_le_bytes(),
        &m.hwm.to_le_bytes(),
        &m.txid.to_le_bytes(),
    ];
    let mut at = 0;
    for field in fields {
        if let Some(slot) = out.get_mut(at..at + field.len()) {
            slot.copy_from_slice(field);
        }
        at += field.len();
    }
    let sum = fnv1a64(&out[..CHECKSUMMED]);
    out[CHECKSUMMED..].copy_from_slice(&sum.to_le_bytes());
    out
}

/// Meta page 1 when meta page 0 gave no page size: meta 0's own claim if it has bbolt's magic,
/// then 4 KiB, then every power of two bbolt allows.
fn probe_meta1(
    read: &mut ReadMeta<'_>,
    raw0: Option<&[u8; META_LEN]>,
) -> Result<Result<Meta, Invalid>, Error> {
    let claimed = raw0
        .filter(|m| le_u32(&m[..], 0) == Some(MAGIC))
        .and_then(|m| le_u32(&m[..], 8))
        .filter(|&p| plausible(p));
    let mut sizes: Vec<u32> = claimed.into_iter().chain([PROBE_FIRST]).collect();
    let mut p = MIN_PAGE_SIZE;
    while p <= MAX_PAGE_SIZE {
        if !sizes.contains(&p) {
            sizes.push(p);
        }
        p *= 2;
    }
    let mut first = None;
    for size in sizes {
        match meta_at(read, size)? {
            Ok(m) => return Ok(Ok(m)),
            Err(Invalid::Short) => {}
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Ok(Err(first.unwrap_or(Invalid::Short)))
}

/// The meta page 1 of a file of `page_size` pages: valid, and of that page size.
fn meta_at(read: &mut ReadMeta<'_>, page_size: u32) -> Result<Result<Meta, Invalid>, Error> {
    let offset = u64::from(page_size);
    let Some(raw) = read(offset)? else {
        return Ok(Err(Invalid::Short));
    };
    Ok(parse(&raw).and_then(|m| {
        if m.page_size == page_size {
            Ok(m)
        } else {
            Err(Invalid::Misplaced {
                page_size: m.page_size,
                offset,
            })
        }
    }))
}

pub(crate) fn plausible(page_size: u32) -> bool {
    page_size.is_power_of_two() && (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size)
}

/// FNV-1a, 64-bit: the meta checksum (Go's `hash/fnv` `New64a`).
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(page_size: u32, txid: u64) -> [u8; META_LEN] {
        let mut m = [0u8; META_LEN];
        m[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        m[4..8].copy_from_slice(&VERSION.to_le_bytes());
        m[8..12].copy_from_slice(&page_size.to_le_bytes());
        m[16..24].copy_from_slice(&3u64.to_le_bytes());
        m[32..40].copy_from_slice(&NO_FREELIST.to_le_bytes());
        m[40..48].copy_from_slice(&4u64.to_le_bytes());
        m[48..56].copy_from_slice(&txid.to_le_bytes());
        let sum = fnv1a64(&m[..CHECKSUMMED]);
        m[56..64].copy_from_slice(&sum.to_le_bytes());
        m
    }

    /// A file image of `len` bytes with the given meta structs at the given offsets.
    fn reader(
        len: u64,
        metas: Vec<(u64, [u8; META_LEN])>,
    ) -> impl FnMut(u64) -> Result<Option<[u8; META_LEN]>, Error> {
        move |offset| {
            if offset + META_END > len {
                return Ok(None);
            }
            Ok(Some(
                metas
                    .iter()
                    .find(|(o, _)| *o == offset)
                    .map_or([0; META_LEN], |(_, m)| *m),
            ))
        }
    }

    #[test]
    fn fnv1a64_matches_go() {
        // hash/fnv New64a: the empty string and "a"
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn encode_is_what_parse_reads() {
        let m = Meta {
            page_size: 4096,
            root: 9,
            freelist: 2,
            hwm: 10,
            txid: 3,
        };
        assert_eq!(parse(&encode(&m)), Ok(m));
        let mut want = meta(4096, 7);
        want[16..24].copy_from_slice(&9u64.to_le_bytes());
        want[40..48].copy_from_slice(&10u64.to_le_bytes());
        let sum = fnv1a64(&want[..CHECKSUMMED]);
        want[56..64].copy_from_slice(&sum.to_le_bytes());
        let m = Meta {
            freelist: NO_FREELIST,
            txid: 7,
            ..m
        };
        assert_eq!(encode(&m), want);
    }

    #[test]
    fn the_higher_txid_wins() {
        let mut read = reader(16384, vec![(0, meta(4096, 7)), (4096, meta(4096, 8))]);
        assert_eq!(choose(&mut read).unwrap().page, 1);
        let mut read = reader(16384, vec![(0, meta(4096, 9)), (4096, meta(4096, 8))]);
        let chosen = choose(&mut read).unwrap();
        assert_eq!((chosen.page, chosen.meta.txid), (0, 9));
    }

    #[test]
    fn meta1_is_found_when_meta0_is_damaged() {
        let mut bad = meta(16384, 9);
        bad[20] ^= 1;
        let mut read = reader(65536, vec![(0, bad), (16384, meta(16384, 8))]);
        let chosen = choose(&mut read).unwrap();
        assert_eq!((chosen.page, chosen.meta.page_size), (1, 16384));
        // meta 0's page size field damaged too: found by probing
        bad[8] = 0xff;
        let mut read = reader(65536, vec![(0, bad), (16384, meta(16384, 8))]);
        assert_eq!(choose(&mut read).unwrap().meta.page_size, 16384);
    }

    #[test]
    fn meta1_must_sit_at_its_page_size() {
        let mut read = reader(65536, vec![(0, meta(4096, 1)), (4096, meta(8192, 5))]);
        assert_eq!(choose(&mut read).unwrap().page, 0);
    }

    #[test]
    fn both_invalid_is_not_bbolt() {
        let mut a = meta(4096, 1);
        a[60] ^= 1;
        let mut read = reader(16384, vec![(0, a), (4096, a)]);
        let err = choose(&mut read).err().unwrap();
        assert!(matches!(err, Error::NotBbolt(_)));
        assert!(
            err.to_string()
                .starts_with("meta pages 0 and 1: bad checksum"),
            "{err}"
        );
        let mut read = reader(10, vec![]);
        assert!(err_text(&mut read).starts_with("meta pages 0 and 1: cut short"));
        let mut read = reader(100_000, vec![]);
        assert!(err_text(&mut read).starts_with("meta pages 0 and 1: bad magic number"));
    }

    fn err_text(read: &mut ReadMeta<'_>) -> String {
        choose(read).err().unwrap().to_string()
    }

    #[test]
    fn the_chosen_meta_must_fit_the_file() {
        let m = parse(&meta(4096, 1)).unwrap();
        let chosen = Chosen { meta: m, page: 0 };
        assert!(check_fits(&chosen, 4 * 4096).is_ok());
        let err = check_fits(&chosen, 3 * 4096).err().unwrap().to_string();
        assert!(err.starts_with("the database is truncated"), "{err}");
        let huge = Chosen {
            meta: Meta { hwm: u64::MAX, ..m },
            page: 0,
        };
        assert!(check_fits(&huge, u64::MAX).is_err());
        let root = Chosen {
            meta: Meta { root: 4, ..m },
            page: 1,
        };
        assert!(check_fits(&root, 1 << 20).is_err());
    }
}
