//! Fuzz target: any bytes as a bbolt file, read as `cairnutl snapshot status|verify` read an
//! etcd snapshot: open, the consistency check, the top-level bucket names, and `for_each`
//! over every bucket and nested bucket. The meta pages are tried as they are and re-sealed
//! (each meta page's checksum recomputed), so the page checks behind them face the bytes
//! themselves. A panic is a crash; a refusal is the expected answer.

#![no_main]

use cairn_bbolt::{Db, Error};
use libfuzzer_sys::fuzz_target;

/// Bucket visits per input, so a file of many tiny nested buckets stays quick.
const MAX_BUCKETS: usize = 256;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("cairn-fuzz-bbolt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("case.db");
    for reseal in [false, true] {
        let mut image = data.to_vec();
        if reseal {
            reseal_metas(&mut image);
        }
        std::fs::write(&path, &image).expect("write the case");
        let Ok(db) = Db::open(&path, image.len() as u64) else {
            continue;
        };
        let _ = db.check();
        let Ok(names) = db.bucket_names() else {
            continue;
        };
        let mut budget = MAX_BUCKETS;
        for name in names {
            visit(&db, vec![name], &mut budget);
        }
    }
});

/// `for_each` over the bucket at `path`, then over each bucket nested in it.
fn visit(db: &Db, path: Vec<Vec<u8>>, budget: &mut usize) {
    if *budget == 0 {
        return;
    }
    *budget -= 1;
    let refs: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
    let mut nested = Vec::new();
    let _ = db.for_each::<Error>(&refs, &mut |k, v| {
        if v.is_none() {
            nested.push(k.to_vec());
        }
        Ok(())
    });
    for k in nested {
        let mut p = path.clone();
        p.push(k);
        visit(db, p, budget);
    }
}

/// Recomputes the FNV-1a checksum of the meta struct of page 0 and of page 1 at the page
/// size meta 0 claims (4096 if it claims nothing usable).
fn reseal_metas(image: &mut [u8]) {
    let claimed = image
        .get(24..28)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        .filter(|p| p.is_power_of_two() && (512..=1 << 16).contains(p))
        .unwrap_or(4096);
    for at in [16, claimed + 16] {
        if let Some(meta) = image.get_mut(at..at + 64) {
            let sum = meta[..56].iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
            meta[56..].copy_from_slice(&sum.to_le_bytes());
        }
    }
}
