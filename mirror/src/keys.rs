//! Key arithmetic: the mirrored range, the anchored prefix rewrite, and the reserved
//! namespace where mirrors keep their checkpoints (never copied, pruned or compared).

/// Every mirror's own keys live under this destination prefix.
pub const RESERVED: &[u8] = b"__cairn_mirror__/";

/// The end of the range of keys starting with `prefix` (etcd's `--prefix` arithmetic).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// True for keys in the reserved namespace.
pub fn is_reserved(key: &[u8]) -> bool {
    key.starts_with(RESERVED)
}

/// Maps source keys under `source_prefix` to destination keys under `dest_prefix`: the
/// prefix is replaced at the start of the key only (etcdctl replaces the first occurrence
/// anywhere, and `--rev` with `--prefix` once dropped it entirely).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMap {
    pub source_prefix: Vec<u8>,
    pub dest_prefix: Vec<u8>,
}

impl KeyMap {
    /// `dest_prefix`: `None` keeps keys as they are, `Some(b"")` strips the source prefix
    /// (`--no-dest-prefix`), `Some(p)` replaces it with `p` (`--dest-prefix p`).
    pub fn new(source_prefix: &[u8], dest_prefix: Option<&[u8]>) -> Self {
        KeyMap {
            source_prefix: source_prefix.to_vec(),
            dest_prefix: dest_prefix.unwrap_or(source_prefix).to_vec(),
        }
    }

    /// `[start, end)` of the source range.
    pub fn source_range(&self) -> (Vec<u8>, Vec<u8>) {
        range_of(&self.source_prefix)
    }

    /// `[start, end)` of the destination range.
    pub fn dest_range(&self) -> (Vec<u8>, Vec<u8>) {
        range_of(&self.dest_prefix)
    }

    /// The destination key of a source key, or `None` for keys this mirror does not copy.
    pub fn to_dest(&self, source_key: &[u8]) -> Option<Vec<u8>> {
        let rest = source_key.strip_prefix(self.source_prefix.as_slice())?;
        if is_reserved(source_key) {
            return None;
        }
        let mut k = Vec::with_capacity(self.dest_prefix.len() + rest.len());
        k.extend_from_slice(&self.dest_prefix);
        k.extend_from_slice(rest);
        if is_reserved(&k) { None } else { Some(k) }
    }

    /// The source key of a destination key (the inverse of [`KeyMap::to_dest`]).
    pub fn to_source(&self, dest_key: &[u8]) -> Option<Vec<u8>> {
        let rest = dest_key.strip_prefix(self.dest_prefix.as_slice())?;
        let mut k = self.source_prefix.clone();
        k.extend_from_slice(rest);
        Some(k)
    }

    /// Where this mirror's checkpoint and owner record live at the destination: under the
    /// reserved namespace, named after the destination prefix (the thing two mirrors must
    /// not share), in hex so any bytes are safe.
    pub fn state_key(&self, what: &str) -> Vec<u8> {
        let mut k = RESERVED.to_vec();
        k.extend_from_slice(hex::encode(&self.dest_prefix).as_bytes());
        k.push(b'/');
        k.extend_from_slice(what.as_bytes());
        k
    }
}

/// The non-empty parts of `[from, to)` outside the reserved namespace, in order; `to` `\0`
/// means "to the end of the keyspace", as a range end does in etcd.
pub fn outside_reserved(from: &[u8], to: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let unbounded = to == [0];
    let above = |k: &[u8]| unbounded || to > k;
    let reserved_end = prefix_end(RESERVED);
    let mut out = Vec::new();
    let below_end: &[u8] = if above(RESERVED) { RESERVED } else { to };
    if from < below_end {
        out.push((from.to_vec(), below_end.to_vec()));
    }
    if above(&reserved_end) {
        let start = from.max(reserved_end.as_slice());
        if unbounded || start < to {
            out.push((start.to_vec(), to.to_vec()));
        }
    }
    out
}

fn range_of(prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    if prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        (prefix.to_vec(), prefix_end(prefix))
    }
}

/// A key for messages: UTF-8 as is, other bytes escaped (never a raw byte array).
pub fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_is_anchored() {
        let m = KeyMap::new(b"/a", Some(b"/b"));
        assert_eq!(m.to_dest(b"/a/x/a"), Some(b"/b/x/a".to_vec()));
        assert_eq!(m.to_dest(b"/x/a"), None);
        assert_eq!(m.to_source(b"/b/x/a"), Some(b"/a/x/a".to_vec()));
        let strip = KeyMap::new(b"/a/", Some(b""));
        assert_eq!(strip.to_dest(b"/a/k"), Some(b"k".to_vec()));
        let same = KeyMap::new(b"/a", None);
        assert_eq!(same.to_dest(b"/a1"), Some(b"/a1".to_vec()));
    }

    #[test]
    fn ranges_outside_the_reserved_namespace() {
        let v = |s: &str| s.as_bytes().to_vec();
        let pairs = |p: &[(&str, &str)]| -> Vec<(Vec<u8>, Vec<u8>)> {
            p.iter().map(|(a, b)| (v(a), v(b))).collect()
        };
        // wholly below or above it: unchanged; empty: nothing
        assert_eq!(outside_reserved(b"/a", b"/b"), pairs(&[("/a", "/b")]));
        assert_eq!(outside_reserved(b"a", b"b"), pairs(&[("a", "b")]));
        assert_eq!(outside_reserved(b"/b", b"/b"), pairs(&[]));
        assert_eq!(outside_reserved(b"/b", b"/a"), pairs(&[]));
        // around it: cut in two; starting inside it: what follows
        assert_eq!(
            outside_reserved(b"A", b"z"),
            pairs(&[("A", "__cairn_mirror__/"), ("__cairn_mirror__0", "z")])
        );
        assert_eq!(
            outside_reserved(b"__cairn_mirror__/x", b"z"),
            pairs(&[("__cairn_mirror__0", "z")])
        );
        assert_eq!(
            outside_reserved(b"__cairn_mirror__/a", b"__cairn_mirror__/b"),
            pairs(&[])
        );
        // to the end of the keyspace
        assert_eq!(
            outside_reserved(&[0], &[0]),
            vec![
                (vec![0], v("__cairn_mirror__/")),
                (v("__cairn_mirror__0"), vec![0])
            ]
        );
        assert_eq!(outside_reserved(b"zz", &[0]), vec![(v("zz"), vec![0])]);
    }

    #[test]
    fn reserved_keys_are_never_copied() {
        let all = KeyMap::new(b"", None);
        assert_eq!(all.to_dest(b"__cairn_mirror__/x/checkpoint"), None);
        assert_eq!(all.to_dest(b"k"), Some(b"k".to_vec()));
        let into = KeyMap::new(b"/a/", Some(b"__cairn_mirror__/"));
        assert_eq!(into.to_dest(b"/a/k"), None);
    }

    #[test]
    fn ranges() {
        assert_eq!(KeyMap::new(b"", None).source_range(), (vec![0], vec![0]));
        assert_eq!(
            KeyMap::new(b"/a", None).source_range(),
            (b"/a".to_vec(), b"/b".to_vec())
        );
        assert_eq!(prefix_end(&[0xff]), vec![0]);
        assert_eq!(
            KeyMap::new(b"/a", Some(b"/b")).state_key("checkpoint"),
            b"__cairn_mirror__/2f62/checkpoint".to_vec()
        );
    }
}
