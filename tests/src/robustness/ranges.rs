//! Ranges over the whole prefix, linearizable or serializable, checked against the history
//! the watches delivered: a range answered at revision R holds exactly what the keys held at
//! R (a consistent snapshot), values and mod_revisions alike. A serializable range may be
//! old (a member behind), never a mix of revisions or a state that never was.

use std::collections::BTreeMap;

use super::history::RangeSeen;
use super::watches::Seen;

/// What is wrong with `ranges` against the history `events` (in revision order).
pub fn check(ranges: &[RangeSeen], events: &[Seen]) -> Vec<String> {
    let mut ranges: Vec<&RangeSeen> = ranges.iter().collect();
    ranges.sort_by_key(|r| r.revision);
    let last = events.last().map_or(1, |e| e.0);
    let mut state: BTreeMap<&[u8], (&[u8], i64)> = BTreeMap::new();
    let mut next = 0;
    let mut out = Vec::new();
    for r in ranges {
        if r.revision > last {
            out.push(format!(
                "a {} range answered at revision {}, past the history's last {last}",
                kind(r),
                r.revision
            ));
            continue;
        }
        while next < events.len() && events[next].0 <= r.revision {
            let (rev, key, put, value, _) = &events[next];
            if *put {
                state.insert(key, (value, *rev));
            } else {
                state.remove(key.as_slice());
            }
            next += 1;
        }
        let want: Vec<(&[u8], &[u8], i64)> = state.iter().map(|(k, v)| (*k, v.0, v.1)).collect();
        let got: Vec<(&[u8], &[u8], i64)> = r
            .kvs
            .iter()
            .map(|(k, v, m)| (k.as_slice(), v.as_slice(), *m))
            .collect();
        if got != want {
            out.push(format!(
                "a {} range at revision {} returned {}, the history then held {}",
                kind(r),
                r.revision,
                show(&got),
                show(&want)
            ));
        }
    }
    out
}

fn kind(r: &RangeSeen) -> &'static str {
    if r.serializable {
        "serializable"
    } else {
        "linearizable"
    }
}

fn show(kvs: &[(&[u8], &[u8], i64)]) -> String {
    let items: Vec<String> = kvs
        .iter()
        .map(|(k, v, m)| {
            format!(
                "{}={}@{m}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v)
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(rev: i64, key: &str, value: &str) -> Seen {
        (rev, key.into(), true, value.into(), None)
    }

    fn range(revision: i64, kvs: &[(&str, &str, i64)]) -> RangeSeen {
        RangeSeen {
            serializable: true,
            returned: 0,
            revision,
            kvs: kvs
                .iter()
                .map(|(k, v, m)| (k.as_bytes().to_vec(), v.as_bytes().to_vec(), *m))
                .collect(),
        }
    }

    #[test]
    fn a_range_must_be_the_state_at_its_revision() {
        let events = vec![
            put(2, "a", "1"),
            put(3, "b", "1"),
            (4, b"a".to_vec(), false, Vec::new(), None),
        ];
        let fine = [
            range(2, &[("a", "1", 2)]),
            range(3, &[("a", "1", 2), ("b", "1", 3)]),
            range(4, &[("b", "1", 3)]),
        ];
        assert!(check(&fine, &events).is_empty());
        // b's put without a's delete: a state that never was
        let mixed = [range(3, &[("b", "1", 3)])];
        assert_eq!(check(&mixed, &events).len(), 1);
        assert_eq!(check(&[range(5, &[])], &events).len(), 1);
    }
}
