//! The write-ahead log on real files: reopening, segment rolls, torn tails, damage,
//! truncation and purge.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use openraft::{CommittedLeaderId, EntryPayload};

use super::*;
use crate::types::Request;

/// Small segments so a few entries roll over.
const SMALL: u64 = 4096;

fn entry(term: u64, index: u64, bytes: usize) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Normal(Request::new(vec![(index % 251) as u8; bytes])),
    }
}

fn append(wal: &mut Wal, entries: &[Entry]) {
    let rows: Vec<(u64, Vec<u8>)> = entries
        .iter()
        .map(|e| (e.log_id.index, bincode::serialize(e).unwrap()))
        .collect();
    wal.append(&rows, entries.last().unwrap().log_id).unwrap();
}

/// A fresh WAL of small segments in `dir` holding entries 1..=last (term 1, 300 bytes each).
fn filled(dir: &Path, last: u64) -> Wal {
    let mut wal = Wal::open_with(dir, None, SMALL).unwrap();
    let written: Vec<Entry> = (1..=last).map(|i| entry(1, i, 300)).collect();
    append(&mut wal, &written);
    wal
}

fn read(wal: &Wal, start: u64, end: u64) -> Vec<Entry> {
    wal.locate(start, end)
        .into_iter()
        .map(|(i, f, p, loc)| read_entry(&f, &p, i, loc).unwrap())
        .collect()
}

fn indexes(v: &[Entry]) -> Vec<u64> {
    v.iter().map(|e| e.log_id.index).collect()
}

fn segments(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn entries_survive_reopen_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("wal");
    let mut wal = Wal::open_with(&wal_dir, None, SMALL).unwrap();
    assert!(wal.is_empty());
    assert!(!wal_dir.exists(), "nothing is made before the first append");
    let written: Vec<Entry> = (1..=40).map(|i| entry(1, i, 300)).collect();
    for chunk in written.chunks(7) {
        append(&mut wal, chunk);
    }
    assert!(segments(&wal_dir).len() > 3, "{:?}", segments(&wal_dir));
    assert_eq!(read(&wal, 1, 41), written);
    drop(wal);
    let wal = Wal::open_with(&wal_dir, None, SMALL).unwrap();
    assert_eq!(read(&wal, 1, 41), written);
    assert_eq!(read(&wal, 10, 13), written[9..12].to_vec());
    assert_eq!(wal.last(), Some(written[39].log_id));
}

#[test]
fn a_record_larger_than_a_segment_gets_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open_with(dir.path(), None, SMALL).unwrap();
    let written = vec![
        entry(1, 1, 100),
        entry(1, 2, 3 * SMALL as usize),
        entry(1, 3, 100),
    ];
    append(&mut wal, &written);
    drop(wal);
    let wal = Wal::open_with(dir.path(), None, SMALL).unwrap();
    assert_eq!(read(&wal, 1, 4), written);
}

#[test]
fn an_interrupted_append_is_dropped_and_writing_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open_with(dir.path(), None, 1 << 20).unwrap();
    append(&mut wal, &[entry(1, 1, 50), entry(1, 2, 50)]);
    let end = wal.write_off;
    let path = wal.segments.values().next().unwrap().path.clone();
    drop(wal);
    // half a record: a header promising more bytes than were written
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    let torn = record(3, &[7u8; 500]);
    f.write_all_at(&torn[..200], end).unwrap();
    drop(f);

    let mut wal = Wal::open_with(dir.path(), None, 1 << 20).unwrap();
    assert_eq!(indexes(&read(&wal, 1, 10)), [1, 2]);
    assert_eq!(wal.last().map(|l| l.index), Some(2));
    append(&mut wal, &[entry(1, 3, 20)]);
    drop(wal);
    let wal = Wal::open_with(dir.path(), None, 1 << 20).unwrap();
    assert_eq!(indexes(&read(&wal, 1, 10)), [1, 2, 3]);
    assert_eq!(read(&wal, 3, 4), [entry(1, 3, 20)]);
}

#[test]
fn damage_before_the_last_segment_fails_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open_with(dir.path(), None, SMALL).unwrap();
    for i in 1..=20 {
        append(&mut wal, &[entry(1, i, 300)]);
    }
    let first = wal.segments.values().next().unwrap().path.clone();
    drop(wal);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&first)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, HEADER as u64 + 40).unwrap();
    f.write_all_at(&[b[0] ^ 0x10], HEADER as u64 + 40).unwrap();
    drop(f);
    let err = Wal::open_with(dir.path(), None, SMALL)
        .err()
        .expect("damage is refused");
    let msg = err.to_string();
    assert!(
        msg.contains("is damaged at byte 0 (a checksum mismatch)"),
        "{msg}"
    );
    assert!(msg.contains("restore the member from a snapshot"), "{msg}");
}

#[test]
fn truncated_entries_never_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = filled(dir.path(), 12);
    let before = segments(dir.path()).len();
    wal.truncate(5).unwrap();
    assert!(
        segments(dir.path()).len() < before,
        "later segments deleted"
    );
    assert_eq!(wal.last().map(|l| l.index), Some(4));
    // a shorter replacement: the old records' bytes must not read as entries 6.. again
    append(&mut wal, &[entry(2, 5, 10)]);
    drop(wal);
    let mut wal = Wal::open_with(dir.path(), None, SMALL).unwrap();
    let got = read(&wal, 1, 20);
    assert_eq!(indexes(&got), [1, 2, 3, 4, 5]);
    assert_eq!(got[4], entry(2, 5, 10));
    wal.truncate(1).unwrap();
    assert!(wal.is_empty());
    assert_eq!(wal.last(), None);
    append(&mut wal, &[entry(3, 1, 10)]);
    drop(wal);
    let wal = Wal::open_with(dir.path(), None, SMALL).unwrap();
    assert_eq!(read(&wal, 0, 20), [entry(3, 1, 10)]);
}

#[test]
fn purge_deletes_whole_segments_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = filled(dir.path(), 30);
    let before = segments(dir.path()).len();
    wal.purge(17).unwrap();
    assert!(segments(dir.path()).len() < before);
    assert_eq!(indexes(&read(&wal, 0, 100)), (18..=30).collect::<Vec<_>>());
    drop(wal);
    let mut wal = Wal::open_with(dir.path(), Some(17), SMALL).unwrap();
    assert_eq!(indexes(&read(&wal, 0, 100)), (18..=30).collect::<Vec<_>>());
    // purged past the end (a snapshot installed from the leader): the next entry starts anew
    wal.purge(40).unwrap();
    assert!(wal.is_empty());
    assert!(segments(dir.path()).is_empty());
    append(&mut wal, &[entry(2, 41, 10)]);
    drop(wal);
    let wal = Wal::open_with(dir.path(), Some(40), SMALL).unwrap();
    assert_eq!(read(&wal, 0, 100), [entry(2, 41, 10)]);
}

#[test]
fn an_append_out_of_sequence_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open_with(dir.path(), None, SMALL).unwrap();
    append(&mut wal, &[entry(1, 1, 10)]);
    let rows = vec![(3, bincode::serialize(&entry(1, 3, 10)).unwrap())];
    let err = wal.append(&rows, entry(1, 3, 10).log_id).unwrap_err();
    assert!(err.to_string().contains("entry 3 where 2 is next"), "{err}");
}

#[test]
fn segments_a_purge_left_behind_are_dropped_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let wal = filled(dir.path(), 30);
    let names = segments(dir.path());
    assert_eq!(names.len(), 3, "entries 1-11, 12-22, 23-30: {names:?}");
    drop(wal);
    // a crash during a purge up to 22 deleted the second segment but not the first
    std::fs::remove_file(dir.path().join(&names[1])).unwrap();
    let wal = Wal::open_with(dir.path(), Some(22), SMALL).unwrap();
    assert_eq!(indexes(&read(&wal, 0, 100)), (23..=30).collect::<Vec<_>>());
    assert!(
        !dir.path().join(&names[0]).exists(),
        "the stale segment is gone"
    );
}

/// Regression (found by the robustness soak): entries located, then rewritten before they
/// were read (raft truncated a restarted ex-leader's tail and appended the new leader's
/// entries over it) read as damage, and the member stopped. The read now stops short at
/// the rewrite, with the entry that is there now.
#[test]
fn a_read_of_a_tail_rewritten_under_it_stops_short_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = filled(dir.path(), 8);
    let places = wal.locate(1, 9);
    wal.truncate(5).unwrap();
    append(&mut wal, &[entry(2, 5, 500), entry(2, 6, 500)]);
    let wal = std::sync::Mutex::new(wal);
    let (got, whole) = crate::log_store::read_located(&wal, places).unwrap();
    assert!(!whole, "the rewritten tail was read as if it were whole");
    assert_eq!(indexes(&got), [1, 2, 3, 4, 5]);
    assert_eq!(got[4], entry(2, 5, 500));
    // nothing rewritten: every entry
    let places = wal.lock().unwrap().locate(1, 7);
    let (got, whole) = crate::log_store::read_located(&wal, places).unwrap();
    assert!(whole);
    assert_eq!(indexes(&got), [1, 2, 3, 4, 5, 6]);
}
