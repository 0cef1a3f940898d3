//! Reading a snapshot: the header alone (instant, for `status`), or the whole body as a
//! stream with every check (`verify`, `restore`). Memory is bounded by the number of keys
//! (the index needed to recompute HashKV), never by the file size.

use std::fs::File;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use prost::Message;
use prost::bytes::Bytes;
use sha2::{Digest, Sha256};

use super::error::{SnapshotError, io};
use super::format::*;
use super::records::{Cut, Records};
use crate::index::TreeIndex;
use crate::revision::Revision;

/// A snapshot whose header checked out.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    pub header: SnapshotHeader,
    pub file_size: u64,
    /// Where the zstd body starts.
    pub body_offset: u64,
}

/// What a full read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BodySummary {
    pub records: u64,
    pub kv_rows: u64,
    pub leases: u64,
    pub alarms: u64,
    pub users: u64,
    pub roles: u64,
    /// HashKV recomputed from the rows.
    pub hash: u32,
}

/// A single record may not claim more than this (a value is at most a few MiB in practice).
const MAX_RECORD_LEN: u64 = 1 << 30;

/// Reads and checks the header: magic, size rule, header length and checksum, format version.
pub fn read_header(path: &Path) -> Result<SnapshotInfo, SnapshotError> {
    let size = file_size(path)?;
    let mut f = File::open(path).map_err(io(path))?;
    let mut magic = [0u8; 8];
    let got = read_up_to(&mut f, &mut magic).map_err(io(path))?;
    if got < 8 || magic[..7] != MAGIC[..7] {
        return Err(SnapshotError::BadMagic(path.to_path_buf()));
    }
    if magic[7] > MAGIC[7] {
        return Err(SnapshotError::FutureVersion {
            path: path.to_path_buf(),
            found: magic[7] as u32,
            supported: FORMAT_VERSION,
        });
    }
    if size % ALIGN != DIGEST_LEN as u64 {
        return Err(SnapshotError::BadSize {
            path: path.to_path_buf(),
            size,
        });
    }
    let mut len = [0u8; 4];
    f.read_exact(&mut len).map_err(io(path))?;
    let claimed = u32::from_be_bytes(len) as u64;
    let available = size.saturating_sub(12 + 4 + DIGEST_LEN as u64);
    if claimed > available || claimed > MAX_HEADER_LEN as u64 {
        return Err(SnapshotError::HeaderLength {
            path: path.to_path_buf(),
            claimed,
            available,
        });
    }
    let mut head = vec![0u8; claimed as usize];
    f.read_exact(&mut head).map_err(io(path))?;
    let mut crc = [0u8; 4];
    f.read_exact(&mut crc).map_err(io(path))?;
    if crc32c::crc32c(&head) != u32::from_be_bytes(crc) {
        return Err(SnapshotError::HeaderChecksum(path.to_path_buf()));
    }
    let header =
        SnapshotHeader::decode(head.as_slice()).map_err(|e| SnapshotError::HeaderDecode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if header.format_version > FORMAT_VERSION {
        return Err(SnapshotError::FutureVersion {
            path: path.to_path_buf(),
            found: header.format_version,
            supported: FORMAT_VERSION,
        });
    }
    if header.compression != COMPRESSION_ZSTD {
        return Err(SnapshotError::HeaderDecode {
            path: path.to_path_buf(),
            reason: format!("unknown compression {:?}", header.compression),
        });
    }
    Ok(SnapshotInfo {
        path: path.to_path_buf(),
        header,
        file_size: size,
        body_offset: 16 + claimed,
    })
}

/// The size of a snapshot file, refusing a directory or an empty file (either format).
pub(super) fn file_size(path: &Path) -> Result<u64, SnapshotError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if meta.is_dir() {
        return Err(SnapshotError::IsDirectory(path.to_path_buf()));
    }
    match meta.len() {
        0 => Err(SnapshotError::Empty(path.to_path_buf())),
        size => Ok(size),
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Hashes and counts every byte read through it.
struct Hashing<R> {
    inner: R,
    sha: Option<Sha256>,
    read: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(sha) = &mut self.sha {
            sha.update(&buf[..n]);
        }
        self.read += n as u64;
        Ok(n)
    }
}

/// etcd's `mvccpb.KeyValue` with its byte fields as slices of the record rather than copies;
/// same name, fields and numbers as the generated type, so it checks (and words a decode
/// error) the same.
#[derive(Clone, PartialEq, prost::Message)]
struct KeyValue {
    #[prost(bytes = "bytes", tag = "1")]
    key: Bytes,
    #[prost(int64, tag = "2")]
    create_revision: i64,
    #[prost(int64, tag = "3")]
    mod_revision: i64,
    #[prost(int64, tag = "4")]
    version: i64,
    #[prost(bytes = "bytes", tag = "5")]
    value: Bytes,
    #[prost(int64, tag = "6")]
    lease: i64,
}

/// Recomputes HashKV from rows in revision order, in one pass: rows above the compact
/// revision always count; rows at or below it count only if a compaction at the snapshot
/// revision keeps them, which is known at the end, so their CRCs wait and are combined then.
pub(super) struct HashRebuild {
    revision: i64,
    compact_revision: i64,
    index: TreeIndex,
    low: Vec<(Revision, u32, usize)>,
    high_crc: u32,
    high_len: usize,
}

impl HashRebuild {
    /// For rows up to `revision` (i64::MAX when it is known only at the end: see
    /// [`HashRebuild::finish_at`]) in a store compacted at `compact_revision`.
    pub(super) fn new(revision: i64, compact_revision: i64) -> Self {
        HashRebuild {
            revision,
            compact_revision,
            index: TreeIndex::default(),
            low: Vec::new(),
            high_crc: 0,
            high_len: 0,
        }
    }

    /// [`HashRebuild::finish`] at `revision`, for a reader that learns it from the last row.
    pub(super) fn finish_at(mut self, revision: i64) -> (u32, i64) {
        self.revision = revision;
        self.finish()
    }

    pub(super) fn row(
        &mut self,
        rev: Revision,
        tombstone: bool,
        key: &[u8],
        value: &Bytes,
    ) -> Result<(), String> {
        let kv = KeyValue::decode(value.clone())
            .map_err(|e| format!("KeyValue at revision {}: {e}", rev.main))?;
        self.index
            .restore(&kv.key, kv.create_revision, rev, kv.version, tombstone);
        if rev.main > self.revision {
            return Err(format!(
                "row at revision {} is past the snapshot revision {}",
                rev.main, self.revision
            ));
        }
        if rev.main <= self.compact_revision {
            // kept or not is known only at the end: remember this row's own CRC
            let crc = crc32c::crc32c_append(crc32c::crc32c(key), value);
            self.low.push((rev, crc, key.len() + value.len()));
        } else {
            // always hashed: extend the running CRC of everything above the compact revision
            self.high_crc = crc32c::crc32c_append(crc32c::crc32c_append(self.high_crc, key), value);
            self.high_len += key.len() + value.len();
        }
        Ok(())
    }

    /// The HashKV and the number of live keys at the snapshot revision.
    pub(super) fn finish(self) -> (u32, i64) {
        // only rows at or below the compact revision need the set (one entry per key)
        let keep = if self.low.is_empty() {
            Default::default()
        } else {
            self.index.keep(self.revision)
        };
        let live = self
            .index
            .count(&crate::index::KeyRange::all(), self.revision) as i64;
        let mut crc = crc32c::crc32c(b"key");
        for (rev, row_crc, len) in self.low {
            if keep.is_empty() || keep.contains(&rev) {
                crc = crc32c::crc32c_combine(crc, row_crc, len);
            }
        }
        (
            crc32c::crc32c_combine(crc, self.high_crc, self.high_len),
            live,
        )
    }
}

/// Reads the whole body with every check, handing each record to `visit` in order.
/// `check_digest = false` skips only the SHA-256 comparison (`--skip-hash-check`).
pub fn read_body(
    info: &SnapshotInfo,
    check_digest: bool,
    progress: &mut dyn FnMut(u64),
    visit: &mut dyn FnMut(Record) -> Result<(), SnapshotError>,
) -> Result<BodySummary, SnapshotError> {
    let path = info.path.as_path();
    let body_err = |record: u64, reason: String| SnapshotError::Body {
        path: path.to_path_buf(),
        record,
        reason,
    };
    let mut f = File::open(path).map_err(io(path))?;
    f.seek(SeekFrom::Start(0)).map_err(io(path))?;
    let content_len = info.file_size - DIGEST_LEN as u64;
    let mut src = Hashing {
        inner: f.take(content_len),
        sha: check_digest.then(Sha256::new),
        read: 0,
    };
    let mut prefix = vec![0u8; info.body_offset as usize];
    src.read_exact(&mut prefix).map_err(io(path))?;

    let z = zstd::stream::read::Decoder::new(src)
        .map_err(|e| body_err(0, e.to_string()))?
        .single_frame();
    let mut z = Records::new(z);
    let h = &info.header;
    let mut rebuild = HashRebuild::new(h.revision, h.compact_revision);
    let mut summary = BodySummary::default();
    let mut end: Option<EndRow> = None;
    let mut last_progress = 0u64;
    while let Some(len) = z
        .next_len()
        .map_err(|e| body_err(summary.records, e.to_string()))?
    {
        if end.is_some() {
            return Err(body_err(
                summary.records,
                "records after the end record".into(),
            ));
        }
        if len > MAX_RECORD_LEN {
            return Err(body_err(summary.records, format!("claims {len} bytes")));
        }
        // a lying length cannot make us allocate more than the stream really holds
        let buf = z.take(len).map_err(|e| match e {
            Cut::Read(e) => body_err(summary.records, e.to_string()),
            Cut::Short(found) => body_err(
                summary.records,
                format!("claims {len} bytes but the body ends after {found}"),
            ),
        })?;
        let rec = Record::decode(buf)
            .map_err(|e| body_err(summary.records, format!("does not decode: {e}")))?;
        match &rec.kind {
            Some(RecordKind::Kv(row)) => {
                let (rev, tombstone) = Revision::from_bytes(&row.rev_key)
                    .ok_or_else(|| body_err(summary.records, "has no revision key".to_string()))?;
                rebuild
                    .row(rev, tombstone, &row.rev_key, &row.value)
                    .map_err(|e| body_err(summary.records, e))?;
                summary.kv_rows += 1;
            }
            Some(RecordKind::Lease(_)) => summary.leases += 1,
            Some(RecordKind::Alarm(_)) => summary.alarms += 1,
            Some(RecordKind::AuthUser(_)) => summary.users += 1,
            Some(RecordKind::AuthRole(_)) => summary.roles += 1,
            Some(RecordKind::AuthMeta(_)) => {}
            Some(RecordKind::End(e)) => end = Some(e.clone()),
            None => {
                return Err(body_err(
                    summary.records,
                    "is of an unknown kind".to_string(),
                ));
            }
        }
        if end.is_none() {
            summary.records += 1;
            visit(rec)?;
        }
        let read = z.get_ref().get_ref().get_ref().read;
        if read - last_progress >= 1 << 20 {
            progress(read);
            last_progress = read;
        }
    }
    let end = end.ok_or_else(|| SnapshotError::MissingEnd(path.to_path_buf()))?;
    // what follows the frame must be the zero padding, then the digest
    let mut rest = z.into_inner().finish();
    let buffered = rest.buffer().to_vec();
    rest.consume(buffered.len());
    let mut src = rest.into_inner();
    let mut tail = buffered;
    src.read_to_end(&mut tail).map_err(io(path))?;
    if tail.len() as u64 >= ALIGN || tail.iter().any(|b| *b != 0) {
        return Err(SnapshotError::Padding {
            path: path.to_path_buf(),
            bytes: tail.len(),
        });
    }
    progress(src.read);
    if let Some(sha) = src.sha.take() {
        let mut f = src.inner.into_inner();
        let mut digest = [0u8; DIGEST_LEN];
        f.read_exact(&mut digest).map_err(io(path))?;
        let actual = sha.finalize();
        if actual.as_slice() != digest {
            return Err(SnapshotError::DigestMismatch {
                path: path.to_path_buf(),
                expected: hex(&digest),
                actual: hex(&actual),
            });
        }
    }
    if end.record_count != summary.records || h.record_count != summary.records {
        return Err(SnapshotError::CountMismatch {
            path: path.to_path_buf(),
            expected: h.record_count,
            found: summary.records,
        });
    }
    let (hash, live_keys) = rebuild.finish();
    summary.hash = hash;
    let mismatch = |what, header: i64, body: i64| SnapshotError::HeaderMismatch {
        path: path.to_path_buf(),
        what,
        header,
        body,
    };
    if h.lease_count != summary.leases {
        return Err(mismatch(
            "leases",
            h.lease_count as i64,
            summary.leases as i64,
        ));
    }
    if h.key_count != live_keys {
        return Err(mismatch("live keys", h.key_count, live_keys));
    }
    if summary.hash != h.hash || end.hash != h.hash {
        return Err(SnapshotError::HashMismatch {
            path: path.to_path_buf(),
            expected: h.hash,
            actual: summary.hash,
        });
    }
    Ok(summary)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
