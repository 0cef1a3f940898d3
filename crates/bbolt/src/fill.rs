//! The writer's page-filling rule, shared by its two passes so that both lay the same rows out
//! on the same pages.
//!
//! Elements go on the current page while `16 + n*16 + keys + values <= page_size` (at most
//! 65,535 of them, the header's `count` being a u16); the next one starts a new page. A page
//! holds at least `min` elements whatever their size, spanning overflow pages when they do not
//! fit: 1 for leaves (an entry too big for a page has one to itself), 2 for branches, so that
//! each branch level has at most half the pages of the one below and the levels end in one
//! root (bbolt's split keeps two keys a page for the same reason).

use crate::page::HEADER_LEN;

const HEADER: u64 = HEADER_LEN as u64;
const MAX_COUNT: u64 = u16::MAX as u64;

#[derive(Debug, Clone)]
pub(crate) struct Fill {
    page_size: u64,
    min: u64,
    /// Elements on the current page, 0 before the first.
    count: u64,
    /// Bytes of the current page: header, elements, keys and values.
    used: u64,
}

impl Fill {
    pub fn leaves(page_size: u32) -> Fill {
        Fill::new(page_size, 1)
    }

    pub fn branches(page_size: u32) -> Fill {
        Fill::new(page_size, 2)
    }

    fn new(page_size: u32, min: u64) -> Fill {
        Fill {
            page_size: u64::from(page_size),
            min,
            count: 0,
            used: HEADER,
        }
    }

    /// Places the next element, of `size` bytes (its 16-byte element, key and value): on the
    /// current page (`None`), or first on a new one (`Some(span)`, the span in pages of the
    /// page it completes, 0 when there was none).
    pub fn place(&mut self, size: u64) -> Option<u64> {
        let fits = self.used.saturating_add(size) <= self.page_size && self.count < MAX_COUNT;
        if self.count > 0 && (self.count < self.min || fits) {
            self.count += 1;
            self.used = self.used.saturating_add(size);
            return None;
        }
        let done = self.span();
        self.count = 1;
        self.used = HEADER.saturating_add(size);
        Some(done)
    }

    /// The current page's span in pages (1 + its overflow pages); 0 before the first element.
    pub fn span(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.used.div_ceil(self.page_size)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spans of the pages `sizes` fill, in order.
    fn spans(mut fill: Fill, sizes: &[u64]) -> Vec<u64> {
        let mut out = Vec::new();
        for &size in sizes {
            if let Some(done) = fill.place(size) {
                out.push(done);
            }
        }
        out.push(fill.span());
        out.retain(|&s| s > 0);
        out
    }

    #[test]
    fn a_page_fills_to_exactly_its_size() {
        // 16 + 4 * (16 + 240) = 1040 > 1024; 16 + 3 * 256 + 240 = 1024
        assert_eq!(spans(Fill::leaves(1024), &[256, 256, 256, 240]), [1]);
        assert_eq!(spans(Fill::leaves(1024), &[256, 256, 256, 241]), [1, 1]);
    }

    #[test]
    fn an_element_too_big_for_a_page_has_pages_to_itself() {
        // 16 + 2000 spans two 1024-byte pages; the elements around it start new pages
        assert_eq!(spans(Fill::leaves(1024), &[32, 2000, 32, 32]), [1, 2, 1]);
        assert_eq!(spans(Fill::leaves(1024), &[1008]), [1]);
        assert_eq!(spans(Fill::leaves(1024), &[1009]), [2]);
    }

    #[test]
    fn a_branch_page_takes_two_children_whatever_their_size() {
        // two 1016-byte children span two pages; a third, alone, needs two pages too
        assert_eq!(spans(Fill::branches(1024), &[1016, 1016, 1016]), [2, 2]);
        assert_eq!(spans(Fill::branches(1024), &[600, 600, 100]), [2, 1]);
        assert_eq!(spans(Fill::branches(1024), &[100, 100, 100]), [1]);
    }

    #[test]
    fn at_most_65535_elements_a_page() {
        let sizes = vec![16; 70_000];
        assert_eq!(spans(Fill::leaves(16 << 20), &sizes), [1, 1]);
    }

    #[test]
    fn nothing_placed_is_no_page() {
        assert_eq!(Fill::leaves(4096).span(), 0);
    }
}
