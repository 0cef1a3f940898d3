//! etcd's own snapshot files: a bbolt database with etcd's schema, as `etcdctl snapshot save`
//! writes it (followed by a SHA-256 of the database, so `size % 512 == 32`) or as a stopped
//! member's `member/snap/db` is (no digest). Read through `cairn-bbolt`, never trusted.
//!
//! etcd's `key` rows are Cairn's `key` rows byte for byte (the 17/18-byte revision and the
//! encoded `mvccpb.KeyValue`), so a restore copies them as they are and every revision,
//! version and create revision survives; `lease` rows are `leasepb.Lease` (ID, TTL); users
//! and roles are `authpb` messages in both. What etcd keeps besides (raft's consistent index,
//! members, alarms, cluster version) is not carried over: a restore writes a new membership,
//! as etcdutl does, and an alarm belongs to the member that raised it.

use std::io::Read;
use std::path::{Path, PathBuf};

use cairn_bbolt::Db;
use prost::Message;
use prost::bytes::Bytes;
use sha2::{Digest, Sha256};

use super::error::{SnapshotError, io};
use super::format::{ALIGN, AuthMetaRow, AuthRow, DIGEST_LEN, KvRow, LeaseRow, Record, RecordKind};
use super::reader::{BodySummary, HashRebuild};
use crate::revision::Revision;
use crate::schema::LeaseRecord;

/// What a walk over one bucket does with each entry (`None`: a nested bucket).
type Visit<'a> = dyn FnMut(&[u8], Option<&[u8]>) -> Result<(), SnapshotError> + 'a;

/// etcd's bucket names (`server/mvcc/buckets`).
const KEY: &[u8] = b"key";
const META: &[u8] = b"meta";
const LEASE: &[u8] = b"lease";
const AUTH: &[u8] = b"auth";
const AUTH_USERS: &[u8] = b"authUsers";
const AUTH_ROLES: &[u8] = b"authRoles";

/// The bbolt magic, at byte 16 of the first meta page (little-endian).
const BBOLT_MAGIC: [u8; 4] = 0xED0C_DAEDu32.to_le_bytes();

/// True when `path` starts like a bbolt database (etcd's backend), by content.
pub fn looks_like_etcd(path: &Path) -> bool {
    let mut head = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head[16..20] == BBOLT_MAGIC
}

/// An etcd snapshot file whose database opened (its meta pages checked out).
pub struct EtcdSnapshot {
    pub path: PathBuf,
    pub file_size: u64,
    /// The file ends with etcdctl's SHA-256 of the database (`size % 512 == 32`).
    pub has_digest: bool,
    db: Db,
}

/// What `etcdutl snapshot status` prints, computed as it computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtcdStatus {
    /// CRC-32C over each bucket's name, then its keys and values, buckets in name order.
    pub hash: u32,
    /// The main revision of the last `key` row (0 when there is none).
    pub revision: i64,
    /// Entries over all buckets.
    pub total_key: u64,
    /// bbolt's `tx.Size()`: the high-water page times the page size.
    pub total_size: u64,
}

/// What Cairn reads out of the file besides etcdutl's numbers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EtcdExtras {
    /// etcd's compaction point (the scheduled compaction, which etcd finishes at start), -1
    /// if never compacted.
    pub compact_revision: i64,
    pub auth_enabled: bool,
    pub auth_revision: u64,
    pub users: u64,
    pub roles: u64,
    /// The storage version as etcdutl 3.5 detects it: `storageVersion` when etcd 3.6 wrote
    /// it, "3.5.0" when raft's `confState` is in `meta`, else "3.4.0".
    pub version: String,
}

/// An etcd file that passed [`EtcdSnapshot::preflight`].
#[derive(Debug, Clone)]
pub struct EtcdPlan {
    pub status: EtcdStatus,
    pub extras: EtcdExtras,
    /// The store revision a restore starts at: the last row's, or the compaction point if
    /// that is later (etcd's rule at start).
    pub revision: i64,
}

/// What [`EtcdSnapshot::verify`] found.
#[derive(Debug, Clone)]
pub struct EtcdVerified {
    pub plan: EtcdPlan,
    pub summary: BodySummary,
    /// Keys live at the last revision.
    pub live_keys: i64,
}

impl EtcdSnapshot {
    /// Opens `path` as an etcd snapshot: the database's meta pages must check out (the
    /// digest, if any, is checked by [`EtcdSnapshot::check_digest`]).
    pub fn open(path: &Path) -> Result<EtcdSnapshot, SnapshotError> {
        let file_size = super::reader::file_size(path)?;
        let has_digest = file_size % ALIGN == DIGEST_LEN as u64;
        let db_len = if has_digest {
            file_size - DIGEST_LEN as u64
        } else {
            file_size
        };
        let db = Db::open(path, db_len).map_err(bbolt(path))?;
        Ok(EtcdSnapshot {
            path: path.to_path_buf(),
            file_size,
            has_digest,
            db,
        })
    }

    /// etcdutl's restore check: the trailing SHA-256 must match the database; a file without
    /// one needs `--skip-hash-check` (a bare `member/snap/db`).
    pub fn check_digest(
        &self,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<(), SnapshotError> {
        let path = self.path.as_path();
        if !self.has_digest {
            return Err(SnapshotError::EtcdNoDigest(path.to_path_buf()));
        }
        let db_len = self.file_size - DIGEST_LEN as u64;
        let mut f = std::fs::File::open(path).map_err(io(path))?;
        let mut sha = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut left = db_len;
        while left > 0 {
            let n = buf.len().min(left as usize);
            f.read_exact(&mut buf[..n]).map_err(io(path))?;
            sha.update(&buf[..n]);
            left -= n as u64;
            progress(db_len - left);
        }
        let mut stored = [0u8; DIGEST_LEN];
        f.read_exact(&mut stored).map_err(io(path))?;
        let actual: [u8; DIGEST_LEN] = sha.finalize().into();
        if actual != stored {
            return Err(SnapshotError::EtcdDigest {
                path: path.to_path_buf(),
                expected: hex(&stored),
                actual: hex(&actual),
            });
        }
        Ok(())
    }

    /// bbolt's consistency check (etcdutl runs it before `status`).
    pub fn check(&self) -> Result<(), SnapshotError> {
        self.db.check().map_err(bbolt(&self.path))
    }

    /// `etcdutl snapshot status`: the consistency check, then the hash, revision and counts
    /// over every bucket.
    pub fn status(&self) -> Result<EtcdStatus, SnapshotError> {
        self.check()?;
        let mut crc = 0u32;
        let mut total_key = 0u64;
        let mut revision = 0i64;
        for name in self.db.bucket_names().map_err(bbolt(&self.path))? {
            crc = crc32c::crc32c_append(crc, &name);
            let is_key = name == KEY;
            let mut visit = |k: &[u8], v: Option<&[u8]>| -> Result<(), SnapshotError> {
                crc = crc32c::crc32c_append(crc, k);
                if let Some(v) = v {
                    crc = crc32c::crc32c_append(crc, v);
                }
                if is_key {
                    revision = main_revision(k).ok_or_else(|| self.schema(bad_rev_key(k)))?;
                }
                total_key += 1;
                Ok(())
            };
            self.each(&[name.as_slice()], &mut visit)?;
        }
        Ok(EtcdStatus {
            hash: crc,
            revision,
            total_key,
            total_size: self.db.size(),
        })
    }

    /// The compaction point and the auth switch, from the `meta` and `auth` buckets.
    pub fn extras(&self) -> Result<EtcdExtras, SnapshotError> {
        let mut x = EtcdExtras {
            compact_revision: -1,
            ..Default::default()
        };
        let (mut conf_state, mut storage_version) = (false, None);
        let mut meta = |k: &[u8], v: Option<&[u8]>| -> Result<(), SnapshotError> {
            match k {
                b"confState" => conf_state = true,
                b"storageVersion" => {
                    storage_version =
                        Some(String::from_utf8_lossy(v.unwrap_or_default()).into_owned())
                }
                _ => {}
            }
            if k == b"scheduledCompactRev" || k == b"finishedCompactRev" {
                let v = v.unwrap_or_default();
                let (rev, _) = Revision::from_bytes(v).ok_or_else(|| {
                    self.schema(format!(
                        "meta {} is not a revision",
                        String::from_utf8_lossy(k)
                    ))
                })?;
                x.compact_revision = x.compact_revision.max(rev.main);
            }
            Ok(())
        };
        self.each(&[META], &mut meta)?;
        x.version = storage_version
            .unwrap_or_else(|| if conf_state { "3.5.0" } else { "3.4.0" }.to_string());
        self.each(&[AUTH_USERS], &mut |_, _| {
            x.users += 1;
            Ok(())
        })?;
        self.each(&[AUTH_ROLES], &mut |_, _| {
            x.roles += 1;
            Ok(())
        })?;
        let mut auth = |k: &[u8], v: Option<&[u8]>| -> Result<(), SnapshotError> {
            let v = v.unwrap_or_default();
            match k {
                b"authEnabled" => x.auth_enabled = v == [1],
                b"authRevision" => {
                    let b: [u8; 8] = v
                        .try_into()
                        .map_err(|_| self.schema("auth revision is not 8 bytes".into()))?;
                    x.auth_revision = u64::from_be_bytes(b);
                }
                _ => {}
            }
            Ok(())
        };
        self.each(&[AUTH], &mut auth)?;
        Ok(x)
    }

    /// Every row Cairn keeps, as snapshot records in Cairn's own kinds (`key` rows in
    /// revision order, then leases, users, roles and the auth switch), each checked: key rows
    /// must decode and stay at or below the last revision, leases and auth rows must decode.
    /// Returns the counts with the HashKV at the file's revision, recomputed from the rows,
    /// and the number of keys live there.
    pub fn read(
        &self,
        extras: &EtcdExtras,
        visit: &mut dyn FnMut(Record) -> Result<(), SnapshotError>,
    ) -> Result<(BodySummary, i64), SnapshotError> {
        let mut summary = BodySummary::default();
        // the last revision is known at the end; the rows come in revision order
        let mut rebuild = HashRebuild::new(i64::MAX, extras.compact_revision);
        let mut last = 0i64;
        let mut emit = |summary: &mut BodySummary, kind: RecordKind| {
            summary.records += 1;
            visit(Record { kind: Some(kind) })
        };
        self.each(&[KEY], &mut |k, v| {
            let v = v.ok_or_else(|| self.schema("a nested bucket inside key".into()))?;
            let (rev, tombstone) =
                Revision::from_bytes(k).ok_or_else(|| self.schema(bad_rev_key(k)))?;
            let (rev_key, value) = (Bytes::copy_from_slice(k), Bytes::copy_from_slice(v));
            rebuild
                .row(rev, tombstone, &rev_key, &value)
                .map_err(|e| self.schema(e))?;
            last = rev.main;
            summary.kv_rows += 1;
            emit(&mut summary, RecordKind::Kv(KvRow { rev_key, value }))
        })?;
        self.each(&[LEASE], &mut |k, v| {
            let lease = LeaseRecord::decode(v.unwrap_or_default())
                .map_err(|e| self.schema(format!("lease {}: {e}", hex(k))))?;
            summary.leases += 1;
            emit(
                &mut summary,
                RecordKind::Lease(LeaseRow {
                    id: lease.id,
                    ttl: lease.ttl,
                }),
            )
        })?;
        for (bucket, is_user) in [(AUTH_USERS, true), (AUTH_ROLES, false)] {
            self.each(&[bucket], &mut |k, v| {
                let v = v.unwrap_or_default();
                let name = String::from_utf8_lossy(k);
                let row = AuthRow {
                    encoded: Bytes::copy_from_slice(v),
                };
                if is_user {
                    cairn_proto::authpb::User::decode(v)
                        .map_err(|e| self.schema(format!("user {name}: {e}")))?;
                    summary.users += 1;
                    emit(&mut summary, RecordKind::AuthUser(row))
                } else {
                    cairn_proto::authpb::Role::decode(v)
                        .map_err(|e| self.schema(format!("role {name}: {e}")))?;
                    summary.roles += 1;
                    emit(&mut summary, RecordKind::AuthRole(row))
                }
            })?;
        }
        if extras.auth_enabled || extras.auth_revision > 0 {
            emit(
                &mut summary,
                RecordKind::AuthMeta(AuthMetaRow {
                    enabled: extras.auth_enabled,
                    revision: extras.auth_revision,
                }),
            )?;
        }
        let (hash, live) = rebuild.finish_at(last.max(extras.compact_revision));
        summary.hash = hash;
        Ok((summary, live))
    }

    /// What must hold before anything is written from this file: the digest (unless
    /// `skip_digest`; a bare `db` has none), then the database's consistency; returns
    /// etcdutl's numbers and Cairn's.
    ///
    /// The digest is computed on a second thread while the database is checked (each is a
    /// pass over the whole file); when both fail, the digest's error is the one reported, as
    /// it says more (the file is not what was saved).
    pub fn preflight(
        &self,
        skip_digest: bool,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<EtcdPlan, SnapshotError> {
        let (digest, checked) = std::thread::scope(|scope| {
            let digest = (!skip_digest).then(|| scope.spawn(|| self.check_digest(progress)));
            let checked = self
                .status()
                .and_then(|status| Ok((status, self.extras()?)));
            let digest = digest.map(|d| {
                d.join().unwrap_or_else(|_| {
                    Err(SnapshotError::Write(std::io::Error::other(
                        "the digest check panicked",
                    )))
                })
            });
            (digest, checked)
        });
        if let Some(d) = digest {
            d?;
        }
        let (status, extras) = checked?;
        Ok(EtcdPlan {
            revision: held_revision(&status, &extras),
            status,
            extras,
        })
    }

    /// The revision the server was at when it wrote this file: see [`held_revision`].
    pub fn revision(&self) -> Result<i64, SnapshotError> {
        Ok(held_revision(&self.status()?, &self.extras()?))
    }

    /// Every check: [`EtcdSnapshot::preflight`], then every row Cairn would restore
    /// decoded and HashKV recomputed.
    pub fn verify(
        &self,
        skip_digest: bool,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<EtcdVerified, SnapshotError> {
        let plan = self.preflight(skip_digest, progress)?;
        let (summary, live_keys) = self.read(&plan.extras, &mut |_| Ok(()))?;
        Ok(EtcdVerified {
            plan,
            summary,
            live_keys,
        })
    }

    /// The database's `for_each`, its own errors naming this file.
    fn each(&self, bucket: &[&[u8]], f: &mut Visit<'_>) -> Result<bool, SnapshotError> {
        self.db
            .for_each::<Walk>(bucket, &mut |k, v| f(k, v).map_err(Walk::Visit))
            .map_err(|e| match e {
                Walk::Db(error) => SnapshotError::Bbolt {
                    path: self.path.clone(),
                    error,
                },
                Walk::Visit(e) => e,
            })
    }

    fn schema(&self, reason: String) -> SnapshotError {
        SnapshotError::EtcdSchema {
            path: self.path.clone(),
            reason,
        }
    }
}

/// The revision an etcd snapshot file holds: its last `key` row's (what `snapshot status`
/// prints), unless a compaction went past it (a compaction at the current revision drops a
/// trailing delete's tombstone), and at least 1 (a new etcd is at revision 1 with no row).
pub fn held_revision(status: &EtcdStatus, extras: &EtcdExtras) -> i64 {
    status.revision.max(extras.compact_revision).max(1)
}

fn main_revision(k: &[u8]) -> Option<i64> {
    Revision::from_bytes(k).map(|(r, _)| r.main)
}

fn bad_rev_key(k: &[u8]) -> String {
    format!("key row {} is not a revision", hex(k))
}

fn bbolt(path: &Path) -> impl Fn(cairn_bbolt::Error) -> SnapshotError + '_ {
    move |error| SnapshotError::Bbolt {
        path: path.to_path_buf(),
        error,
    }
}

/// Why a walk over one bucket stopped: the database, or the visitor.
enum Walk {
    Db(cairn_bbolt::Error),
    Visit(SnapshotError),
}

impl From<cairn_bbolt::Error> for Walk {
    fn from(e: cairn_bbolt::Error) -> Self {
        Walk::Db(e)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
