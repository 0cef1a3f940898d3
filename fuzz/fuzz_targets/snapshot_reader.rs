//! Fuzz target: any bytes as a snapshot file, read as `cairnutl snapshot status` and
//! `snapshot verify` read one. Each input is tried as it is (the digest must refuse any
//! change) and re-sealed (header CRC and digest recomputed, so the header, zstd frame,
//! record, count and HashKV checks face the bytes themselves). A panic is a crash; a refusal
//! is the expected answer.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("cairn-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("case.snap");
    for reseal in [false, true] {
        let mut image = data.to_vec();
        if reseal {
            cairn_storage::snapshot::format::reseal(&mut image);
        }
        std::fs::write(&path, &image).expect("write the case");
        let _ = cairn_storage::snapshot::read_header(&path);
        let _ = cairn_storage::snapshot::verify(&path, &mut |_| {});
    }
});
