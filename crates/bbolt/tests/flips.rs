//! Every single-byte flip, every truncation and a set of field overwrites of a small database
//! that has a bit of everything (branch level, overflow value, inline and nested buckets, a
//! stored freelist): each must end in `Ok` or an `Err`, never a panic, and whatever `check`
//! accepts, `bucket_names` and `for_each` must read.

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use cairn_bbolt::Db;
use common::*;

const PS: usize = 512;

fn small() -> Vec<u8> {
    let a = (0..40).fold(Tree::new(), |t, i| {
        t.value(format!("a-{i:03}"), format!("value {i}"))
    });
    let nested = Tree::new()
        .bucket(
            "d",
            (0..5).fold(Tree::new(), |t, i| t.value(format!("d{i}"), "x".repeat(30))),
        )
        .bucket("e", Tree::new().value("e1", "1"));
    let tree = Tree::new()
        .bucket("a", a)
        .bucket("b", Tree::new().value("b1", "1").value("b2", "2"))
        .bucket("c", nested)
        .bucket("f", Tree::new().value("big", vec![7u8; 1200]));
    let mut w = Writer::new(PS);
    let root = w.bucket(&tree);
    let free = w.free_pages(2);
    let freelist = w.freelist(&free);
    w.finish(metas(root, freelist))
}

/// The file of the cases: the image, changed in place for each case and changed back.
struct Case {
    _t: Temp,
    path: std::path::PathBuf,
    file: File,
    len: u64,
}

impl Case {
    fn new(image: &[u8]) -> Case {
        let t = write_temp(image);
        let file = File::options()
            .write(true)
            .open(&t.path)
            .expect("open the case");
        Case {
            path: t.path.clone(),
            _t: t,
            file,
            len: image.len() as u64,
        }
    }

    /// Writes `bytes` at `offset`, reads the file as a caller would, writes `original` back:
    /// a description of what went wrong, if anything did that must not.
    fn try_patch(&self, offset: usize, bytes: &[u8], original: &[u8]) -> Option<String> {
        self.file.write_all_at(bytes, offset as u64).expect("patch");
        let outcome = try_file(&self.path, self.len);
        self.file
            .write_all_at(original, offset as u64)
            .expect("restore");
        outcome
    }
}

fn try_file(path: &Path, len: u64) -> Option<String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let Ok(db) = Db::open(path, len) else {
            return None;
        };
        let checked = db.check();
        let walked = walk_all(&db);
        match (checked, walked) {
            (Ok(()), Err(e)) => Some(format!("check passed but a read failed: {e}")),
            _ => None,
        }
    }));
    outcome.unwrap_or_else(|_| Some("panicked".into()))
}

#[test]
fn the_small_database_reads() {
    let image = small();
    let kinds = pages(&image, PS);
    assert!(kinds.iter().any(|p| p.1 == BRANCH) && kinds.iter().any(|p| p.3 > 0));
    let (_t, db) = open(&image);
    assert_eq!(exercise(&db.unwrap()).unwrap(), 40 + 2 + 2 + 5 + 1 + 1);
}

#[test]
fn every_byte_flip_is_ok_or_an_error() {
    let image = small();
    let case = Case::new(&image);
    let mut failures = Vec::new();
    for offset in 0..image.len() {
        for mask in [0xFF, 0x01, 0x80] {
            let original = &image[offset..offset + 1];
            if let Some(why) = case.try_patch(offset, &[original[0] ^ mask], original) {
                failures.push(format!("offset {offset} ^ {mask:#x}: {why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases: {:#?}",
        failures.len(),
        &failures[..failures.len().min(20)]
    );
}

#[test]
fn every_truncation_is_an_error() {
    let image = small();
    let case = Case::new(&image);
    for len in (0..image.len()).rev() {
        case.file.set_len(len as u64).expect("truncate");
        let outcome =
            catch_unwind(|| Db::open(&case.path, len as u64).and_then(|db| exercise(&db)));
        match outcome {
            Ok(Err(_)) => {}
            Ok(Ok(_)) => panic!("a database cut to {len} bytes was accepted"),
            Err(_) => panic!("a database cut to {len} bytes panicked"),
        }
    }
}

#[test]
fn field_overwrites_are_ok_or_an_error() {
    let image = small();
    let case = Case::new(&image);
    let mut failures = Vec::new();
    for offset in (0..image.len() - 4).step_by(2) {
        for value in [u32::MAX, 0, 0x7FFF_FFFF, 0xFFFF, 1, 2] {
            // the meta page(s) touched are re-sealed, so the damage reaches the pages
            let (from, to) = (offset / PS * PS, (offset + 4).div_ceil(PS) * PS);
            let (from, to) = if from < 2 * PS {
                (from, to.min(2 * PS).max(offset + 4))
            } else {
                (offset, offset + 4)
            };
            let mut bad = image[from..to].to_vec();
            bad[offset - from..offset - from + 4].copy_from_slice(&value.to_le_bytes());
            for which in 0..2 {
                let at = which * PS + 16;
                if at >= from && at + 64 <= to {
                    let at = at - from;
                    let sum = fnv1a64(&bad[at..at + 56]);
                    bad[at + 56..at + 64].copy_from_slice(&sum.to_le_bytes());
                }
            }
            if let Some(why) = case.try_patch(from, &bad, &image[from..to]) {
                failures.push(format!("offset {offset} = {value:#x}: {why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases: {:#?}",
        failures.len(),
        &failures[..failures.len().min(20)]
    );
}
