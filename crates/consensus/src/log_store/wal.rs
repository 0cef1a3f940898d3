//! The raft log's entries on disk: a write-ahead log of segment files (`member/wal/`).
//!
//! A segment is named after the index of its first entry (`0000000000000001.wal`) and
//! preallocated to `SEGMENT_BYTES`, so an append writes one contiguous run of bytes and its
//! fdatasync flushes just those (a B-tree commit rewrote a dozen scattered pages per append and
//! cost four times as long). A record is
//!
//! ```text
//! length u32 LE | CRC-32C u32 LE of (index ++ payload) | index u64 LE | payload (bincode Entry)
//! ```
//!
//! and the unwritten rest of a segment is zeros: reading stops at a zero header. At open the
//! segments are read in order; a record that is cut short or fails its checksum is the tail an
//! interrupted append left in the last segment, and is zeroed (never acknowledged: the append
//! reported success only after its fdatasync). The same damage anywhere else is corruption and
//! the open fails. Truncation zeroes the bytes it drops, so no stale record can reappear behind
//! newer ones; purge deletes whole segments behind the purged index. Changes are made under
//! the log store's lock; readers take the entries' locations under it and read outside it.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::types::{Entry, LogId};

/// Bytes preallocated per segment; a record larger than a segment gets a segment to itself.
const SEGMENT_BYTES: u64 = 64 << 20;
const HEADER: usize = 16;
/// Largest record accepted when reading (a corrupt length must not allocate gigabytes).
const MAX_RECORD: u32 = 1 << 30;
const SUFFIX: &str = ".wal";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Loc {
    segment: u64,
    offset: u64,
    len: u32,
}

struct Segment {
    file: Arc<File>,
    path: PathBuf,
}

pub(super) struct Wal {
    dir: PathBuf,
    /// By the index of their first entry; the last one is written to.
    segments: BTreeMap<u64, Segment>,
    /// Where each entry is, from index `first` on, without gaps.
    locs: VecDeque<Loc>,
    first: u64,
    last: Option<LogId>,
    /// End of the written records in the last segment.
    write_off: u64,
    segment_bytes: u64,
}

fn corrupt(path: &Path, offset: u64, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "raft log {} is damaged at byte {offset} ({what}); restore the member from a snapshot \
             or remove it from the cluster and add it back with an empty data dir",
            path.display()
        ),
    )
}

fn segment_name(first: u64) -> String {
    format!("{first:016x}{SUFFIX}")
}

fn checksum(index: u64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&index.to_le_bytes()), payload)
}

/// One record's bytes.
fn record(index: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(index, payload).to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes zeros over `from..to` of `file`.
fn zero(file: &File, from: u64, to: u64) -> io::Result<()> {
    const CHUNK: u64 = 1 << 20;
    let zeros = vec![0u8; CHUNK.min(to.saturating_sub(from)) as usize];
    let mut at = from;
    while at < to {
        let n = CHUNK.min(to - at) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// The valid records of one segment: their locations, the end of the last one, and whether
/// reading stopped at damage rather than at the zeros after the last record.
struct Scan {
    locs: Vec<(u64, Loc)>,
    end: u64,
    damaged: Option<&'static str>,
}

fn scan(file: &File, first: u64) -> io::Result<Scan> {
    let size = file.metadata()?.len();
    let mut locs = Vec::new();
    let mut off = 0u64;
    let mut next = first;
    let damaged = loop {
        if off + HEADER as u64 > size {
            break None;
        }
        let mut h = [0u8; HEADER];
        file.read_exact_at(&mut h, off)?;
        if h == [0u8; HEADER] {
            break None;
        }
        let len = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
        let index = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
        if len > MAX_RECORD || off + (HEADER as u64) + u64::from(len) > size {
            break Some("a record runs past the end of its segment");
        }
        if index != next {
            break Some("a record out of sequence");
        }
        let mut payload = vec![0u8; len as usize];
        file.read_exact_at(&mut payload, off + HEADER as u64)?;
        if checksum(index, &payload) != crc {
            break Some("a checksum mismatch");
        }
        locs.push((
            index,
            Loc {
                segment: first,
                offset: off,
                len,
            },
        ));
        next += 1;
        off += HEADER as u64 + u64::from(len);
    };
    Ok(Scan {
        locs,
        end: off,
        damaged,
    })
}

impl Wal {
    /// Opens the log in `dir` (which need not exist yet: it is made at the first append),
    /// dropping entries at or below `purged`.
    pub fn open(dir: &Path, purged: Option<u64>) -> io::Result<Wal> {
        Self::open_with(dir, purged, SEGMENT_BYTES)
    }

    fn open_with(dir: &Path, purged: Option<u64>, segment_bytes: u64) -> io::Result<Wal> {
        let mut wal = Wal {
            segment_bytes,
            dir: dir.to_path_buf(),
            segments: BTreeMap::new(),
            locs: VecDeque::new(),
            first: purged.map_or(0, |p| p + 1),
            last: None,
            write_off: 0,
        };
        if !dir.exists() {
            return Ok(wal);
        }
        let mut names = BTreeMap::new();
        for item in std::fs::read_dir(dir)? {
            let path = item?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(hex) = name.strip_suffix(SUFFIX)
                && hex.len() == 16
                && let Ok(first) = u64::from_str_radix(hex, 16)
            {
                names.insert(first, path);
            } else if name.ends_with(".tmp") {
                std::fs::remove_file(&path)?; // a segment being prepared when the process died
            }
        }
        // segments wholly behind the purge point: a purge whose deletions a crash cut short
        // may have left any of them, not necessarily the oldest
        if let Some(p) = purged {
            let firsts: Vec<u64> = names.keys().copied().collect();
            for pair in firsts.windows(2) {
                if pair[1] <= p + 1 {
                    let path = names.remove(&pair[0]).expect("listed");
                    std::fs::remove_file(&path)?;
                }
            }
        }
        let count = names.len();
        let mut expected: Option<u64> = None;
        for (n, (first, path)) in names.into_iter().enumerate() {
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            if expected.is_some_and(|e| e != first) {
                return Err(corrupt(&path, 0, "a gap between segments"));
            }
            let scan = scan(&file, first)?;
            let is_last = n + 1 == count;
            if let Some(what) = scan.damaged {
                if !is_last {
                    return Err(corrupt(&path, scan.end, what));
                }
                // the interrupted last append: never acknowledged, so dropped
                let size = file.metadata()?.len();
                zero(&file, scan.end, size)?;
                file.sync_data()?;
                tracing::warn!(segment = %path.display(), offset = scan.end, "dropped the unfinished tail of the raft log ({what})");
            }
            if !scan.locs.is_empty() || is_last {
                expected = Some(first + scan.locs.len() as u64);
            }
            wal.write_off = scan.end;
            wal.locs.extend(scan.locs.into_iter().map(|(_, l)| l));
            if wal.segments.is_empty() {
                wal.first = first;
            }
            wal.segments.insert(
                first,
                Segment {
                    file: Arc::new(file),
                    path,
                },
            );
        }
        if let Some(p) = purged {
            wal.forget_upto(p);
        }
        if let Some(last) = wal.locs.back().copied() {
            let index = wal.first + wal.locs.len() as u64 - 1;
            wal.last = Some(wal.decode(index, last)?.log_id);
        }
        Ok(wal)
    }

    pub fn last(&self) -> Option<LogId> {
        self.last
    }

    pub fn is_empty(&self) -> bool {
        self.locs.is_empty()
    }

    fn decode(&self, index: u64, loc: Loc) -> io::Result<Entry> {
        let seg = &self.segments[&loc.segment];
        read_entry(&seg.file, &seg.path, index, loc)
    }

    /// Drops the locations of entries up to `upto` (they stay in the file until their
    /// segment is deleted).
    fn forget_upto(&mut self, upto: u64) {
        while self.first <= upto && !self.locs.is_empty() {
            self.locs.pop_front();
            self.first += 1;
        }
        if self.locs.is_empty() {
            self.first = self.first.max(upto + 1);
        }
    }

    /// What a reader needs to read `start..end` without the lock: each entry's file and place.
    pub fn locate(&self, start: u64, end: u64) -> Vec<(u64, Arc<File>, PathBuf, Loc)> {
        let from = start.max(self.first);
        let to = end.min(self.first + self.locs.len() as u64);
        (from..to)
            .map(|i| {
                let loc = self.locs[(i - self.first) as usize];
                let seg = &self.segments[&loc.segment];
                (i, seg.file.clone(), seg.path.clone(), loc)
            })
            .collect()
    }

    /// Appends records (index, encoded entry), consecutive and following the last entry, and
    /// makes them durable.
    pub fn append(&mut self, rows: &[(u64, Vec<u8>)], last: LogId) -> io::Result<()> {
        let mut pending: Vec<u8> = Vec::new();
        let mut touched: Vec<Arc<File>> = Vec::new();
        for (index, payload) in rows {
            let next = self.first + self.locs.len() as u64;
            if !self.locs.is_empty() && *index != next {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("raft log append of entry {index} where {next} is next"),
                ));
            }
            let rec = record(*index, payload);
            let fits =
                self.write_off + pending.len() as u64 + rec.len() as u64 <= self.segment_bytes;
            let current_empty = self.write_off == 0 && pending.is_empty();
            if self.segments.is_empty() || (!fits && !current_empty) {
                self.flush_pending(&mut pending, &mut touched)?;
                self.roll(*index)?;
            } else if current_empty
                && let Some((&name, _)) = self.segments.last_key_value()
                && name != *index
            {
                // an empty segment named for another index (made just before a crash)
                let (_, seg) = self.segments.pop_last().expect("a segment");
                std::fs::remove_file(&seg.path)?;
                self.roll(*index)?;
            }
            let segment = *self.segments.keys().next_back().expect("a segment");
            self.locs.push_back(Loc {
                segment,
                offset: self.write_off + pending.len() as u64,
                len: payload.len() as u32,
            });
            if self.locs.len() == 1 {
                self.first = *index;
            }
            pending.extend_from_slice(&rec);
        }
        self.flush_pending(&mut pending, &mut touched)?;
        for f in touched {
            f.sync_data()?;
        }
        self.last = Some(last);
        Ok(())
    }

    /// Writes `pending` at the end of the last segment.
    fn flush_pending(
        &mut self,
        pending: &mut Vec<u8>,
        touched: &mut Vec<Arc<File>>,
    ) -> io::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let (_, seg) = self.segments.last_key_value().expect("a segment");
        seg.file.write_all_at(pending, self.write_off)?;
        self.write_off += pending.len() as u64;
        if !touched.iter().any(|f| Arc::ptr_eq(f, &seg.file)) {
            touched.push(seg.file.clone());
        }
        pending.clear();
        Ok(())
    }

    /// Starts a new segment for entries from `first` on: preallocated under a temporary name,
    /// then renamed into place.
    fn roll(&mut self, first: u64) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(segment_name(first));
        let tmp = self.dir.join(format!("{}.tmp", segment_name(first)));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        rustix::fs::fallocate(
            &file,
            rustix::fs::FallocateFlags::empty(),
            0,
            self.segment_bytes,
        )?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)?;
        self.segments.insert(
            first,
            Segment {
                file: Arc::new(file),
                path,
            },
        );
        self.write_off = 0;
        Ok(())
    }

    /// Deletes entries at `from` and after.
    pub fn truncate(&mut self, from: u64) -> io::Result<()> {
        let end = self.first + self.locs.len() as u64;
        if from >= end {
            return Ok(());
        }
        let keep = from.saturating_sub(self.first) as usize;
        let cut = self.locs[keep];
        // later segments hold only dropped entries
        let doomed: Vec<u64> = self
            .segments
            .range(cut.segment + 1..)
            .map(|(k, _)| *k)
            .collect();
        for k in doomed {
            let seg = self.segments.remove(&k).expect("listed");
            std::fs::remove_file(&seg.path)?;
        }
        // the deletions are durable before the cut: a crash in between leaves the log a
        // prefix of what it was, never a segment after a gap
        sync_dir(&self.dir)?;
        let seg = &self.segments[&cut.segment];
        let written = if cut.segment == *self.segments.keys().next_back().expect("a segment") {
            self.write_off.max(cut.offset)
        } else {
            seg.file.metadata()?.len()
        };
        zero(&seg.file, cut.offset, written)?;
        seg.file.sync_data()?;
        self.write_off = cut.offset;
        self.locs.truncate(keep);
        self.last = match self.locs.back().copied() {
            Some(l) => Some(self.decode(from - 1, l)?.log_id),
            None => None,
        };
        Ok(())
    }

    /// Forgets entries up to `upto` and deletes the segments holding nothing newer.
    pub fn purge(&mut self, upto: u64) -> io::Result<()> {
        self.forget_upto(upto);
        let keep_from = self.locs.front().map(|l| l.segment);
        let doomed: Vec<u64> = self
            .segments
            .keys()
            .copied()
            .filter(|k| keep_from.is_none_or(|f| *k < f))
            .collect();
        if doomed.is_empty() {
            return Ok(());
        }
        for k in &doomed {
            let seg = self.segments.remove(k).expect("listed");
            std::fs::remove_file(&seg.path)?;
        }
        if self.segments.is_empty() {
            self.write_off = 0;
            self.last = None;
        }
        sync_dir(&self.dir)
    }
}

/// Reads and decodes one entry at `loc`, checking its checksum.
pub(super) fn read_entry(file: &File, path: &Path, index: u64, loc: Loc) -> io::Result<Entry> {
    let mut buf = vec![0u8; HEADER + loc.len as usize];
    file.read_exact_at(&mut buf, loc.offset)?;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    let payload = &buf[HEADER..];
    if checksum(index, payload) != crc {
        return Err(corrupt(path, loc.offset, "a checksum mismatch"));
    }
    bincode::deserialize(payload).map_err(|e| corrupt(path, loc.offset, &e.to_string()))
}

#[cfg(test)]
mod tests;
