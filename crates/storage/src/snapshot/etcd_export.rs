//! Writing etcd's own snapshot files, so etcd's tools can read what Cairn serves and a team can
//! go back: a bbolt database with etcd 3.4's schema, followed by the SHA-256 of the database
//! (what `etcdctl snapshot save` checks and `etcdctl snapshot restore` strips).
//!
//! The buckets, in the order bbolt keeps them: `alarm` (empty: an alarm belongs to the member
//! that raised it), `auth` (`authEnabled`, `authRevision`), `authRoles`, `authUsers`,
//! `cluster` (`clusterVersion`), `key` (Cairn's rows byte for byte), `lease` (big-endian ID
//! → `leasepb.Lease`), `members` (hex ID → etcd's member JSON), `members_removed`, `meta`
//! (`consistent_index` 0, which etcd's restore rewrites, and the compaction marks). The
//! database is written in two passes over the same rows (`cairn_bbolt::write_db`): from one
//! redb read transaction of a live store, or from a Cairn snapshot file read twice.

use std::io::{self, Write};

use cairn_bbolt::{Row, Rows};
use prost::Message;
use sha2::{Digest, Sha256};

use super::error::SnapshotError;
use super::format::{RecordKind, SnapshotMember};
use super::reader::{SnapshotInfo, read_body};
use crate::backend::{KeyScan, ReadKeys};
use crate::revision::Revision;
use crate::schema::LeaseRecord;
use crate::store::Store;

/// bbolt's page size on Linux, as etcd writes its files.
const PAGE_SIZE: u32 = 4096;
/// The cluster version etcd 3.4 records (`cluster/clusterVersion`).
const CLUSTER_VERSION: &str = "3.4.0";

/// What an etcd snapshot holds besides the key and lease rows, all small.
struct Small {
    auth_enabled: bool,
    auth_revision: u64,
    /// (name, encoded `authpb.User`), by name.
    users: Vec<(Vec<u8>, Vec<u8>)>,
    /// (name, encoded `authpb.Role`), by name.
    roles: Vec<(Vec<u8>, Vec<u8>)>,
    compact_revision: i64,
    /// (hex ID, etcd's member JSON), by key.
    members: Vec<(Vec<u8>, Vec<u8>)>,
    /// (ID, TTL), by ID (a few thousand at most, 16 bytes each).
    leases: Vec<(i64, i64)>,
}

/// What is done with each `key` row (revision key, encoded KeyValue).
type KeyRow<'a> = dyn FnMut(&[u8], &[u8]) -> io::Result<()> + 'a;

/// The `key` rows, given again for each pass.
trait Big {
    fn keys(&mut self, f: &mut KeyRow<'_>) -> io::Result<()>;
}

struct Schema<'a> {
    small: &'a Small,
    big: &'a mut dyn Big,
}

impl Rows for Schema<'_> {
    fn each(&mut self, f: &mut dyn FnMut(Row<'_>) -> io::Result<()>) -> io::Result<()> {
        let s = self.small;
        f(Row::Bucket(b"alarm"))?;
        f(Row::Bucket(b"auth"))?;
        f(Row::Entry(b"authEnabled", &[u8::from(s.auth_enabled)]))?;
        f(Row::Entry(b"authRevision", &s.auth_revision.to_be_bytes()))?;
        f(Row::Bucket(b"authRoles"))?;
        for (name, role) in &s.roles {
            f(Row::Entry(name, role))?;
        }
        f(Row::Bucket(b"authUsers"))?;
        for (name, user) in &s.users {
            f(Row::Entry(name, user))?;
        }
        f(Row::Bucket(b"cluster"))?;
        f(Row::Entry(b"clusterVersion", CLUSTER_VERSION.as_bytes()))?;
        f(Row::Bucket(b"key"))?;
        self.big.keys(&mut |k, v| f(Row::Entry(k, v)))?;
        f(Row::Bucket(b"lease"))?;
        for &(id, ttl) in &s.leases {
            let rec = LeaseRecord {
                id,
                ttl,
                remaining_ttl: 0,
            }
            .encode_to_vec();
            f(Row::Entry(&(id as u64).to_be_bytes(), &rec))?;
        }
        f(Row::Bucket(b"members"))?;
        for (id, json) in &s.members {
            f(Row::Entry(id, json))?;
        }
        f(Row::Bucket(b"members_removed"))?;
        f(Row::Bucket(b"meta"))?;
        f(Row::Entry(b"consistent_index", &0u64.to_be_bytes()))?;
        if s.compact_revision > 0 {
            let mark = Revision::new(s.compact_revision, 0).to_bytes(false);
            f(Row::Entry(b"finishedCompactRev", &mark))?;
            f(Row::Entry(b"scheduledCompactRev", &mark))?;
        }
        Ok(())
    }
}

/// etcd's `membership.Member` as its backend stores it (Go's JSON of the struct).
fn member_rows(members: &[SnapshotMember]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rows: Vec<(Vec<u8>, Vec<u8>)> = members
        .iter()
        .map(|m| (format!("{:x}", m.id).into_bytes(), serde_like_member(m)))
        .collect();
    rows.sort();
    rows
}

/// `{"id":..,"peerURLs":[..],"isLearner":true?,"name":..?,"clientURLs":[..]?}`, fields as Go
/// writes them (omitempty on the last three).
fn serde_like_member(m: &SnapshotMember) -> Vec<u8> {
    let quote = |s: &str| {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    };
    let list = |v: &[String]| {
        format!(
            "[{}]",
            v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(",")
        )
    };
    let mut json = format!("{{\"id\":{},\"peerURLs\":{}", m.id, list(&m.peer_urls));
    if m.is_learner {
        json.push_str(",\"isLearner\":true");
    }
    if !m.name.is_empty() {
        json.push_str(&format!(",\"name\":{}", quote(&m.name)));
    }
    if !m.client_urls.is_empty() {
        json.push_str(&format!(",\"clientURLs\":{}", list(&m.client_urls)));
    }
    json.push('}');
    json.into_bytes()
}

/// Hashes what passes through, for the trailing digest.
struct Hashing<'w> {
    out: &'w mut dyn Write,
    sha: Sha256,
    written: u64,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.sha.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Writes the database and its digest; returns the bytes written.
fn write_file(small: &Small, big: &mut dyn Big, out: &mut dyn Write) -> Result<u64, SnapshotError> {
    let mut sink = Hashing {
        out,
        sha: Sha256::new(),
        written: 0,
    };
    let mut rows = Schema { small, big };
    cairn_bbolt::write_db(PAGE_SIZE, &mut rows, &mut sink).map_err(SnapshotError::Write)?;
    let digest = sink.sha.clone().finalize();
    sink.out.write_all(&digest).map_err(SnapshotError::Write)?;
    sink.out.flush().map_err(SnapshotError::Write)?;
    Ok(sink.written + digest.len() as u64)
}

/// What an etcd-format snapshot of a live store was taken at.
#[derive(Debug, Clone, Copy)]
pub struct EtcdExport {
    pub revision: i64,
    pub bytes: u64,
}

impl Store {
    /// Streams an etcd-format snapshot of the current revision to `out` (for
    /// `Maintenance.Snapshot` to clients that want etcd's format); `on_revision` learns the
    /// snapshot's revision before the first byte. One redb read transaction feeds both
    /// passes, so writes go on meanwhile and the file is one consistent point.
    pub fn write_etcd_snapshot(
        &self,
        members: &[SnapshotMember],
        out: &mut dyn Write,
        on_revision: &mut dyn FnMut(i64),
    ) -> Result<EtcdExport, SnapshotError> {
        let (txn, (revision, compact_revision)) =
            self.committed_read(|state| (state.current_rev, state.compact_rev))?;
        let auth = crate::auth::load(&txn)?;
        let mut users: Vec<_> = auth
            .users()
            .map(|u| (u.name.clone(), u.encode_to_vec()))
            .collect();
        users.sort();
        let mut roles: Vec<_> = auth
            .roles()
            .map(|r| (r.name.clone(), r.encode_to_vec()))
            .collect();
        roles.sort();
        let mut leases = Vec::new();
        txn.leases()?.each(|_, v| {
            let rec = LeaseRecord::decode(v)
                .map_err(|e| crate::error::StoreError::Corrupt(format!("lease record: {e}")))?;
            leases.push((rec.id, rec.ttl));
            Ok::<_, crate::error::StoreError>(())
        })?;
        leases.sort_by_key(|(id, _)| *id as u64);
        let small = Small {
            auth_enabled: auth.enabled,
            auth_revision: auth.revision.max(1),
            users,
            roles,
            compact_revision,
            members: member_rows(members),
            leases,
        };
        struct Tables(ReadKeys);
        impl Big for Tables {
            fn keys(&mut self, f: &mut KeyRow<'_>) -> io::Result<()> {
                for row in self.0.iter().map_err(io::Error::other)? {
                    let row = row.map_err(io::Error::other)?;
                    f(row.key(), row.value())?;
                }
                Ok(())
            }
        }
        on_revision(revision);
        let bytes = write_file(&small, &mut Tables(txn.keys()?), out)?;
        Ok(EtcdExport { revision, bytes })
    }
}

/// Converts a Cairn snapshot file to an etcd snapshot file (`cairnutl snapshot convert --to
/// etcd`): the body is read three times, once for the small buckets and once per pass of
/// the writer, each time with every check (digest unless `skip_digest`, records, HashKV).
pub fn cairn_to_etcd(
    info: &SnapshotInfo,
    skip_digest: bool,
    out: &mut dyn Write,
) -> Result<u64, SnapshotError> {
    let h = &info.header;
    let mut small = Small {
        auth_enabled: h.auth_enabled,
        auth_revision: 1,
        users: Vec::new(),
        roles: Vec::new(),
        compact_revision: h.compact_revision,
        members: member_rows(&h.members),
        leases: Vec::new(),
    };
    read_body(info, !skip_digest, &mut |_| {}, &mut |r| {
        let corrupt = |what: &str, e: prost::DecodeError| {
            SnapshotError::Store(crate::error::StoreError::Corrupt(format!("{what}: {e}")))
        };
        match r.kind {
            Some(RecordKind::Lease(l)) => small.leases.push((l.id, l.ttl)),
            Some(RecordKind::AuthUser(u)) => {
                let user = cairn_proto::authpb::User::decode(u.encoded.as_ref())
                    .map_err(|e| corrupt("a user record", e))?;
                small.users.push((user.name, u.encoded.to_vec()));
            }
            Some(RecordKind::AuthRole(r)) => {
                let role = cairn_proto::authpb::Role::decode(r.encoded.as_ref())
                    .map_err(|e| corrupt("a role record", e))?;
                small.roles.push((role.name, r.encoded.to_vec()));
            }
            Some(RecordKind::AuthMeta(m)) => {
                small.auth_enabled = m.enabled;
                small.auth_revision = m.revision.max(1);
            }
            _ => {}
        }
        Ok(())
    })?;
    small.users.sort();
    small.roles.sort();
    small.leases.sort_by_key(|(id, _)| *id as u64);
    /// The file's `key` rows, read again (with every check) for each pass; a failure other
    /// than writing is kept to be reported as itself.
    struct File<'i> {
        info: &'i SnapshotInfo,
        skip_digest: bool,
        failed: Option<SnapshotError>,
    }
    impl Big for File<'_> {
        fn keys(&mut self, f: &mut KeyRow<'_>) -> io::Result<()> {
            let read = read_body(
                self.info,
                !self.skip_digest,
                &mut |_| {},
                &mut |r| match &r.kind {
                    Some(RecordKind::Kv(row)) => {
                        f(&row.rev_key, &row.value).map_err(SnapshotError::Write)
                    }
                    _ => Ok(()),
                },
            );
            match read {
                Ok(_) => Ok(()),
                Err(SnapshotError::Write(e)) => Err(e),
                Err(other) => {
                    let msg = other.to_string();
                    self.failed = Some(other);
                    Err(io::Error::other(msg))
                }
            }
        }
    }
    let mut file = File {
        info,
        skip_digest,
        failed: None,
    };
    write_file(&small, &mut file, out).map_err(|e| file.failed.take().unwrap_or(e))
}

/// Converts an etcd snapshot file that passed its preflight to a Cairn snapshot file
/// (`cairnutl snapshot convert --to cairn`): its rows are restored into a scratch store in
/// `scratch` (an empty directory the caller removes), which then writes the snapshot. The
/// header names no cluster or members: a restore writes them from its flags.
pub fn etcd_to_cairn(
    snap: &super::EtcdSnapshot,
    plan: &super::EtcdPlan,
    scratch: &std::path::Path,
    out: &mut dyn Write,
) -> Result<super::SnapshotHeader, SnapshotError> {
    let kv = scratch.join("kv.redb");
    super::restore_etcd_kv(snap, plan, &kv, super::RestoreOptions::default())?;
    let store = Store::open(&kv, crate::StoreOptions::default())?;
    let source = super::SnapshotSource {
        cluster_id: 0,
        members: Vec::new(),
        server_version: format!("{} (converted from etcd)", plan.extras.version),
    };
    store.write_snapshot(&source, 3, out, &mut |_| {})
}
