//! The segment file: the changes of a revision range, in order, sealed.
//!
//! ```text
//! MAGIC            8 bytes  "CAIRNSG\x01"
//! body             a zstd frame (with its own checksum) of length-delimited `Change` records
//! seal             protobuf `Seal`: revision range, record count, times, SHA-256 of the body
//! seal length      u32, big endian
//! SEALED           8 bytes  "SEALED\x00\x01"
//! ```
//!
//! A segment is written as `open-<first>.part` and renamed to [`sealed_name`] once its seal is
//! written and synced (and the directory synced), so a file with a sealed name is complete; a
//! `.part` file is the tail a crash cut short, and the backup resumes after the last sealed
//! segment instead. Change records: revisions never go down; a revision with events appears
//! once (a txn's events together, as the watch delivers them); a compaction is a record at the
//! revision it was seen at.

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use cairn_proto::mvccpb::Event;
use prost::Message;
use sha2::{Digest, Sha256};
use thiserror::Error;

pub const MAGIC: [u8; 8] = *b"CAIRNSG\x01";
pub const SEALED: [u8; 8] = *b"SEALED\x00\x01";
/// A seal is small; a length past this means the file is not a segment.
const MAX_SEAL_LEN: u32 = 1 << 20;
const ZSTD_LEVEL: i32 = 3;

/// The changes at one revision; or, with no events, what the backup saw of the server's
/// leases after that revision (a lease grant or revoke does not move the revision).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Change {
    #[prost(int64, tag = "1")]
    pub revision: i64,
    /// When the backup saw it (Unix milliseconds): what `--to-time` maps to a revision.
    #[prost(int64, tag = "2")]
    pub unix_ms: i64,
    /// The revision's events, in the order the server applied them.
    #[prost(message, repeated, tag = "3")]
    pub events: Vec<Event>,
    /// A compaction seen at this point: the revision compacted to (0: none).
    #[prost(int64, tag = "4")]
    pub compacted_to: i64,
    /// The leases this revision's puts attach keys to that the backup had not seen before,
    /// with their TTLs as the server reported them then (a watch names only the ID), and the
    /// leases granted since the last look at the server's lease list.
    #[prost(message, repeated, tag = "5")]
    pub leases: Vec<LeaseSeen>,
    /// Leases gone (revoked or expired) since the last look at the server's lease list.
    #[prost(int64, repeated, tag = "6")]
    pub revoked: Vec<i64>,
    /// `leases` is every lease the server held at this point (the first look of a run): a
    /// restore past it drops the leases it does not list.
    #[prost(bool, tag = "7")]
    pub census: bool,
}

/// A lease as `LeaseTimeToLive` described it when the backup first saw a key on it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseSeen {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub granted_ttl: i64,
    /// Seconds left then (-1: already gone).
    #[prost(int64, tag = "3")]
    pub ttl: i64,
    /// When the server said so (Unix milliseconds; 0: at the change's `unix_ms`): a restore
    /// counts the time left at its target from here.
    #[prost(int64, tag = "4")]
    pub seen_unix_ms: i64,
}

/// What a sealed segment holds, written after its body.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Seal {
    /// The last revision before this segment: the previous segment's last, or the snapshot's.
    #[prost(int64, tag = "1")]
    pub after_revision: i64,
    #[prost(int64, tag = "2")]
    pub first_revision: i64,
    #[prost(int64, tag = "3")]
    pub last_revision: i64,
    #[prost(uint64, tag = "4")]
    pub records: u64,
    #[prost(int64, tag = "5")]
    pub first_unix_ms: i64,
    #[prost(int64, tag = "6")]
    pub last_unix_ms: i64,
    #[prost(bytes = "vec", tag = "7")]
    pub body_sha256: Vec<u8>,
}

#[derive(Debug, Error)]
pub enum SegmentError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: not a segment file (no segment magic at its start)", path.display())]
    NotSegment { path: PathBuf },
    #[error("{}: not sealed (a backup cut short while writing it; it is ignored and rewritten on resume)", path.display())]
    Unsealed { path: PathBuf },
    #[error("{}: the body's SHA-256 is {found}, the seal says {sealed}: the file is damaged", path.display())]
    DigestMismatch {
        path: PathBuf,
        found: String,
        sealed: String,
    },
    #[error("{}: {why}", path.display())]
    Corrupt { path: PathBuf, why: String },
    #[error("change at revision {got} after revision {last}: changes must come in revision order")]
    OutOfOrder { last: i64, got: i64 },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> SegmentError + '_ {
    move |source| SegmentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `seg-<first>-<last>.cseg`, zero-padded so names sort in revision order.
pub fn sealed_name(first: i64, last: i64) -> String {
    format!("seg-{first:019}-{last:019}.cseg")
}

/// The (first, last) revision a sealed segment's name says it holds.
pub fn parse_sealed_name(name: &str) -> Option<(i64, i64)> {
    let rest = name.strip_prefix("seg-")?.strip_suffix(".cseg")?;
    let (first, last) = rest.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?))
}

/// Counts and hashes what goes through it.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
    written: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A segment being written (`open-<first>.part` in its directory).
pub struct SegmentWriter {
    dir: PathBuf,
    path: PathBuf,
    body: zstd::stream::write::Encoder<'static, Hashing<BufWriter<File>>>,
    seal: Seal,
    opened: Instant,
    buf: Vec<u8>,
}

impl SegmentWriter {
    /// Starts the segment that follows `after_revision` in `dir` (an earlier `.part` for the
    /// same point, left by a crash, is replaced).
    pub fn create(dir: &Path, after_revision: i64) -> Result<SegmentWriter, SegmentError> {
        let path = dir.join(format!("open-{:019}.part", after_revision + 1));
        let mut file = File::create(&path).map_err(io_at(&path))?;
        file.write_all(&MAGIC).map_err(io_at(&path))?;
        let hashing = Hashing {
            inner: BufWriter::new(file),
            sha: Sha256::new(),
            written: 0,
        };
        let mut body =
            zstd::stream::write::Encoder::new(hashing, ZSTD_LEVEL).map_err(io_at(&path))?;
        body.include_checksum(true).map_err(io_at(&path))?;
        Ok(SegmentWriter {
            dir: dir.to_path_buf(),
            path,
            body,
            seal: Seal {
                after_revision,
                ..Seal::default()
            },
            opened: Instant::now(),
            buf: Vec::with_capacity(4096),
        })
    }

    /// The last revision appended, or the one the segment follows.
    pub fn last_revision(&self) -> i64 {
        if self.seal.records == 0 {
            self.seal.after_revision
        } else {
            self.seal.last_revision
        }
    }

    pub fn records(&self) -> u64 {
        self.seal.records
    }

    /// Compressed bytes written so far (what the size limit is checked against).
    pub fn bytes(&self) -> u64 {
        self.body.get_ref().written
    }

    /// Since the segment was opened (what the age limit is checked against).
    pub fn age(&self) -> std::time::Duration {
        self.opened.elapsed()
    }

    /// Appends one change; refuses one that would go back in revision order, or repeat a
    /// revision with events.
    pub fn append(&mut self, change: &Change) -> Result<(), SegmentError> {
        let last = self.last_revision();
        let repeats = change.revision == last && !change.events.is_empty();
        if change.revision < last || repeats {
            return Err(SegmentError::OutOfOrder {
                last,
                got: change.revision,
            });
        }
        self.buf.clear();
        change
            .encode_length_delimited(&mut self.buf)
            .expect("a Vec always has room");
        self.body.write_all(&self.buf).map_err(io_at(&self.path))?;
        if self.seal.records == 0 {
            self.seal.first_revision = change.revision;
            self.seal.first_unix_ms = change.unix_ms;
        }
        self.seal.records += 1;
        self.seal.last_revision = change.revision;
        self.seal.last_unix_ms = change.unix_ms;
        Ok(())
    }

    /// Finishes the body, writes the seal, syncs, and renames the file to its sealed name;
    /// returns the path and the seal. An empty segment is removed instead (`None`).
    pub fn seal(self) -> Result<Option<(PathBuf, Seal)>, SegmentError> {
        let SegmentWriter {
            dir,
            path,
            body,
            mut seal,
            ..
        } = self;
        let hashing = body.finish().map_err(io_at(&path))?;
        if seal.records == 0 {
            drop(hashing);
            std::fs::remove_file(&path).map_err(io_at(&path))?;
            return Ok(None);
        }
        seal.body_sha256 = hashing.sha.finalize().to_vec();
        let mut file = hashing
            .inner
            .into_inner()
            .map_err(|e| io_at(&path)(e.into_error()))?;
        let encoded = seal.encode_to_vec();
        file.write_all(&encoded).map_err(io_at(&path))?;
        file.write_all(&(encoded.len() as u32).to_be_bytes())
            .map_err(io_at(&path))?;
        file.write_all(&SEALED).map_err(io_at(&path))?;
        file.sync_all().map_err(io_at(&path))?;
        drop(file);
        let sealed = dir.join(sealed_name(seal.first_revision, seal.last_revision));
        std::fs::rename(&path, &sealed).map_err(io_at(&sealed))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(&dir))?;
        Ok(Some((sealed, seal)))
    }
}

/// A sealed segment's seal, without reading its body (`backup list`).
pub fn seal_of(path: &Path) -> Result<Seal, SegmentError> {
    open_body(path).map(|(seal, _)| seal)
}

/// Reads a sealed segment's seal, checking the body's SHA-256 against it.
pub fn verify(path: &Path) -> Result<Seal, SegmentError> {
    let (seal, body) = open_body(path)?;
    let mut sha = Sha256::new();
    let mut reader = body;
    io::copy(&mut reader, &mut ShaWriter(&mut sha)).map_err(io_at(path))?;
    let found = sha.finalize().to_vec();
    if found != seal.body_sha256 {
        return Err(SegmentError::DigestMismatch {
            path: path.to_path_buf(),
            found: hex::encode(found),
            sealed: hex::encode(&seal.body_sha256),
        });
    }
    Ok(seal)
}

/// Every change of a sealed segment, in order, after [`verify`]ing it: each is decoded and
/// checked against the seal (count, range, order).
pub fn read(path: &Path) -> Result<(Seal, Vec<Change>), SegmentError> {
    verify(path)?;
    let (seal, changes) = changes(path)?;
    Ok((seal, changes.collect::<Result<_, _>>()?))
}

/// The changes of a sealed segment one at a time, decoded as the body decompresses (memory
/// stays within one change), each checked for order, and at the end the whole against the
/// seal (count, range). The body's digest is not checked: [`verify`] first.
pub fn changes(path: &Path) -> Result<(Seal, Changes), SegmentError> {
    let (seal, body) = open_body(path)?;
    let z = zstd::stream::read::Decoder::new(body).map_err(|e| SegmentError::Corrupt {
        path: path.to_path_buf(),
        why: format!("the body does not decompress: {e}"),
    })?;
    let changes = Changes {
        path: path.to_path_buf(),
        z: io::BufReader::with_capacity(1 << 16, z),
        last: seal.after_revision,
        seal: seal.clone(),
        count: 0,
        first: None,
        buf: Vec::new(),
        done: false,
    };
    Ok((seal, changes))
}

/// The iterator of [`changes`].
pub struct Changes {
    path: PathBuf,
    z: io::BufReader<zstd::stream::read::Decoder<'static, io::BufReader<io::Take<File>>>>,
    seal: Seal,
    count: u64,
    first: Option<i64>,
    last: i64,
    buf: Vec<u8>,
    done: bool,
}

impl Changes {
    fn corrupt(&self, why: String) -> SegmentError {
        SegmentError::Corrupt {
            path: self.path.clone(),
            why,
        }
    }

    fn step(&mut self) -> Result<Option<Change>, SegmentError> {
        let n = self.count + 1;
        let Some(len) = read_varint(&mut self.z)
            .map_err(|e| self.corrupt(format!("the body does not decompress: {e}")))?
        else {
            self.check_end()?;
            return Ok(None);
        };
        self.buf.resize(len as usize, 0);
        if let Err(e) = self.z.read_exact(&mut self.buf) {
            return Err(self.corrupt(format!("change {n} is cut short: {e}")));
        }
        let change = Change::decode(self.buf.as_slice())
            .map_err(|e| self.corrupt(format!("change {n} does not decode: {e}")))?;
        let last = self.last;
        if change.revision < last || (change.revision == last && !change.events.is_empty()) {
            return Err(self.corrupt(format!(
                "change at revision {} after revision {last}",
                change.revision
            )));
        }
        self.count = n;
        self.first.get_or_insert(change.revision);
        self.last = change.revision;
        Ok(Some(change))
    }

    fn check_end(&self) -> Result<(), SegmentError> {
        let s = &self.seal;
        let last = (self.count > 0).then_some(self.last);
        if self.count != s.records
            || self.first != Some(s.first_revision)
            || last != Some(s.last_revision)
        {
            return Err(self.corrupt(format!(
                "the seal says {} changes at {}..={}, the body holds {} at {:?}..={last:?}",
                s.records, s.first_revision, s.last_revision, self.count, self.first
            )));
        }
        Ok(())
    }
}

impl Iterator for Changes {
    type Item = Result<Change, SegmentError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let step = self.step();
        self.done = !matches!(step, Ok(Some(_)));
        step.transpose()
    }
}

/// A protobuf varint from `r`; `None` at the end of the stream (before its first byte).
fn read_varint(r: &mut impl Read) -> io::Result<Option<u64>> {
    let mut v = 0u64;
    for i in 0..10 {
        let mut b = [0u8];
        if r.read(&mut b)? == 0 {
            return if i == 0 {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "a length is cut short",
                ))
            };
        }
        v |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            return Ok(Some(v));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "a length is not a varint",
    ))
}

struct ShaWriter<'a>(&'a mut Sha256);

impl Write for ShaWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The seal, and a reader of exactly the body's bytes.
fn open_body(path: &Path) -> Result<(Seal, io::Take<File>), SegmentError> {
    let mut file = File::open(path).map_err(io_at(path))?;
    let len = file.metadata().map_err(io_at(path))?.len();
    let mut magic = [0u8; 8];
    if len < 8 || file.read_exact(&mut magic).is_err() || magic != MAGIC {
        return Err(SegmentError::NotSegment {
            path: path.to_path_buf(),
        });
    }
    let tail = (MAGIC.len() + 4 + SEALED.len()) as u64;
    let mut end = [0u8; 12];
    if len < tail {
        return Err(SegmentError::Unsealed {
            path: path.to_path_buf(),
        });
    }
    file.seek(SeekFrom::End(-12)).map_err(io_at(path))?;
    file.read_exact(&mut end).map_err(io_at(path))?;
    let seal_len = u32::from_be_bytes(end[..4].try_into().expect("4 bytes"));
    if end[4..] != SEALED || seal_len > MAX_SEAL_LEN || u64::from(seal_len) + tail > len {
        return Err(SegmentError::Unsealed {
            path: path.to_path_buf(),
        });
    }
    let body_end = len - 12 - u64::from(seal_len);
    file.seek(SeekFrom::Start(body_end)).map_err(io_at(path))?;
    let mut encoded = vec![0u8; seal_len as usize];
    file.read_exact(&mut encoded).map_err(io_at(path))?;
    let seal = Seal::decode(encoded.as_slice()).map_err(|e| SegmentError::Corrupt {
        path: path.to_path_buf(),
        why: format!("the seal does not decode: {e}"),
    })?;
    file.seek(SeekFrom::Start(MAGIC.len() as u64))
        .map_err(io_at(path))?;
    Ok((seal, file.take(body_end - MAGIC.len() as u64)))
}

#[cfg(test)]
mod tests {
    use cairn_proto::mvccpb::{KeyValue, event::EventType};

    use super::*;

    fn put(rev: i64, key: &str) -> Change {
        Change {
            revision: rev,
            unix_ms: 1_000 + rev,
            events: vec![Event {
                r#type: EventType::Put as i32,
                kv: Some(KeyValue {
                    key: key.into(),
                    value: format!("v{rev}").into(),
                    create_revision: rev,
                    mod_revision: rev,
                    version: 1,
                    lease: 0,
                }),
                prev_kv: None,
            }],
            ..Change::default()
        }
    }

    fn written(dir: &Path) -> (PathBuf, Vec<Change>) {
        let mut w = SegmentWriter::create(dir, 10).unwrap();
        let mut changes = vec![put(11, "a"), put(12, "b")];
        changes.push(Change {
            revision: 12,
            unix_ms: 2_000,
            compacted_to: 9,
            ..Change::default()
        });
        changes.push(put(15, "c"));
        for c in &changes {
            w.append(c).unwrap();
        }
        assert_eq!((w.records(), w.last_revision()), (4, 15));
        let (path, seal) = w.seal().unwrap().unwrap();
        assert_eq!(
            path.file_name().unwrap().to_str().unwrap(),
            sealed_name(11, 15)
        );
        assert_eq!(
            (seal.after_revision, seal.first_revision, seal.last_revision),
            (10, 11, 15)
        );
        (path, changes)
    }

    #[test]
    fn a_sealed_segment_reads_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (path, changes) = written(dir.path());
        let (seal, read_back) = read(&path).unwrap();
        assert_eq!(read_back, changes);
        assert_eq!(seal.records, 4);
        assert_eq!((seal.first_unix_ms, seal.last_unix_ms), (1_011, 1_015));
        assert_eq!(
            parse_sealed_name(path.file_name().unwrap().to_str().unwrap()),
            Some((11, 15))
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no .part file left");
    }

    #[test]
    fn changes_out_of_order_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 10).unwrap();
        assert!(matches!(
            w.append(&put(10, "a")),
            Err(SegmentError::OutOfOrder { last: 10, got: 10 })
        ));
        w.append(&put(12, "a")).unwrap();
        assert!(
            w.append(&put(12, "b")).is_err(),
            "a revision's events come once"
        );
        assert!(w.append(&put(11, "b")).is_err());
    }

    #[test]
    fn damage_and_a_missing_seal_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = written(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[12] ^= 0x40;
        let damaged = dir.path().join("damaged.cseg");
        std::fs::write(&damaged, &bytes).unwrap();
        let err = verify(&damaged).unwrap_err();
        assert!(matches!(err, SegmentError::DigestMismatch { .. }), "{err}");

        let cut = dir.path().join("cut.cseg");
        std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
        let err = verify(&cut).unwrap_err();
        assert!(matches!(err, SegmentError::Unsealed { .. }), "{err}");

        let other = dir.path().join("other.cseg");
        std::fs::write(&other, b"not a segment at all").unwrap();
        assert!(matches!(
            verify(&other).unwrap_err(),
            SegmentError::NotSegment { .. }
        ));
    }

    #[test]
    fn an_empty_segment_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let w = SegmentWriter::create(dir.path(), 10).unwrap();
        assert!(w.seal().unwrap().is_none());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
