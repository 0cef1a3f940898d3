//! A backup directory read back: its full snapshots, its sealed segments, and how they chain.
//!
//! ```text
//! DIR/full-<revision>.snap        a full snapshot (Cairn's format, or etcd's from etcd),
//!                                 named after the revision it holds
//! DIR/seg-<first>-<last>.cseg     the changes of revisions first..=last (`segment.rs`)
//! DIR/open-<first>.part           a segment being written, or one a crash cut short
//! DIR/full.part                   a full snapshot being saved
//! DIR/NAME.age                    NAME encrypted (`backup run --encrypt-to`, `crypt.rs`)
//! DIR/NAME.age.part               NAME being encrypted
//! ```
//!
//! Every revision after a snapshot's has at least one event (etcd and Cairn move the revision
//! only for a change), so a chain is complete exactly when each segment's first revision is
//! the previous one's last plus one, starting from the snapshot's revision plus one (or a
//! segment that begins before the snapshot and goes on past it: a scheduled snapshot does
//! not interrupt the watch), and inside each segment every revision follows the one before.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use cairn_storage::snapshot::{SnapshotFile, verify as verify_cairn};

use crate::crypt::plain_name;
use crate::segment::{self, SegmentError};
use crate::target::{Entry, Target, TargetError, dir_entries};

/// The name of the full snapshot of `revision`.
pub fn full_name(revision: i64) -> String {
    format!("full-{revision:019}.snap")
}

/// Whether `name` is a full snapshot's.
pub fn is_full_name(name: &str) -> bool {
    parse_full_name(name).is_some()
}

/// The revision in a full snapshot's name.
pub fn parse_full_name(name: &str) -> Option<i64> {
    name.strip_prefix("full-")?
        .strip_suffix(".snap")?
        .parse()
        .ok()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Full {
    pub revision: i64,
    pub path: PathBuf,
    pub bytes: u64,
    /// When it was written (the schedule counts from the newest).
    pub modified: Option<SystemTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub first: i64,
    pub last: i64,
    pub path: PathBuf,
    pub bytes: u64,
}

/// The revisions one full snapshot and the segments after it restore to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub full: Full,
    /// The segments that continue it without a gap, in order.
    pub segments: Vec<Segment>,
    /// The last revision a restore from this chain can reach.
    pub last: i64,
    /// Where the next segment after the chain starts instead of `last + 1` (a gap).
    pub gap_to: Option<i64>,
}

#[derive(Debug, Default)]
pub struct Timeline {
    /// Oldest first.
    pub fulls: Vec<Full>,
    /// In revision order.
    pub segments: Vec<Segment>,
    /// Files a crash left half written (ignored; the backup rewrites what they held).
    pub unsealed: Vec<PathBuf>,
}

impl Timeline {
    /// Lists `dir` (a missing directory is an empty backup).
    pub fn load(dir: &Path) -> Result<Timeline, TargetError> {
        Ok(Timeline::from_entries(dir_entries(dir)?))
    }

    /// The timeline of a target's files.
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Timeline {
        let mut t = Timeline::default();
        for e in entries {
            // an encrypted file (`NAME.age`) stands for its plain name
            let (name, _) = plain_name(&e.name);
            if let Some(revision) = parse_full_name(name) {
                t.fulls.push(Full {
                    revision,
                    path: e.path,
                    bytes: e.bytes,
                    modified: e.modified,
                });
            } else if let Some((first, last)) = segment::parse_sealed_name(name) {
                t.segments.push(Segment {
                    first,
                    last,
                    path: e.path,
                    bytes: e.bytes,
                });
            } else if e.name.ends_with(".part") {
                t.unsealed.push(e.path);
            }
        }
        t.fulls.sort_by_key(|f| f.revision);
        t.fulls.dedup_by_key(|f| f.revision);
        t.segments.sort_by_key(|s| (s.first, s.last));
        t.segments.dedup_by_key(|s| (s.first, s.last));
        t.unsealed.sort();
        t
    }

    /// Each full snapshot with the segments that continue it.
    pub fn chains(&self) -> Vec<Chain> {
        self.fulls
            .iter()
            .map(|full| {
                let mut last = full.revision;
                let mut segments = Vec::new();
                let mut gap_to = None;
                for s in self.segments.iter().filter(|s| s.last > full.revision) {
                    if s.last <= last {
                        continue;
                    }
                    // a segment may begin before the snapshot: the watch went on across a
                    // scheduled snapshot, so the chain before it reaches it without a gap
                    if s.first <= last + 1 {
                        last = s.last;
                        segments.push(s.clone());
                    } else {
                        gap_to = Some(s.first);
                        break;
                    }
                }
                Chain {
                    full: full.clone(),
                    segments,
                    last,
                    gap_to,
                }
            })
            .collect()
    }

    /// The revisions no chain covers: after a chain's end up to the next segment, unless a
    /// newer full snapshot bridges them (its own chain goes on from there).
    pub fn gaps(&self) -> Vec<String> {
        let mut gaps = Vec::new();
        for chain in self.chains() {
            let Some(to) = chain.gap_to else { continue };
            let bridged = self.fulls.iter().any(|f| {
                f.revision > chain.full.revision && f.revision >= chain.last && f.revision < to
            });
            if !bridged {
                gaps.push(format!(
                    "gap: revisions {}..={} are in no segment after the snapshot at {}",
                    chain.last + 1,
                    to - 1,
                    chain.full.revision
                ));
            }
        }
        gaps
    }

    /// The revisions between one chain's end and the next chain's snapshot: no restore
    /// reaches them (the server compacted them before the backup recorded them, and the
    /// backup took a new full snapshot instead); the snapshot after them restores to its own
    /// revision only. As (first, last, the next snapshot's revision).
    pub fn unreachable(&self) -> Vec<(i64, i64, i64)> {
        self.chains()
            .windows(2)
            .filter(|w| w[1].full.revision > w[0].last + 1)
            .map(|w| (w[0].last + 1, w[1].full.revision - 1, w[1].full.revision))
            .collect()
    }

    /// The newest chain: where a backup resumes (after its `last`).
    pub fn newest(&self) -> Option<Chain> {
        self.chains().pop()
    }
}

/// What `backup verify` found wrong; empty when the backup is whole.
#[derive(Debug, Default)]
pub struct Report {
    pub fulls: usize,
    pub segments: usize,
    pub changes: u64,
    pub problems: Vec<String>,
}

/// Reads every file of the backup completely: each full snapshot's digest and records, each
/// segment's seal, digest, every change, the revision order inside it and the chain between
/// them. An object store's files are fetched one at a time.
pub async fn verify(target: &Target) -> Result<Report, TargetError> {
    let t = Timeline::from_entries(target.entries().await?);
    let mut report = Report::default();
    for full in &t.fulls {
        // removed since the listing (a running backup's retention): not part of it any more
        match target.fetch(&full.path).await {
            Err(e) if e.is_not_found() => continue,
            other => other?,
        }
        report.fulls += 1;
        if let Err(why) = verify_full(full) {
            report
                .problems
                .push(format!("{}: {why}", target.locate(&full.path)));
        }
        target.forget(&full.path);
    }
    for s in &t.segments {
        match target.fetch(&s.path).await {
            Err(e) if e.is_not_found() => continue,
            other => other?,
        }
        report.segments += 1;
        match check_segment(s) {
            Ok(n) => report.changes += n,
            Err(why) => report
                .problems
                .push(why.replace(&s.path.display().to_string(), &target.locate(&s.path))),
        }
        target.forget(&s.path);
    }
    if t.fulls.is_empty() {
        report.problems.push(format!(
            "{}: no full snapshot{}",
            target.describe(),
            if t.segments.is_empty() {
                ""
            } else {
                ": the segments have nothing to be restored onto"
            }
        ));
    }
    report.problems.extend(t.gaps());
    report.problems.dedup();
    Ok(report)
}

fn verify_full(full: &Full) -> Result<(), String> {
    match SnapshotFile::open(&full.path).map_err(|e| e.to_string())? {
        SnapshotFile::Cairn(info) => {
            let (_, _) = verify_cairn(&full.path, &mut |_| {}).map_err(|e| e.to_string())?;
            if info.header.revision != full.revision {
                return Err(format!(
                    "holds revision {}, its name says {}",
                    info.header.revision, full.revision
                ));
            }
            Ok(())
        }
        SnapshotFile::Etcd(snap) => {
            snap.check_digest(&mut |_| {}).map_err(|e| e.to_string())?;
            snap.check().map_err(|e| e.to_string())?;
            let held = snap.revision().map_err(|e| e.to_string())?;
            if held != full.revision {
                return Err(format!(
                    "holds revision {held}, its name says {}",
                    full.revision
                ));
            }
            Ok(())
        }
    }
}

/// A sealed segment decoded, its revisions consecutive and as its name says; the count of
/// its changes.
fn check_segment(s: &Segment) -> Result<u64, String> {
    let (seal, changes) = segment::read(&s.path).map_err(|e: SegmentError| e.to_string())?;
    let at = s.path.display();
    if (seal.first_revision, seal.last_revision) != (s.first, s.last) {
        return Err(format!(
            "{at}: holds revisions {}..={}, its name says {}..={}",
            seal.first_revision, seal.last_revision, s.first, s.last
        ));
    }
    let mut last = seal.after_revision;
    for c in &changes {
        if !c.events.is_empty() {
            if c.revision != last + 1 {
                return Err(format!(
                    "{at}: revision {} follows {last}: revisions {}..={} are missing",
                    c.revision,
                    last + 1,
                    c.revision - 1
                ));
            }
            last = c.revision;
        }
    }
    Ok(seal.records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) {
        std::fs::write(dir.join(name), b"x").unwrap();
    }

    #[test]
    fn a_segment_going_on_across_a_scheduled_snapshot_continues_both_chains() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(d, &full_name(10));
        touch(d, &segment::sealed_name(11, 20));
        // taken while the watch went on: the segment 11..=20 holds 16..=20 for it
        touch(d, &full_name(15));
        touch(d, &segment::sealed_name(21, 30));
        let t = Timeline::load(d).unwrap();
        let chains = t.chains();
        assert_eq!((chains[0].last, chains[0].segments.len()), (30, 2));
        assert_eq!((chains[1].last, chains[1].segments.len()), (30, 2));
        assert!(t.unreachable().is_empty() && t.gaps().is_empty());
    }

    #[test]
    fn chains_follow_consecutive_segments_and_a_newer_snapshot_bridges_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(d, &full_name(10));
        touch(d, &segment::sealed_name(11, 20));
        touch(d, &segment::sealed_name(21, 25));
        // the next full snapshot was taken at 30; revisions 26..=30 are in it
        touch(d, &full_name(30));
        touch(d, &segment::sealed_name(31, 40));
        touch(d, "open-0000000000000000041.part");
        let t = Timeline::load(d).unwrap();
        let chains = t.chains();
        assert_eq!(chains.len(), 2);
        assert_eq!((chains[0].last, chains[0].gap_to), (25, Some(31)));
        assert_eq!(chains[0].segments.len(), 2);
        assert_eq!((chains[1].full.revision, chains[1].last), (30, 40));
        assert_eq!(t.newest().unwrap().last, 40);
        assert_eq!(t.unsealed.len(), 1);
        assert!(
            t.gaps().is_empty(),
            "bridged by the snapshot at 30: {:?}",
            t.gaps()
        );

        // no gap, but 26..=29 only as their outcome at 30: no restore stops at them
        assert_eq!(t.unreachable(), [(26, 29, 30)]);
        // a snapshot at 60 after the chain ends at 40: 41..=59 cannot be restored to
        touch(d, &full_name(60));
        let t = Timeline::load(d).unwrap();
        assert_eq!(t.unreachable(), [(26, 29, 30), (41, 59, 60)]);
        std::fs::remove_file(d.join(full_name(60))).unwrap();

        // without a snapshot in between, 41..=44 is a gap
        touch(d, &segment::sealed_name(45, 50));
        let t = Timeline::load(d).unwrap();
        assert_eq!(
            t.gaps(),
            ["gap: revisions 41..=44 are in no segment after the snapshot at 30"]
        );
    }
}
