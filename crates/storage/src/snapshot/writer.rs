//! Writing a snapshot from one consistent point while writes continue: one redb read
//! transaction feeds a pass for HashKV and counts, then the streamed body. Memory stays flat.

use std::io::Write;

use prost::Message;
use prost::bytes::Bytes;
use sha2::{Digest, Sha256};

use super::error::SnapshotError;
use super::format::*;
use crate::backend::{AlarmScan, KeyScan};
use crate::error::StoreError;
use crate::index::KeyRange;
use crate::overlay::Overlay;
use crate::schema::{LeaseRecord, alarm_from_key};
use crate::store::Store;

/// What the store cannot know about itself: the cluster it belongs to.
#[derive(Debug, Clone, Default)]
pub struct SnapshotSource {
    pub cluster_id: u64,
    pub members: Vec<SnapshotMember>,
    pub server_version: String,
}

/// Counts and hashes everything written through it.
struct Sink<'w> {
    out: &'w mut dyn Write,
    sha: Sha256,
    written: u64,
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.sha.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// The values of the requested `meta` entries, in the order asked (`None` if absent).
pub type MetaValues = Vec<Option<Vec<u8>>>;

impl Store {
    /// Streams a snapshot of the current revision to `out`; returns its header, which
    /// `on_header` also sees before the body is written (the server puts its revision in the
    /// response header). `level` is the zstd level (3 is a good default).
    pub fn write_snapshot(
        &self,
        source: &SnapshotSource,
        level: i32,
        out: &mut dyn Write,
        on_header: &mut dyn FnMut(&SnapshotHeader),
    ) -> Result<SnapshotHeader, SnapshotError> {
        self.write_snapshot_with_meta(source, level, out, on_header, &[])
            .map(|(header, _)| header)
    }

    /// [`Store::write_snapshot`], also returning the values of the `meta` entries named in
    /// `meta_names` (in that order; `None` if absent) as of the snapshot's own read
    /// transaction: the raft layer learns the applied log id and membership that exactly match
    /// the streamed data.
    pub fn write_snapshot_with_meta(
        &self,
        source: &SnapshotSource,
        level: i32,
        out: &mut dyn Write,
        on_header: &mut dyn FnMut(&SnapshotHeader),
        meta_names: &[&str],
    ) -> Result<(SnapshotHeader, MetaValues), SnapshotError> {
        // one consistent point: revision bounds, index facts and the read transaction together
        let (txn, (revision, compact_revision, keep, key_count)) =
            self.committed_read(|state| {
                let rev = state.current_rev;
                let keys = state.index.count(&KeyRange::all(), rev) as i64;
                (rev, state.compact_rev, state.index.keep(rev), keys)
            })?;
        let keys = txn.keys()?;
        let leases = txn.leases()?;
        let alarms = txn.alarms()?;
        let meta_table = txn.meta()?;
        let meta = meta_names
            .iter()
            .map(|name| meta_table.get(name))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let hash = crate::hash::hash_kv(
            &keys,
            &Overlay::default(),
            compact_revision,
            revision,
            &keep,
            None,
        )?;
        let (kv_rows, lease_rows, alarm_rows) = (keys.len()?, leases.len()?, alarms.len()?);
        let auth = crate::auth::load(&txn)?;
        let (users, roles) = (auth.users().count() as u64, auth.roles().count() as u64);
        let auth_used = auth.enabled || auth.revision > 1 || users + roles > 0;
        let auth_rows = if auth_used { users + roles + 1 } else { 0 };

        let header = SnapshotHeader {
            format_version: FORMAT_VERSION,
            revision,
            compact_revision,
            cluster_id: source.cluster_id,
            members: source.members.clone(),
            server_version: source.server_version.clone(),
            created_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            key_count,
            hash,
            compression: COMPRESSION_ZSTD.into(),
            record_count: kv_rows + lease_rows + alarm_rows + auth_rows,
            lease_count: lease_rows,
            auth_enabled: auth.enabled,
            user_count: users,
            role_count: roles,
        };
        on_header(&header);
        let mut sink = Sink {
            out,
            sha: Sha256::new(),
            written: 0,
        };
        let head = header.encode_to_vec();
        sink.write_all(&MAGIC).map_err(SnapshotError::Write)?;
        sink.write_all(&(head.len() as u32).to_be_bytes())
            .map_err(SnapshotError::Write)?;
        sink.write_all(&head).map_err(SnapshotError::Write)?;
        sink.write_all(&crc32c::crc32c(&head).to_be_bytes())
            .map_err(SnapshotError::Write)?;

        let mut z =
            zstd::stream::write::Encoder::new(&mut sink, level).map_err(SnapshotError::Write)?;
        // zstd's own frame checksum: body damage is caught even under --skip-hash-check
        z.include_checksum(true).map_err(SnapshotError::Write)?;
        let mut buf = Vec::with_capacity(4096);
        let mut put = |r: RecordKind| {
            buf.clear();
            Record { kind: Some(r) }
                .encode_length_delimited(&mut buf)
                .expect("a Vec always has room");
            z.write_all(&buf).map_err(SnapshotError::Write)
        };
        for row in keys.iter()? {
            let row = row?;
            put(RecordKind::Kv(KvRow {
                rev_key: Bytes::copy_from_slice(row.key()),
                value: Bytes::copy_from_slice(row.value()),
            }))?;
        }
        // the small tables are read whole first (the records' writer fails with its own error)
        let mut small = Vec::new();
        leases.each(|_, v| {
            let rec = LeaseRecord::decode(v)
                .map_err(|e| StoreError::Corrupt(format!("lease record: {e}")))?;
            small.push(RecordKind::Lease(LeaseRow {
                id: rec.id,
                ttl: rec.ttl,
            }));
            Ok(())
        })?;
        alarms.each_key(|k| {
            if let Some((member_id, alarm)) = alarm_from_key(k) {
                small.push(RecordKind::Alarm(AlarmRow { member_id, alarm }));
            }
            Ok(())
        })?;
        for r in small {
            put(r)?;
        }
        if auth_used {
            for u in auth.users() {
                put(RecordKind::AuthUser(AuthRow {
                    encoded: u.encode_to_vec().into(),
                }))?;
            }
            for r in auth.roles() {
                put(RecordKind::AuthRole(AuthRow {
                    encoded: r.encode_to_vec().into(),
                }))?;
            }
            put(RecordKind::AuthMeta(AuthMetaRow {
                enabled: auth.enabled,
                revision: auth.revision,
            }))?;
        }
        put(RecordKind::End(EndRow {
            record_count: header.record_count,
            hash,
        }))?;
        z.finish().map_err(SnapshotError::Write)?;

        let pad = padding_for(sink.written);
        sink.write_all(&vec![0u8; pad as usize])
            .map_err(SnapshotError::Write)?;
        let digest = sink.sha.clone().finalize();
        sink.out.write_all(&digest).map_err(SnapshotError::Write)?;
        sink.out.flush().map_err(SnapshotError::Write)?;
        Ok((header, meta))
    }
}
