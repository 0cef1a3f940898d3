//! Which files of a backup retention removes (`backup run --keep-fulls N --keep-for D`).
//!
//! - `--keep-for D`: every moment of the last D stays restorable: each chain (a full
//!   snapshot and its segments) that covers any of that time is kept whole.
//! - `--keep-fulls N`: older chains are thinned to their full snapshot (they restore to that
//!   revision, no longer to any revision after it), and only the newest N full snapshots in
//!   all are kept. With `--keep-fulls` alone, the newest N chains are kept whole.
//! - Neither: nothing is removed (the default: a backup that deletes data unasked is not one).
//!
//! The newest chain is always kept whole; a segment goes when no chain kept whole uses it. Segments are removed before the full snapshot they continue, so a crash
//! in between leaves a snapshot without its tail, never a tail without a snapshot.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::progress::{Progress, Reporter};
use crate::target::Target;
use crate::timeline::Timeline;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub keep_fulls: Option<usize>,
    pub keep_for: Option<Duration>,
}

impl Retention {
    pub fn is_set(&self) -> bool {
        self.keep_fulls.is_some() || self.keep_for.is_some()
    }
}

/// The files to remove, segments first.
pub fn doomed(t: &Timeline, policy: Retention, now: SystemTime) -> Vec<PathBuf> {
    if !policy.is_set() || t.fulls.is_empty() {
        return Vec::new();
    }
    let n = t.fulls.len();
    // chain i covers from its snapshot until the next one was taken (the newest: until now)
    let covers_window = |i: usize| match policy.keep_for {
        None => false,
        Some(d) => match t.fulls.get(i + 1) {
            None => true,
            Some(next) => next.modified.is_none_or(|m| m + d >= now),
        },
    };
    let among_newest = |i: usize| policy.keep_fulls.is_some_and(|k| i + k >= n);
    let whole: Vec<bool> = (0..n)
        .map(|i| i + 1 == n || covers_window(i) || (policy.keep_for.is_none() && among_newest(i)))
        .collect();
    let keep_full: Vec<bool> = (0..n).map(|i| whole[i] || among_newest(i)).collect();
    let mut out = Vec::new();
    // a segment stays while a chain kept whole uses it (one that goes on across a snapshot
    // belongs to the chains on both sides)
    let chains = t.chains();
    let kept: std::collections::HashSet<&PathBuf> = chains
        .iter()
        .enumerate()
        .filter(|(i, _)| whole[*i])
        .flat_map(|(_, c)| c.segments.iter().map(|s| &s.path))
        .collect();
    for s in &t.segments {
        if !kept.contains(&s.path) {
            out.push(s.path.clone());
        }
    }
    for (i, f) in t.fulls.iter().enumerate() {
        if !keep_full[i] {
            out.push(f.path.clone());
        }
    }
    out
}

/// Removes what `policy` lets go from `target`. A failure is reported and left for the next
/// full snapshot's turn: retention never stops a backup.
pub async fn apply(target: &Target, policy: Retention, report: &Reporter) {
    if !policy.is_set() {
        return;
    }
    let entries = match target.entries().await {
        Ok(e) => e,
        Err(e) => {
            report(Progress::Retrying {
                why: format!("retention could not list the backup: {e}"),
            });
            return;
        }
    };
    for path in doomed(&Timeline::from_entries(entries), policy, SystemTime::now()) {
        match target.delete(&path).await {
            Ok(()) => report(Progress::Removed {
                name: target.locate(&path),
            }),
            Err(e) => {
                report(Progress::Retrying {
                    why: format!("retention: {e}"),
                });
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Entry;
    use crate::{segment, timeline};

    const DAY: Duration = Duration::from_secs(86_400);

    /// Five daily chains: full snapshots at revisions 100, 200, .. 500, taken 4, 3, 2, 1
    /// and 0 days and 6 hours ago, each followed by two segments.
    fn daily(now: SystemTime) -> Timeline {
        let mut entries = Vec::new();
        for d in 0..5u32 {
            let rev = 100 * (i64::from(d) + 1);
            let at = now - DAY * (4 - d) - DAY / 4;
            let mut add = |name: String| {
                entries.push(Entry {
                    path: PathBuf::from(&name),
                    name,
                    bytes: 1,
                    modified: Some(at),
                })
            };
            add(timeline::full_name(rev));
            add(segment::sealed_name(rev + 1, rev + 50));
            add(segment::sealed_name(rev + 51, rev + 99));
        }
        Timeline::from_entries(entries)
    }

    fn names(paths: Vec<PathBuf>) -> Vec<String> {
        paths.iter().map(|p| p.display().to_string()).collect()
    }

    #[test]
    fn nothing_is_removed_unless_asked() {
        let now = SystemTime::now();
        assert!(doomed(&daily(now), Retention::default(), now).is_empty());
    }

    #[test]
    fn keep_for_keeps_every_moment_of_the_window_restorable() {
        let now = SystemTime::now();
        // the last 36 hours: the chain taken a day ago, the one from two days ago (it covers
        // until a day ago), and today's
        let policy = Retention {
            keep_fulls: None,
            keep_for: Some(DAY + DAY / 2),
        };
        let out = names(doomed(&daily(now), policy, now));
        assert_eq!(
            out,
            [
                segment::sealed_name(101, 150),
                segment::sealed_name(151, 199),
                segment::sealed_name(201, 250),
                segment::sealed_name(251, 299),
                timeline::full_name(100),
                timeline::full_name(200),
            ]
        );
    }

    #[test]
    fn older_chains_are_thinned_to_their_snapshots_up_to_keep_fulls() {
        let now = SystemTime::now();
        let policy = Retention {
            keep_fulls: Some(4),
            keep_for: Some(Duration::from_secs(3600)),
        };
        // today's chain whole; the three before it as snapshots; the oldest gone
        let out = names(doomed(&daily(now), policy, now));
        assert_eq!(
            out,
            [
                segment::sealed_name(101, 150),
                segment::sealed_name(151, 199),
                segment::sealed_name(201, 250),
                segment::sealed_name(251, 299),
                segment::sealed_name(301, 350),
                segment::sealed_name(351, 399),
                segment::sealed_name(401, 450),
                segment::sealed_name(451, 499),
                timeline::full_name(100),
            ]
        );
    }

    #[test]
    fn keep_fulls_alone_keeps_the_newest_chains_whole() {
        let now = SystemTime::now();
        let policy = Retention {
            keep_fulls: Some(2),
            keep_for: None,
        };
        let out = names(doomed(&daily(now), policy, now));
        assert_eq!(out.len(), 9, "{out:?}");
        assert!(!out.contains(&timeline::full_name(400)));
        assert!(!out.contains(&segment::sealed_name(451, 499)));
        assert!(out.contains(&timeline::full_name(300)));
        // even keep-fulls 0 keeps the newest chain
        let policy = Retention {
            keep_fulls: Some(0),
            keep_for: None,
        };
        let out = names(doomed(&daily(now), policy, now));
        assert!(!out.contains(&timeline::full_name(500)), "{out:?}");
        assert!(!out.contains(&segment::sealed_name(501, 550)), "{out:?}");
    }
}
