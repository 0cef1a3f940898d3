//! Snapshot round trips and a table of corruptions, on real files.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_proto::etcdserverpb::*;
use cairn_storage::snapshot::{
    RestoreOptions, SnapshotError, SnapshotSource, read_header, restore_kv, verify,
};
use cairn_storage::{Op, Store, StoreOptions};
use common::{all, apply, compact, put};

/// A store with history, a compaction, a tombstone, leases and leased keys.
fn filled(dir: &Path) -> Arc<Store> {
    let s = Store::open(&dir.join("kv.redb"), StoreOptions::default()).unwrap();
    apply(&s, Op::LeaseGrant(LeaseGrantRequest { id: 42, ttl: 300 }));
    for i in 0..300 {
        let key = format!("key/{:03}", i % 120);
        let lease = if i % 7 == 0 { 42 } else { 0 };
        apply(&s, put(&key, vec![b'v'; i % 50], lease));
    }
    apply(
        &s,
        Op::DeleteRange(DeleteRangeRequest {
            key: "key/010".into(),
            range_end: "key/020".into(),
            ..Default::default()
        }),
    );
    apply(&s, compact(150));
    for i in 0..20 {
        apply(&s, put(&format!("late/{i}"), b"x", 0));
    }
    s
}

fn source() -> SnapshotSource {
    SnapshotSource {
        cluster_id: 7,
        members: vec![],
        server_version: "3.5.0 (cairn test)".into(),
    }
}

fn save(s: &Store, path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    s.write_snapshot(&source(), 3, &mut f, &mut |_| {}).unwrap();
}

#[test]
fn round_trip_keeps_keys_revisions_leases_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    let s = filled(dir.path());
    let file = dir.path().join("snap.db");
    save(&s, &file);

    let size = std::fs::metadata(&file).unwrap().len();
    assert_eq!(size % 512, 32, "etcdctl's rule for a file with a digest");
    let info = read_header(&file).unwrap();
    let h = &info.header;
    assert_eq!(
        (h.revision, h.compact_revision),
        (s.current_revision(), 150)
    );
    assert_eq!(
        h.hash,
        s.hash_kv(0).unwrap().hash,
        "the header's hash is the live HashKV"
    );
    assert_eq!(h.key_count, s.key_count() as i64);
    assert_eq!(h.lease_count, 1);
    let (_, summary) = verify(&file, &mut |_| {}).unwrap();
    assert_eq!(summary.hash, h.hash);

    let restored_dir = tempfile::tempdir().unwrap();
    let kv = restored_dir.path().join("kv.redb");
    restore_kv(&info, &kv, RestoreOptions::default(), &mut |_| {}).unwrap();
    let r = Store::open(&kv, StoreOptions::default()).unwrap();
    assert_eq!(
        (r.current_revision(), r.compact_revision()),
        (s.current_revision(), s.compact_revision())
    );
    assert_eq!(all(&r, 0), all(&s, 0));
    assert_eq!(r.hash_kv(0).unwrap(), s.hash_kv(0).unwrap());
    let old = |st: &Store| {
        st.range(&RangeRequest {
            key: "key/".into(),
            range_end: "key0".into(),
            revision: 200,
            ..Default::default()
        })
        .unwrap()
    };
    assert_eq!(old(&r), old(&s), "history since the compaction is kept");
    assert_eq!(r.lease(42).unwrap().keys, s.lease(42).unwrap().keys);
}

#[test]
fn bump_revision_marks_old_revisions_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let s = filled(dir.path());
    let file = dir.path().join("snap.db");
    save(&s, &file);
    let info = read_header(&file).unwrap();
    let kv = dir.path().join("restored.redb");
    let opts = RestoreOptions {
        bump_revision: 1000,
        mark_compacted: true,
        ..Default::default()
    };
    restore_kv(&info, &kv, opts, &mut |_| {}).unwrap();
    let r = Store::open(&kv, StoreOptions::default()).unwrap();
    let rev = s.current_revision();
    assert_eq!(
        (r.current_revision(), r.compact_revision()),
        (rev + 1000, rev + 1000)
    );
    let stale = r.range(&RangeRequest {
        key: "late/1".into(),
        revision: rev,
        ..Default::default()
    });
    assert!(matches!(stale, Err(cairn_storage::StoreError::Compacted)));
    apply(&r, put("after", b"", 0));
    assert_eq!(r.current_revision(), rev + 1001);
}

/// Every way a file can be wrong gets an error naming the problem, never a panic.
#[test]
fn corruptions_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let s = filled(dir.path());
    let good_path = dir.path().join("good.db");
    save(&s, &good_path);
    let good = std::fs::read(&good_path).unwrap();
    let body_offset = read_header(&good_path).unwrap().body_offset as usize;

    let write = |name: &str, bytes: &[u8]| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let full_check = |p: &Path| -> Result<(), SnapshotError> { verify(p, &mut |_| {}).map(|_| ()) };
    let expect = |p: PathBuf, needle: &str| {
        let e = full_check(&p).expect_err(&format!("{} must be refused", p.display()));
        let msg = e.to_string();
        assert!(
            msg.contains(needle),
            "{}: {msg:?} should mention {needle:?}",
            p.display()
        );
        assert!(
            msg.starts_with(&p.display().to_string()),
            "errors name the file: {msg}"
        );
    };

    expect(write("empty", &[]), "file is empty");
    expect(
        write("magic", &[b"NOTASNAP".as_slice(), &good[8..]].concat()),
        "bad magic",
    );
    expect(
        write(
            "random",
            &(0..5000u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect::<Vec<_>>(),
        ),
        "not a Cairn or etcd snapshot",
    );
    let mut future = good.clone();
    future[7] = 2;
    expect(write("future", &future), "newer Cairn");
    let mut lying = good.clone();
    lying[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    expect(write("lying", &lying), "header claims");
    let mut head = good.clone();
    head[14] ^= 0x40;
    expect(write("header_bit", &head), "header checksum");
    let mut digest = good.clone();
    let last = digest.len() - 1;
    digest[last] ^= 1;
    expect(write("digest_bit", &digest), "SHA-256 mismatch");
    let dir_path = dir.path().join("a_directory");
    std::fs::create_dir(&dir_path).unwrap();
    let e = full_check(&dir_path).unwrap_err();
    assert!(e.to_string().contains("is a directory"), "{e}");

    // truncated anywhere: refused
    for cut in [
        1,
        7,
        12,
        body_offset - 1,
        body_offset + 10,
        good.len() / 2,
        good.len() - 33,
        good.len() - 1,
    ] {
        let p = write(&format!("cut_{cut}"), &good[..cut]);
        assert!(
            full_check(&p).is_err(),
            "truncated at {cut} must be refused"
        );
    }
    // a flipped bit anywhere: refused (the digest covers every byte)
    for offset in (0..good.len()).step_by(good.len() / 97 + 1) {
        let mut bad = good.clone();
        bad[offset] ^= 0x08;
        let p = write("flip", &bad);
        assert!(
            full_check(&p).is_err(),
            "bit flip at {offset} of {} must be refused",
            good.len()
        );
    }
}

#[test]
fn restore_refuses_a_corrupt_body_and_skip_hash_check_still_checks_records() {
    let dir = tempfile::tempdir().unwrap();
    let s = filled(dir.path());
    let path = dir.path().join("snap.db");
    save(&s, &path);
    let mut bytes = std::fs::read(&path).unwrap();
    let info = read_header(&path).unwrap();
    let mid = (info.body_offset as usize + bytes.len()) / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let info = read_header(&path).unwrap();
    for skip in [false, true] {
        let kv = dir.path().join(format!("r{skip}.redb"));
        let opts = RestoreOptions {
            skip_hash_check: skip,
            ..Default::default()
        };
        assert!(
            restore_kv(&info, &kv, opts, &mut |_| {}).is_err(),
            "skip_hash_check={skip}"
        );
    }
}

/// A header edited consistently (CRC and digest recomputed) but lying about its counts is
/// still refused: the full read recounts.
#[test]
fn header_counts_are_checked_against_the_body() {
    use prost::Message;
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let s = filled(dir.path());
    let path = dir.path().join("snap.db");
    save(&s, &path);
    let good = std::fs::read(&path).unwrap();
    let info = read_header(&path).unwrap();
    for (what, edit) in [
        (
            "live keys",
            (|h: &mut cairn_storage::snapshot::SnapshotHeader| h.key_count += 1) as fn(&mut _),
        ),
        ("leases", |h| h.lease_count += 1),
    ] {
        let mut h = info.header.clone();
        edit(&mut h);
        let head = h.encode_to_vec();
        let old_len = (info.body_offset - 16) as usize;
        assert_eq!(head.len(), old_len, "the edit keeps the header length");
        let mut bad = good.clone();
        bad[12..12 + old_len].copy_from_slice(&head);
        bad[12 + old_len..16 + old_len].copy_from_slice(&crc32c::crc32c(&head).to_be_bytes());
        let n = bad.len() - 32;
        let digest = sha2::Sha256::digest(&bad[..n]);
        bad[n..].copy_from_slice(&digest);
        std::fs::write(&path, &bad).unwrap();
        let e = verify(&path, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains(what), "{e}");
    }
}
