//! A set of page ids below a bound, one bit each: the walks' "seen" and "freed" sets. Its size
//! is the high-water mark, which the open checked against the file's length.

pub(crate) struct Bitset {
    words: Vec<u64>,
    len: u64,
}

impl Bitset {
    /// A set for the ids `0..len`.
    pub fn new(len: u64) -> Bitset {
        let words = usize::try_from(len.div_ceil(64)).unwrap_or(usize::MAX);
        Bitset {
            words: vec![0; words],
            len,
        }
    }

    /// Adds `id`; false if it was already there or is out of range.
    pub fn insert(&mut self, id: u64) -> bool {
        if id >= self.len {
            return false;
        }
        let Some(word) = self.word(id).and_then(|w| self.words.get_mut(w)) else {
            return false;
        };
        let bit = 1u64 << (id % 64);
        let new = *word & bit == 0;
        *word |= bit;
        new
    }

    pub fn contains(&self, id: u64) -> bool {
        id < self.len
            && self
                .word(id)
                .and_then(|w| self.words.get(w))
                .is_some_and(|word| word & (1u64 << (id % 64)) != 0)
    }

    fn word(&self, id: u64) -> Option<usize> {
        usize::try_from(id / 64).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::Bitset;

    #[test]
    fn insert_and_contains() {
        let mut s = Bitset::new(130);
        assert!(s.insert(0) && s.insert(64) && s.insert(129));
        assert!(!s.insert(64));
        assert!(s.contains(129) && !s.contains(128));
        assert!(!s.insert(130) && !s.contains(130) && !s.contains(u64::MAX));
    }
}
