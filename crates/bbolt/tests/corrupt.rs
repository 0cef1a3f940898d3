//! Damaged and hostile files: each is refused with an error naming the page and what is
//! wrong, by `open`, by `check`, and (where the damage is on its path) by `for_each`.

mod common;

use cairn_bbolt::{Db, Error};
use common::*;

const PS: usize = 4096;

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

/// 5,000 keys in `key` (a branch page over many leaves) and a small `meta` bucket.
fn standard() -> Vec<u8> {
    let keys = (0..5000).fold(Tree::new(), |t, i| t.value(key(i), b"v"));
    build(
        &Tree::new()
            .bucket("key", keys)
            .bucket("meta", Tree::new().value("m", "1")),
        PS,
    )
}

fn put_u16(image: &mut [u8], at: usize, v: u16) {
    image[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(image: &mut [u8], at: usize, v: u32) {
    image[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(image: &mut [u8], at: usize, v: u64) {
    image[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u32(image: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(image[at..at + 4].try_into().unwrap())
}

fn get_u64(image: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(image[at..at + 8].try_into().unwrap())
}

/// The message of the check's error (the file opens).
fn check_error(image: &[u8]) -> String {
    let (_t, db) = open(image);
    db.unwrap().check().unwrap_err().to_string()
}

/// The message of `for_each(["key"])`'s error.
fn for_each_error(image: &[u8]) -> String {
    let (_t, db) = open(image);
    entries(&db.unwrap(), &[b"key"]).unwrap_err().to_string()
}

fn open_error(image: &[u8]) -> Error {
    open(image).1.unwrap_err()
}

#[test]
fn not_a_bbolt_file() {
    for image in [
        b"hello, this is not a database\n".repeat(400),
        Vec::new(),
        vec![0; 79],
        vec![0; 3 * PS],
    ] {
        let err = open_error(&image);
        assert!(matches!(err, Error::NotBbolt(_)), "{err}");
    }
    let err = open_error(&b"x".repeat(10_000)).to_string();
    assert!(
        err.starts_with("meta pages 0 and 1: bad magic number"),
        "{err}"
    );
}

#[test]
fn both_meta_checksums_bad() {
    let mut image = standard();
    image[16 + 20] ^= 1;
    image[PS + 16 + 20] ^= 1;
    let err = open_error(&image);
    assert!(matches!(err, Error::NotBbolt(_)));
    assert!(
        err.to_string()
            .starts_with("meta pages 0 and 1: bad checksum"),
        "{err}"
    );
}

#[test]
fn a_truncated_file() {
    let image = standard();
    let len = image.len();
    for cut in [
        0,
        10,
        79,
        80,
        100,
        PS,
        PS + 80,
        2 * PS,
        2 * PS + 1,
        len / 2,
        len - PS,
        len - 1,
    ] {
        let (_t, db) = open(&image[..cut]);
        let err = db.and_then(|db| exercise(&db)).unwrap_err().to_string();
        assert!(!err.is_empty());
    }
    let err = open_error(&image[..len - 1]).to_string();
    assert!(
        err.starts_with("the database is truncated: meta page 0 counts"),
        "{err}"
    );
}

#[test]
fn a_length_past_the_end_of_the_file() {
    let image = standard();
    let t = write_temp(&image);
    let err = Db::open(&t.path, image.len() as u64 + 1).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn a_branch_pointing_to_itself() {
    let mut image = standard();
    let branch = find_page(&image, PS, BRANCH);
    put_u64(&mut image, element_at(PS, branch, 0) + 8, branch);
    let want = format!("page {branch} reached twice (a cycle or a shared page)");
    assert_eq!(check_error(&image), want);
    assert_eq!(for_each_error(&image), want);
}

#[test]
fn a_cycle_on_the_path_to_a_bucket() {
    let tree = (0..300).fold(Tree::new(), |t, i| {
        t.bucket(format!("bucket-{i:04}-{}", "x".repeat(40)), Tree::new())
    });
    let mut image = build(&tree, 1024);
    let root = get_u64(&image, 16 + 16);
    put_u64(&mut image, element_at(1024, root, 0) + 8, root);
    let (_t, db) = open(&image);
    let db = db.unwrap();
    let name = format!("bucket-0000-{}", "x".repeat(40));
    let err = entries(&db, &[name.as_bytes()]).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("page {root} reached twice (a cycle or a shared page)")
    );
}

#[test]
fn two_branch_elements_sharing_a_child() {
    let mut image = standard();
    let branch = find_page(&image, PS, BRANCH);
    let first_child = get_u64(&image, element_at(PS, branch, 0) + 8);
    put_u64(&mut image, element_at(PS, branch, 1) + 8, first_child);
    let want = format!("page {first_child} reached twice (a cycle or a shared page)");
    assert_eq!(check_error(&image), want);
}

#[test]
fn a_page_past_the_high_water_mark() {
    let mut image = standard();
    let hwm = (image.len() / PS) as u64;
    let branch = find_page(&image, PS, BRANCH);
    put_u64(&mut image, element_at(PS, branch, 2) + 8, hwm + 5);
    let want = format!(
        "page {} is past the high-water mark {hwm} (element 2 of branch page {branch} points to it)",
        hwm + 5
    );
    assert_eq!(check_error(&image), want);
    assert_eq!(for_each_error(&image), want);
    // a meta page where a tree page belongs
    put_u64(&mut image, element_at(PS, branch, 2) + 8, 1);
    assert!(check_error(&image).starts_with("page 1 is a meta page, yet element 2"));
}

#[test]
fn an_element_count_too_large_for_the_page() {
    let mut image = standard();
    let leaf = find_page(&image, PS, LEAF);
    put_u16(&mut image, leaf as usize * PS + 10, 0xFFF0);
    let want = format!("page {leaf}: 65520 elements of 16 bytes do not fit in its 4096 bytes");
    assert_eq!(check_error(&image), want);
}

#[test]
fn a_key_running_past_the_page() {
    let mut image = standard();
    let leaf = find_page(&image, PS, LEAF);
    put_u32(&mut image, element_at(PS, leaf, 3) + 8, 4000);
    let err = check_error(&image);
    assert!(
        err.starts_with(&format!(
            "page {leaf}: element 3's key runs past the end of the page (offset "
        )),
        "{err}"
    );
    assert!(err.ends_with(" of 4096)"), "{err}");
}

#[test]
fn a_key_out_of_order() {
    let mut image = standard();
    let leaf = find_page(&image, PS, LEAF);
    // swap the bytes of the keys of elements 1 and 2 (same length)
    let key_at = |image: &[u8], i| {
        element_at(PS, leaf, i) + get_u32(image, element_at(PS, leaf, i) + 4) as usize
    };
    let (a, b) = (key_at(&image, 1), key_at(&image, 2));
    let ka = image[a..a + 10].to_vec();
    let kb = image[b..b + 10].to_vec();
    image[a..a + 10].copy_from_slice(&kb);
    image[b..b + 10].copy_from_slice(&ka);
    let want = format!(
        "page {leaf}: element 2's key is not greater than the key before it (keys must be strictly ascending)"
    );
    assert_eq!(check_error(&image), want);
    assert_eq!(for_each_error(&image), want);
}

#[test]
fn a_branch_key_above_its_childs_first_key() {
    let mut image = standard();
    let branch = find_page(&image, PS, BRANCH);
    let e = element_at(PS, branch, 3);
    let k = e + get_u32(&image, e) as usize;
    // below the child's first key is still in order (bbolt's check asks no more)
    image[k + 9] -= 1; // still above element 2's key
    let (_t, db) = open(&image);
    db.unwrap().check().unwrap();
    // above it is not: the child holds a key its branch says it cannot
    image[k + 9] += 2; // still below element 4's key
    let child = get_u64(&image, e + 8);
    let want = format!(
        "page {child}: its first key is below the key element 3 of branch page {branch} holds for it"
    );
    assert_eq!(check_error(&image), want);
    assert_eq!(for_each_error(&image), want);
}

#[test]
fn an_empty_page_under_a_branch() {
    let mut image = standard();
    let branch = find_page(&image, PS, BRANCH);
    let child = get_u64(&image, element_at(PS, branch, 1) + 8);
    put_u16(&mut image, child as usize * PS + 10, 0);
    let want = format!("page {child} is empty, yet element 1 of branch page {branch} points to it");
    assert_eq!(check_error(&image), want);
}

#[test]
fn wrong_page_headers() {
    let image = standard();
    let leaf = find_page(&image, PS, LEAF);
    let at = leaf as usize * PS;
    let mut bad_type = image.clone();
    put_u16(&mut bad_type, at + 8, 0x08);
    assert!(
        check_error(&bad_type).ends_with(
            "is a page of unknown type (flags 0x8) where a branch or leaf page was expected"
        ),
        "{}",
        check_error(&bad_type)
    );
    let mut bad_id = image.clone();
    put_u64(&mut bad_id, at, leaf + 1);
    assert!(check_error(&bad_id).starts_with(&format!(
        "page {leaf}: its header says it is page {}",
        leaf + 1
    )));
    let mut bad_overflow = image.clone();
    put_u32(&mut bad_overflow, at + 12, 1_000_000);
    assert_eq!(
        check_error(&bad_overflow),
        format!(
            "page {leaf}: its 1000000 overflow pages run past the high-water mark {}",
            image.len() / PS
        )
    );
    let mut bad_flags = image;
    put_u32(&mut bad_flags, element_at(PS, leaf, 0), 4);
    assert_eq!(
        check_error(&bad_flags),
        format!("page {leaf}: element 0 has unknown flags 0x4")
    );
}

#[test]
fn a_tree_deeper_than_64_levels() {
    // page 2 is the root bucket: a chain of one-element branch pages down to a leaf
    let mut w = Writer::new(1024);
    let inline = inline_value(&[]);
    let levels = 70u64;
    for i in 0..levels {
        let body = branch_body(&[(b"a", 3 + i)]);
        assert_eq!(w.page(BRANCH, 1, &body), 2 + i);
    }
    w.page(LEAF, 1, &leaf_body(&[(BUCKET, b"a", &inline)]));
    let image = w.finish(metas(2, NO_FREELIST));
    let err = check_error(&image);
    assert!(
        err.ends_with("is more than 64 pages and buckets deep (a cycle?)"),
        "{err}"
    );
    let (_t, db) = open(&image);
    assert!(db.unwrap().bucket_names().is_err());
}

/// A root bucket of one leaf holding `elements`.
fn raw_root(elements: &[(u32, &[u8], &[u8])]) -> Vec<u8> {
    let mut w = Writer::new(1024);
    let root = w.page(LEAF, elements.len() as u16, &leaf_body(elements));
    w.finish(metas(root, NO_FREELIST))
}

#[test]
fn damaged_inline_buckets() {
    let good = inline_value(&[(0, b"k", b"v")]);
    let mut count = good.clone();
    put_u16(&mut count, 16 + 10, 50);
    let err = check_error(&raw_root(&[(BUCKET, b"b", &count)]));
    assert_eq!(
        err,
        "the inline bucket in element 0 of page 2: 50 elements of 16 bytes do not fit in its 34 bytes"
    );
    let mut branch = good.clone();
    put_u16(&mut branch, 16 + 8, BRANCH);
    let image = raw_root(&[(BUCKET, b"b", &branch)]);
    let want = "the inline bucket in element 0 of page 2 is a branch page; an inline bucket is always a leaf page";
    assert_eq!(check_error(&image), want);
    let (_t, db) = open(&image);
    assert_eq!(
        entries(&db.unwrap(), &[b"b"]).unwrap_err().to_string(),
        want
    );
    let err = check_error(&raw_root(&[(BUCKET, b"b", &good[..20])]));
    assert_eq!(
        err,
        "the inline bucket in element 0 of page 2: 4 bytes, too short for a page header (16)"
    );
    let err = check_error(&raw_root(&[(BUCKET, b"b", b"abc")]));
    assert_eq!(
        err,
        "page 2: element 0 is a bucket whose 3-byte value is shorter than a bucket header (16)"
    );
    // a bucket inside an inline bucket (bbolt never writes one)
    let inner = inline_value(&[(BUCKET, b"i", &inline_value(&[]))]);
    let image = raw_root(&[(BUCKET, b"b", &inner)]);
    let want = "the inline bucket in element 0 of page 2: element 0 is a nested bucket, which an inline bucket never holds";
    assert_eq!(check_error(&image), want);
    let (_t, db) = open(&image);
    assert_eq!(
        entries(&db.unwrap(), &[b"b", b"i"])
            .unwrap_err()
            .to_string(),
        want
    );
    // the good one reads
    let (_t, db) = open(&raw_root(&[(BUCKET, b"b", &good)]));
    assert_eq!(exercise(&db.unwrap()).unwrap(), 1);
}

#[test]
fn a_plain_key_among_the_top_level_buckets() {
    let image = raw_root(&[(0, b"x", b"y")]);
    let (_t, db) = open(&image);
    let db = db.unwrap();
    let want = "the root bucket holds the plain key \"x\" (only buckets sit at the top level)";
    assert_eq!(db.bucket_names().unwrap_err().to_string(), want);
    assert_eq!(db.check().unwrap_err().to_string(), want);
}

#[test]
fn a_meta_page_pointing_outside_the_data_pages() {
    let image = standard();
    let hwm = (image.len() / PS) as u64;
    for (offset, value, want) in [
        (16, hwm, "the root bucket's page"),
        (16, 1, "the root bucket's page 1"),
        (32, hwm + 3, "the freelist page"),
        (40, 1, "high-water mark 1 is below 2"),
    ] {
        let mut bad = image.clone();
        set_meta_u64(&mut bad, PS, 0, offset, value);
        set_meta_u64(&mut bad, PS, 1, offset, value);
        let err = open_error(&bad);
        assert!(matches!(err, Error::Corrupt(_)));
        assert!(err.to_string().contains(want), "{err}");
    }
}

#[test]
fn freelist_damage() {
    let build_with = |list: &dyn Fn(&[u64], u64) -> Vec<u64>| {
        let mut w = Writer::new(PS);
        let root = w.bucket(&Tree::new().bucket("key", Tree::new().value("a", "1")));
        let free = w.free_pages(2);
        let ids = list(&free, root);
        let freelist = w.freelist(&ids);
        (w.finish(metas(root, freelist)), freelist)
    };
    // root leaf 2, free pages 3 and 4, the freelist page 5
    let hwm = 6;
    // a reachable page listed as free
    let (image, _) = build_with(&|free, root| [free, &[root]].concat());
    assert_eq!(
        check_error(&image),
        "page 2 is in use but also in the freelist"
    );
    // listed twice
    let (image, fl) = build_with(&|free, _| [free, &free[..1]].concat());
    assert_eq!(
        check_error(&image),
        format!("freelist page {fl} lists page 3 twice")
    );
    // a meta page
    let (image, fl) = build_with(&|free, _| [free, &[0]].concat());
    assert_eq!(
        check_error(&image),
        format!("freelist page {fl} lists page 0, a meta page or the freelist itself")
    );
    // past the high-water mark
    let (image, fl) = build_with(&|free, _| [free, &[99]].concat());
    assert_eq!(
        check_error(&image),
        format!("freelist page {fl} lists page 99, past the high-water mark {hwm}")
    );
    // the meta names a leaf as the freelist
    let (mut image, _) = build_with(&|free, _| free.to_vec());
    set_meta_u64(&mut image, PS, 0, 32, 2);
    set_meta_u64(&mut image, PS, 1, 32, 2);
    assert_eq!(
        check_error(&image),
        "page 2 is a leaf page, yet the meta page names it the freelist"
    );
}
