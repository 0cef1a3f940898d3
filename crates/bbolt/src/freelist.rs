//! The freelist page: the ids of the pages no tree uses. `count` is in the page header, or,
//! when it is `0xFFFF`, in the first u64 of the data (bbolt's way past 64Ki ids).

use crate::error::{Error, corrupt};
use crate::page::{HEADER_LEN, Header, le_u64};

/// The header `count` that means "the real count is the first u64".
const COUNT_IN_DATA: u16 = 0xFFFF;

/// The page ids `page` (freelist page `pgid`'s whole span) lists, in stored order.
pub(crate) fn ids(page: &[u8], pgid: u64) -> Result<impl Iterator<Item = u64> + '_, Error> {
    let header =
        Header::parse(page).ok_or_else(|| corrupt(format!("freelist page {pgid}: cut short")))?;
    let (count, start) = if header.count == COUNT_IN_DATA {
        let count = le_u64(page, HEADER_LEN)
            .ok_or_else(|| corrupt(format!("freelist page {pgid}: no room for its page count")))?;
        (count, HEADER_LEN + 8)
    } else {
        (u64::from(header.count), HEADER_LEN)
    };
    let end = count
        .checked_mul(8)
        .and_then(|n| n.checked_add(start as u64))
        .and_then(|end| usize::try_from(end).ok())
        .filter(|&end| end <= page.len())
        .ok_or_else(|| {
            corrupt(format!(
                "freelist page {pgid}: {count} page ids do not fit in its {} bytes",
                page.len()
            ))
        })?;
    let ids = page.get(start..end).unwrap_or_default();
    Ok(ids
        .chunks_exact(8)
        .map(|c| le_u64(c, 0).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::FREELIST;

    fn page(count: u16, data: &[u64], size: usize) -> Vec<u8> {
        let mut b = vec![0u8; size];
        b[8..10].copy_from_slice(&FREELIST.to_le_bytes());
        b[10..12].copy_from_slice(&count.to_le_bytes());
        for (i, id) in data.iter().enumerate() {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&id.to_le_bytes());
        }
        b
    }

    #[test]
    fn count_in_header() {
        let b = page(3, &[5, 9, 4], 64);
        assert_eq!(ids(&b, 2).unwrap().collect::<Vec<_>>(), [5, 9, 4]);
    }

    #[test]
    fn count_in_data() {
        let b = page(0xFFFF, &[2, 7, 8], 64);
        assert_eq!(ids(&b, 2).unwrap().collect::<Vec<_>>(), [7, 8]);
    }

    #[test]
    fn counts_that_do_not_fit() {
        let b = page(7, &[], 64);
        let err = ids(&b, 3).err().unwrap().to_string();
        assert_eq!(
            err,
            "freelist page 3: 7 page ids do not fit in its 64 bytes"
        );
        let b = page(0xFFFF, &[u64::MAX], 64);
        assert!(ids(&b, 3).is_err());
        assert!(ids(&b[..20], 3).is_err());
    }
}
