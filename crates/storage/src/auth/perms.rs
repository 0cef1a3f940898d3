//! Key permissions as intervals, as etcd's `auth/range_perm_cache.go` sees them: each grant
//! is an interval of keys, a user's grants are merged per kind (read, write), and a request is
//! allowed when the merged intervals cover it. Pure.
//!
//! etcd's encoding: a grant with an empty `range_end` is the one key `key`; `range_end` "\0"
//! means every key from `key` on; otherwise `[key, range_end)`. A request with an empty
//! `range_end` is a point (allowed when some grant contains it); "\0" is from `key` on.

/// An interval of keys; `end: None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
}

impl Interval {
    /// A grant's interval (etcd's `getMergedPerms`).
    pub fn of_grant(key: &[u8], range_end: &[u8]) -> Interval {
        match range_end {
            [] => Interval::point(key),
            [0] => Interval {
                start: key.to_vec(),
                end: None,
            },
            end => Interval {
                start: key.to_vec(),
                end: Some(end.to_vec()),
            },
        }
    }

    /// The one key `key`: `[key, key + "\0")`.
    fn point(key: &[u8]) -> Interval {
        let mut end = key.to_vec();
        end.push(0);
        Interval {
            start: key.to_vec(),
            end: Some(end),
        }
    }

    fn ends_before(&self, other_start: &[u8]) -> bool {
        matches!(&self.end, Some(e) if e.as_slice() < other_start)
    }
}

/// A user's grants of one kind, merged into disjoint intervals in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged(Vec<Interval>);

impl Merged {
    pub fn new(mut grants: Vec<Interval>) -> Merged {
        grants.sort_by(|a, b| a.start.cmp(&b.start));
        let mut out: Vec<Interval> = Vec::with_capacity(grants.len());
        for g in grants {
            match out.last_mut() {
                // touching or overlapping: [a, b) and [b, c) cover [a, c)
                Some(last) if !last.ends_before(&g.start) => {
                    last.end = match (last.end.take(), g.end) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    };
                }
                _ => out.push(g),
            }
        }
        Merged(out)
    }

    /// Whether the request `(key, range_end)` is covered (etcd's checkKeyPoint and
    /// checkKeyInterval).
    pub fn allows(&self, key: &[u8], range_end: &[u8]) -> bool {
        if range_end.is_empty() {
            return self.0.iter().any(|i| {
                i.start.as_slice() <= key && i.end.as_ref().is_none_or(|e| key < e.as_slice())
            });
        }
        let end = (range_end != [0]).then_some(range_end);
        // the one merged interval that holds the start must reach the end
        self.0.iter().any(|i| {
            i.start.as_slice() <= key
                && match (&i.end, end) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(ie), Some(re)) => re <= ie.as_slice(),
                }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(grants: &[(&str, &str)]) -> Merged {
        Merged::new(
            grants
                .iter()
                .map(|(k, e)| Interval::of_grant(k.as_bytes(), e.as_bytes()))
                .collect(),
        )
    }

    #[test]
    fn one_key_prefix_range_and_from_key() {
        let one = merged(&[("foo", "")]);
        assert!(one.allows(b"foo", b""));
        assert!(!one.allows(b"foo1", b""));
        assert!(
            one.allows(b"foo", b"foo\0"),
            "the range of exactly that key"
        );
        assert!(!one.allows(b"foo", b"fop"));

        let prefix = merged(&[("foo", "fop")]);
        for k in ["foo", "foo/bar", "fooz"] {
            assert!(prefix.allows(k.as_bytes(), b""), "{k}");
        }
        assert!(!prefix.allows(b"fop", b""));
        assert!(prefix.allows(b"foo/", b"foo0"));
        assert!(!prefix.allows(b"foo", b"fp"));
        assert!(
            !prefix.allows(b"foo", b"\0"),
            "from-key reaches past the prefix"
        );

        let from = Merged::new(vec![Interval::of_grant(b"m", b"\0")]);
        assert!(from.allows(b"z", b""));
        assert!(from.allows(b"m", b"\0"));
        assert!(!from.allows(b"a", b"b"));
    }

    #[test]
    fn grants_merge_across_roles() {
        // [a, c) and [c, e) together cover [b, d); a gap at [e, f) does not cover [d, g)
        let m = merged(&[("c", "e"), ("a", "c"), ("f", "h")]);
        assert!(m.allows(b"b", b"d"));
        assert!(m.allows(b"a", b"e"));
        assert!(!m.allows(b"d", b"g"));
        assert!(m.allows(b"f", b"h"));
        let everything = Merged::new(vec![Interval::of_grant(b"\0", b"\0")]);
        assert!(everything.allows(b"\0", b"\0"));
        assert!(everything.allows(b"anything", b""));
        assert!(!Merged::default().allows(b"k", b""));
    }
}
