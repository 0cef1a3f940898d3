//! What a point-in-time restore needs from a backup: the full snapshot to start from and the
//! recorded changes after it up to the target revision (`cairnutl snapshot restore
//! --from-backup DIR --to-revision R` restores the one, then writes the other on top with
//! `cairn_storage::snapshot::HistoryWriter`, in bounded batches as the segments decode).

use std::path::PathBuf;

use cairn_proto::mvccpb::event::EventType;
use cairn_storage::snapshot::{HistoryRow, LeaseDrops, RestoredLeases};
use thiserror::Error;

use crate::segment::{self, SegmentError};
use crate::target::{Target, TargetError};
use crate::timeline::Timeline;

#[derive(Debug, Error)]
pub enum PlanError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("revision {revision} is not in the backup at {target}: {restorable}")]
    NotCovered {
        target: String,
        revision: i64,
        restorable: String,
    },
    #[error(transparent)]
    Segment(#[from] SegmentError),
    #[error("writing the recorded history: {0}")]
    Write(String),
}

/// The snapshot and the changes that restore to `to_revision`.
#[derive(Debug)]
pub struct RestorePlan {
    pub full: PathBuf,
    pub full_revision: i64,
    pub to_revision: i64,
    /// The segments (local, fetched, digests checked) holding the changes after the
    /// snapshot up to `to_revision`, in order: [`RestorePlan::replay`] reads them.
    pub segments: Vec<PathBuf>,
}

/// The leases at a revision, from what the backup saw after the snapshot.
#[derive(Default)]
struct LeaseState {
    /// Granted, or put a key on (ID -> granted TTL).
    added: std::collections::BTreeMap<i64, i64>,
    /// Gone since the snapshot (when no census was seen).
    revoked: std::collections::BTreeSet<i64>,
    /// A census was seen: `added` is then every lease there is.
    census: bool,
    /// Each lease's last time left seen: (seconds, when, Unix ms).
    left: std::collections::BTreeMap<i64, (i64, i64)>,
    /// When the last change taken was recorded: the moment the restore stands at.
    at_ms: i64,
}

impl LeaseState {
    fn take(&mut self, c: &crate::segment::Change) {
        if c.census {
            self.added.clear();
            self.revoked.clear();
            self.census = true;
        }
        self.at_ms = self.at_ms.max(c.unix_ms);
        for l in &c.leases {
            self.added.insert(l.id, l.granted_ttl);
            self.revoked.remove(&l.id);
            if l.ttl >= 0 {
                let seen = if l.seen_unix_ms > 0 {
                    l.seen_unix_ms
                } else {
                    c.unix_ms
                };
                self.left.insert(l.id, (l.ttl, seen));
            }
        }
        for id in &c.revoked {
            self.added.remove(id);
            self.left.remove(id);
            if !self.census {
                self.revoked.insert(*id);
            }
        }
    }

    fn finish(self) -> RestoredLeases {
        let added: Vec<(i64, i64)> = self.added.into_iter().collect();
        let drops = if self.census {
            LeaseDrops::AllBut(added.iter().map(|(id, _)| *id).collect())
        } else if self.revoked.is_empty() {
            LeaseDrops::None
        } else {
            LeaseDrops::Listed(self.revoked.into_iter().collect())
        };
        // what each had left when last seen, less the time from then to the target (a
        // keep-alive since would have given it more: at most what the backup saw of it)
        let at = self.at_ms;
        let left = self
            .left
            .into_iter()
            .map(|(id, (ttl, seen))| (id, ttl - (at - seen).max(0) / 1000))
            .collect();
        RestoredLeases { added, drops, left }
    }
}

/// Plans the restore of `target` to `to_revision`, from the newest full snapshot at or before
/// it whose segments reach it; every segment used is checked first (an object store's are
/// fetched, the snapshot too: `RestorePlan::full` and the segments are local files).
pub async fn plan(target: &Target, to_revision: i64) -> Result<RestorePlan, PlanError> {
    let timeline = Timeline::from_entries(target.entries().await?);
    let chains = timeline.chains();
    let Some(chain) = chains
        .iter()
        .rev()
        .find(|c| c.full.revision <= to_revision && to_revision <= c.last)
    else {
        let ranges: Vec<String> = chains
            .iter()
            .map(|c| format!("{}..={}", c.full.revision, c.last))
            .collect();
        return Err(PlanError::NotCovered {
            target: target.describe(),
            revision: to_revision,
            restorable: if ranges.is_empty() {
                "it holds no full snapshot".into()
            } else {
                format!("it restores to revisions {}", ranges.join(", "))
            },
        });
    };
    // every segment is fetched and its digest checked before anything is written
    let mut segments = Vec::new();
    for s in chain.segments.iter().filter(|s| s.first <= to_revision) {
        target.fetch(&s.path).await?;
        segment::verify(&s.path)?;
        segments.push(s.path.clone());
    }
    target.fetch(&chain.full.path).await?;
    Ok(RestorePlan {
        full: chain.full.path.clone(),
        full_revision: chain.full.revision,
        to_revision,
        segments,
    })
}

/// What a replay wrote, and the leases it leaves the restore to settle.
#[derive(Debug)]
pub struct Replayed {
    pub rows: u64,
    /// The leases at the target revision: added to or dropped from the snapshot's, and the
    /// time each had left.
    pub leases: RestoredLeases,
    /// The compaction the server had made by the target revision, if the backup saw one
    /// after the snapshot (a compaction seen later, even of a revision below the target, is
    /// not: the restore is the member as it was when it stood at the target).
    pub compacted: Option<i64>,
}

/// Rows handed to the writer at a time: a bounded batch, whatever a segment holds.
const REPLAY_BATCH: usize = 50_000;

impl RestorePlan {
    /// Hands every event after the snapshot up to the target revision to `write`, in order,
    /// in batches of at most [`REPLAY_BATCH`] rows, decoding the segments as it goes (memory
    /// stays within one batch, however large a segment).
    pub fn replay(
        &self,
        write: &mut dyn FnMut(&[HistoryRow]) -> Result<(), String>,
    ) -> Result<Replayed, PlanError> {
        let mut leases = LeaseState::default();
        let mut compacted = None;
        let mut count = 0u64;
        let mut rows = Vec::with_capacity(REPLAY_BATCH);
        'segments: for path in &self.segments {
            let (_, changes) = segment::changes(path)?;
            for change in changes {
                let change = change?;
                if change.revision > self.to_revision {
                    break 'segments;
                }
                // a segment may begin before the snapshot: what it holds up to there is in
                // it (a compaction seen right at the snapshot's revision may have come after)
                if change.revision < self.full_revision {
                    continue;
                }
                if change.compacted_to > 0 {
                    compacted = compacted.max(Some(change.compacted_to));
                }
                if change.revision == self.full_revision {
                    continue;
                }
                leases.take(&change);
                for (sub, event) in change.events.into_iter().enumerate() {
                    let tombstone = event.r#type == EventType::Delete as i32;
                    rows.push(HistoryRow {
                        revision: change.revision,
                        sub: sub as i64,
                        tombstone,
                        kv: event.kv.unwrap_or_default(),
                    });
                }
                if rows.len() >= REPLAY_BATCH {
                    count += rows.len() as u64;
                    write(&rows).map_err(PlanError::Write)?;
                    rows.clear();
                }
            }
        }
        count += rows.len() as u64;
        write(&rows).map_err(PlanError::Write)?;
        Ok(Replayed {
            rows: count,
            leases: leases.finish(),
            compacted,
        })
    }
}

/// The last revision recorded at or before `unix_ms` (`--to-time`), or the snapshot's when
/// no change after it is that old.
pub async fn revision_at(target: &Target, unix_ms: i64) -> Result<Option<i64>, PlanError> {
    let timeline = Timeline::from_entries(target.entries().await?);
    let mut best = None;
    for chain in timeline.chains() {
        for s in &chain.segments {
            target.fetch(&s.path).await?;
            let found = latest_before(&s.path, unix_ms);
            target.forget(&s.path);
            match found? {
                Some(rev) => best = best.max(Some(rev)),
                // this segment starts after the time: so do the chain's next ones
                None => break,
            }
        }
    }
    Ok(best)
}

/// The last revision `path` recorded at or before `unix_ms`; `None` if its first change is
/// later.
fn latest_before(path: &std::path::Path, unix_ms: i64) -> Result<Option<i64>, SegmentError> {
    let seal = segment::verify(path)?;
    if seal.first_unix_ms > unix_ms {
        return Ok(None);
    }
    let mut best = None;
    for c in segment::changes(path)?.1 {
        let c = c?;
        if c.unix_ms <= unix_ms {
            best = best.max(Some(c.revision));
        }
    }
    Ok(best)
}

/// Milliseconds since the Unix epoch of an RFC 3339 time (`2026-12-04T02:00:00Z`,
/// `2026-12-04T03:00:00.250+01:00`); `None` if it is not one.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-');
    let (y, m, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let offset_at = rest.find(['Z', 'z', '+', '-'])?;
    let (time, zone) = rest.split_at(offset_at);
    let mut t = time.splitn(3, ':');
    let (hh, mm): (i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let sec = t.next()?;
    let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
    let ss: i64 = whole.parse().ok()?;
    let ms: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}")[..3].parse().ok()?
    };
    let offset_min = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (oh, om) = zone[1..].split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 60 + om.parse::<i64>().ok()?)
        }
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // days from 1970-01-01 (Howard Hinnant's days_from_civil)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm - offset_min) * 60_000 + ss * 1000 + ms)
}

/// `unix_ms` as RFC 3339 in UTC, to the millisecond (`2026-12-04T02:00:00.250Z`).
pub fn format_rfc3339(unix_ms: i64) -> String {
    let (days, ms_of_day) = (
        unix_ms.div_euclid(86_400_000),
        unix_ms.rem_euclid(86_400_000),
    );
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (s, ms) = (ms_of_day / 1000, ms_of_day % 1000);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_writes_in_bounded_batches_up_to_the_target_only() {
        use cairn_proto::mvccpb::{Event, KeyValue};
        let dir = tempfile::tempdir().unwrap();
        let put = |rev: i64| crate::segment::Change {
            revision: rev,
            events: vec![Event {
                kv: Some(KeyValue {
                    key: format!("k{}", rev % 100).into(),
                    mod_revision: rev,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        // one segment spanning the snapshot at 10, then a large one
        let mut w = crate::segment::SegmentWriter::create(dir.path(), 0).unwrap();
        for rev in 1..=20 {
            w.append(&put(rev)).unwrap();
        }
        let (first, _) = w.seal().unwrap().unwrap();
        let mut w = crate::segment::SegmentWriter::create(dir.path(), 20).unwrap();
        for rev in 21..=130_000 {
            w.append(&put(rev)).unwrap();
        }
        let (second, _) = w.seal().unwrap().unwrap();
        let plan = RestorePlan {
            full: dir.path().join("unused"),
            full_revision: 10,
            to_revision: 120_000,
            segments: vec![first, second],
        };
        let (mut batches, mut next) = (Vec::new(), 11);
        let done = plan
            .replay(&mut |rows| {
                batches.push(rows.len());
                for r in rows {
                    assert_eq!(r.revision, next);
                    next += 1;
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(done.rows, 120_000 - 10);
        assert_eq!(
            next, 120_001,
            "every revision after the snapshot up to the target"
        );
        assert!(batches.iter().all(|n| *n <= REPLAY_BATCH), "{batches:?}");
        assert_eq!(batches.len(), 3, "{batches:?}");
    }

    #[test]
    fn times_format_back_to_what_they_parse_from() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(1_796_349_600_250),
            "2026-12-04T02:00:00.250Z"
        );
        for ms in [951_845_400_000, 1_796_349_600_250, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms));
        }
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-12-04T02:00:00Z"),
            Some(1_796_349_600_000)
        );
        assert_eq!(
            parse_rfc3339("2026-12-04T03:00:00.25+01:00"),
            Some(1_796_349_600_250)
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T12:00:00-05:30"),
            Some(951_845_400_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(
            parse_rfc3339("2026-12-04T02:00:00"),
            None,
            "a time without a zone"
        );
    }
}
