//! Reading databases the test writer lays out as bbolt would: names, entries in key order,
//! branch levels, overflow values, inline and nested buckets, the meta page chosen.

mod common;

use cairn_bbolt::{Db, Error};
use common::*;

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    format!("value of {i}").into_bytes()
}

fn many(n: usize) -> Tree {
    (0..n).fold(Tree::new(), |t, i| t.value(key(i), value(i)))
}

#[test]
fn empty_database() {
    let image = build(&Tree::new(), 4096);
    let (_t, db) = open(&image);
    let db = db.unwrap();
    assert_eq!((db.page_size(), db.txid(), db.size()), (4096, 4, 3 * 4096));
    assert!(db.bucket_names().unwrap().is_empty());
    assert_eq!(entries(&db, &[b"key"]).unwrap(), None);
    assert_eq!(entries(&db, &[]).unwrap(), Some(vec![]));
    db.check().unwrap();
}

#[test]
fn bucket_names_come_in_key_order() {
    let tree = ["meta", "key", "lease", "members", "alarm", "auth"]
        .iter()
        .fold(Tree::new(), |t, name| {
            t.bucket(name, Tree::new().value("k", "v"))
        });
    let (_t, db) = open(&build(&tree, 4096));
    let db = db.unwrap();
    let names = db.bucket_names().unwrap();
    let names: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    assert_eq!(
        names,
        [
            &b"alarm"[..],
            b"auth",
            b"key",
            b"lease",
            b"members",
            b"meta"
        ]
    );
    let roots = entries(&db, &[]).unwrap().unwrap();
    assert!(
        roots.iter().all(|(_, v)| v.is_none()),
        "top-level entries are buckets"
    );
    db.check().unwrap();
}

#[test]
fn five_thousand_keys_under_a_branch_level() {
    let image = build(&Tree::new().bucket("key", many(5000)), 4096);
    let kinds = pages(&image, 4096);
    assert!(kinds.iter().any(|p| p.1 == BRANCH), "a branch page");
    assert!(
        kinds.iter().filter(|p| p.1 == LEAF).count() > 20,
        "many leaves"
    );
    let (_t, db) = open(&image);
    let db = db.unwrap();
    let got = entries(&db, &[b"key"]).unwrap().unwrap();
    let want: Vec<_> = (0..5000).map(|i| (key(i), Some(value(i)))).collect();
    assert_eq!(got, want);
    db.check().unwrap();
    assert_eq!(exercise(&db).unwrap(), 5000);
}

#[test]
fn three_levels_of_small_pages() {
    let image = build(&Tree::new().bucket("key", many(5000)), 1024);
    // a branch page whose children are branch pages
    let branches: Vec<u64> = pages(&image, 1024)
        .into_iter()
        .filter(|p| p.1 == BRANCH)
        .map(|p| p.0)
        .collect();
    let child_of_root = {
        let root = *branches.last().unwrap();
        let at = element_at(1024, root, 0) + 8;
        u64::from_le_bytes(image[at..at + 8].try_into().unwrap())
    };
    assert!(branches.contains(&child_of_root), "three levels");
    let (_t, db) = open(&image);
    let db = db.unwrap();
    assert_eq!(db.page_size(), 1024);
    let got = entries(&db, &[b"key"]).unwrap().unwrap();
    assert_eq!(got.len(), 5000);
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    db.check().unwrap();
}

#[test]
fn a_value_larger_than_a_page() {
    let big: Vec<u8> = (0..3 * 4096 + 100).map(|i| (i % 251) as u8).collect();
    let tree = Tree::new().bucket(
        "key",
        Tree::new()
            .value("a", "1")
            .value("big", &big)
            .value("c", "3"),
    );
    let image = build(&tree, 4096);
    assert!(
        pages(&image, 4096).iter().any(|p| p.3 >= 3),
        "overflow pages"
    );
    let (_t, db) = open(&image);
    let db = db.unwrap();
    let got = entries(&db, &[b"key"]).unwrap().unwrap();
    assert_eq!(got[1], (b"big".to_vec(), Some(big)));
    assert_eq!(got.len(), 3);
    db.check().unwrap();
}

#[test]
fn inline_and_nested_buckets() {
    let small = Tree::new().value("s1", "a").value("s2", "b");
    let deeper = Tree::new().bucket("leaf", Tree::new().value("x", "1").value("y", "2"));
    let outer = Tree::new()
        .value("plain", "p")
        .bucket("small", small)
        .bucket("big", many(500))
        .bucket("deeper", deeper)
        .bucket("empty", Tree::new());
    let image = build(&Tree::new().bucket("outer", outer), 4096);
    let (_t, db) = open(&image);
    let db = db.unwrap();
    let top = entries(&db, &[b"outer"]).unwrap().unwrap();
    let listed: Vec<(&[u8], bool)> = top.iter().map(|(k, v)| (&k[..], v.is_some())).collect();
    assert_eq!(
        listed,
        [
            (&b"big"[..], false),
            (b"deeper", false),
            (b"empty", false),
            (b"plain", true),
            (b"small", false)
        ]
    );
    let small = entries(&db, &[b"outer", b"small"]).unwrap().unwrap();
    assert_eq!(
        small,
        [
            (b"s1".to_vec(), Some(b"a".to_vec())),
            (b"s2".to_vec(), Some(b"b".to_vec()))
        ]
    );
    assert_eq!(
        entries(&db, &[b"outer", b"big"]).unwrap().unwrap().len(),
        500
    );
    assert_eq!(entries(&db, &[b"outer", b"empty"]).unwrap(), Some(vec![]));
    let leaf = entries(&db, &[b"outer", b"deeper", b"leaf"])
        .unwrap()
        .unwrap();
    assert_eq!(leaf.len(), 2);
    // no such bucket, or a plain key where a bucket is asked for
    assert_eq!(entries(&db, &[b"outer", b"nope"]).unwrap(), None);
    assert_eq!(entries(&db, &[b"outer", b"plain"]).unwrap(), None);
    assert_eq!(entries(&db, &[b"outer", b"small", b"s1"]).unwrap(), None);
    assert_eq!(entries(&db, &[b"nope"]).unwrap(), None);
    db.check().unwrap();
    assert_eq!(exercise(&db).unwrap(), 5 + 2 + 500 + 1 + 2);
}

#[test]
fn a_bucket_found_under_a_branch_level_of_the_root() {
    // enough top-level buckets that the root bucket itself needs a branch page
    let tree = (0..300).fold(Tree::new(), |t, i| {
        t.bucket(
            format!("bucket-{i:04}-{}", "x".repeat(40)),
            Tree::new().value("k", format!("{i}")),
        )
    });
    let image = build(&tree, 1024);
    let (_t, db) = open(&image);
    let db = db.unwrap();
    assert_eq!(db.bucket_names().unwrap().len(), 300);
    let name = format!("bucket-0217-{}", "x".repeat(40));
    let got = entries(&db, &[name.as_bytes()]).unwrap().unwrap();
    assert_eq!(got, [(b"k".to_vec(), Some(b"217".to_vec()))]);
    db.check().unwrap();
}

#[test]
fn meta_0_damaged_uses_meta_1() {
    for page_size in [1024, 4096, 16384] {
        let mut image = build(&Tree::new().bucket("key", many(50)), page_size);
        image[16 + 48] ^= 0x55; // meta 0's txid: its checksum fails
        let (_t, db) = open(&image);
        let db = db.unwrap();
        assert_eq!((db.txid(), db.page_size()), (3, page_size as u32));
        db.check().unwrap();
        // meta 0's page size field damaged as well: meta 1 is found by probing
        image[16 + 8] ^= 0xFF;
        let (_t, db) = open(&image);
        assert_eq!(db.unwrap().page_size(), page_size as u32);
    }
}

#[test]
fn the_higher_txid_wins() {
    // two trees in one file; each meta page names one
    let image = |txid_a, txid_b| {
        let mut w = Writer::new(4096);
        let a = w.bucket(&Tree::new().bucket("from-a", Tree::new()));
        let b = w.bucket(&Tree::new().bucket("from-b", Tree::new()));
        w.finish([
            Meta {
                root: a,
                txid: txid_a,
                freelist: NO_FREELIST,
            },
            Meta {
                root: b,
                txid: txid_b,
                freelist: NO_FREELIST,
            },
        ])
    };
    for (txid_a, txid_b, want) in [(7, 8, "from-b"), (9, 8, "from-a"), (5, 5, "from-a")] {
        let (_t, db) = open(&image(txid_a, txid_b));
        let db = db.unwrap();
        assert_eq!(db.bucket_names().unwrap(), [want.as_bytes().to_vec()]);
        assert_eq!(db.txid(), txid_a.max(txid_b));
        db.check().unwrap();
    }
}

#[test]
fn a_stored_freelist_accounts_for_every_page() {
    let mut w = Writer::new(4096);
    let root = w.bucket(&Tree::new().bucket("key", many(300)));
    let free = w.free_pages(3);
    let freelist = w.freelist(&free);
    let image = w.finish(metas(root, freelist));
    let (_t, db) = open(&image);
    db.unwrap().check().unwrap();
}

#[test]
fn a_freelist_past_64k_ids_keeps_its_count_in_the_data() {
    let mut w = Writer::new(512);
    let root = w.bucket(&Tree::new().bucket("key", many(10)));
    let free = w.free_pages(70_000);
    let freelist = w.freelist(&free);
    let image = w.finish(metas(root, freelist));
    let (_t, db) = open(&image);
    db.unwrap().check().unwrap();
}

#[test]
fn a_page_neither_reachable_nor_free_is_leaked() {
    let mut w = Writer::new(4096);
    let root = w.bucket(&Tree::new().bucket("key", many(10)));
    let mut free = w.free_pages(3);
    let leaked = free.remove(1);
    let freelist = w.freelist(&free);
    let image = w.finish(metas(root, freelist));
    let (_t, db) = open(&image);
    let err = db.unwrap().check().unwrap_err().to_string();
    assert_eq!(
        err,
        format!("page {leaked} is neither reachable nor in the freelist (a leaked page)")
    );
}

#[test]
fn a_snapshot_is_read_without_its_digest() {
    let mut image = build(&Tree::new().bucket("key", many(100)), 4096);
    let db_len = image.len() as u64;
    image.extend_from_slice(&[0xAB; 32]);
    let t = write_temp(&image);
    let db = Db::open(&t.path, db_len).unwrap();
    assert_eq!(db.size(), db_len);
    assert_eq!(exercise(&db).unwrap(), 100);
}

#[test]
fn a_callback_error_stops_the_walk() {
    #[derive(Debug)]
    enum Mine {
        Stop,
        Db,
    }
    impl From<Error> for Mine {
        fn from(_: Error) -> Self {
            Mine::Db
        }
    }
    let (_t, db) = open(&build(&Tree::new().bucket("key", many(1000)), 4096));
    let db = db.unwrap();
    let mut n = 0;
    let r = db.for_each::<Mine>(&[b"key"], &mut |_, _| {
        n += 1;
        if n == 10 { Err(Mine::Stop) } else { Ok(()) }
    });
    assert!(matches!(r, Err(Mine::Stop)));
    assert_eq!(n, 10);
}
