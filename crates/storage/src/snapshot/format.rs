//! The snapshot file's pieces: magic, header, records, padding rule. See
//! `docs/snapshot-format.md`; this file is that document in code.

use prost::bytes::Bytes;

/// "CAIRNSN" and the format's major version.
pub const MAGIC: [u8; 8] = *b"CAIRNSN\x01";
pub const FORMAT_VERSION: u32 = 1;
pub const DIGEST_LEN: usize = 32;
/// etcd's rule for a snapshot file with a digest: `size % 512 == 32`.
pub const ALIGN: u64 = 512;
/// A header is small; anything claiming more is not a header.
pub const MAX_HEADER_LEN: u32 = 16 * 1024 * 1024;
pub const COMPRESSION_ZSTD: &str = "zstd";

#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotMember {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, repeated, tag = "3")]
    pub peer_urls: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub client_urls: Vec<String>,
    #[prost(bool, tag = "5")]
    pub is_learner: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotHeader {
    #[prost(uint32, tag = "1")]
    pub format_version: u32,
    #[prost(int64, tag = "2")]
    pub revision: i64,
    #[prost(int64, tag = "3")]
    pub compact_revision: i64,
    #[prost(uint64, tag = "4")]
    pub cluster_id: u64,
    #[prost(message, repeated, tag = "5")]
    pub members: Vec<SnapshotMember>,
    #[prost(string, tag = "6")]
    pub server_version: String,
    #[prost(int64, tag = "7")]
    pub created_unix_ms: i64,
    #[prost(int64, tag = "8")]
    pub key_count: i64,
    #[prost(uint32, tag = "9")]
    pub hash: u32,
    #[prost(string, tag = "10")]
    pub compression: String,
    #[prost(uint64, tag = "11")]
    pub record_count: u64,
    #[prost(uint64, tag = "12")]
    pub lease_count: u64,
    /// Whether authentication is on in the snapshot, and how many users and roles it holds.
    #[prost(bool, tag = "13")]
    pub auth_enabled: bool,
    #[prost(uint64, tag = "14")]
    pub user_count: u64,
    #[prost(uint64, tag = "15")]
    pub role_count: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Record {
    #[prost(oneof = "RecordKind", tags = "1, 2, 3, 4, 5, 6, 15")]
    pub kind: Option<RecordKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum RecordKind {
    /// One `key` table row, byte for byte.
    #[prost(message, tag = "1")]
    Kv(KvRow),
    #[prost(message, tag = "2")]
    Lease(LeaseRow),
    #[prost(message, tag = "3")]
    Alarm(AlarmRow),
    /// One `authUsers` row: an encoded `authpb.User` (bcrypt hash included).
    #[prost(message, tag = "4")]
    AuthUser(AuthRow),
    /// One `authRoles` row: an encoded `authpb.Role`.
    #[prost(message, tag = "5")]
    AuthRole(AuthRow),
    /// The auth switch and revision. Written only when the store ever used auth, so a
    /// snapshot of a store without auth reads in releases before auth.
    #[prost(message, tag = "6")]
    AuthMeta(AuthMetaRow),
    #[prost(message, tag = "15")]
    End(EndRow),
}

/// Decoded from a `Bytes` record, both fields are slices of the reader's buffer, not copies.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KvRow {
    #[prost(bytes = "bytes", tag = "1")]
    pub rev_key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseRow {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AlarmRow {
    #[prost(uint64, tag = "1")]
    pub member_id: u64,
    #[prost(int32, tag = "2")]
    pub alarm: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthRow {
    #[prost(bytes = "bytes", tag = "1")]
    pub encoded: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthMetaRow {
    #[prost(bool, tag = "1")]
    pub enabled: bool,
    #[prost(uint64, tag = "2")]
    pub revision: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EndRow {
    #[prost(uint64, tag = "1")]
    pub record_count: u64,
    #[prost(uint32, tag = "2")]
    pub hash: u32,
}

/// Zero bytes to add after `len` bytes so that, with the digest, `size % 512 == 32`.
pub fn padding_for(len: u64) -> u64 {
    (ALIGN - len % ALIGN) % ALIGN
}

/// Recomputes the header CRC and the trailing digest of a snapshot file image, as the writer
/// would have: lets tests and the fuzz target (`fuzz/`) hand damaged bytes to the checks behind
/// the digest (header, zstd frame, records, counts, HashKV). Images too short to hold a header
/// and a digest are left as they are.
pub fn reseal(image: &mut [u8]) {
    use sha2::{Digest, Sha256};
    if image.len() < MAGIC.len() + 8 + DIGEST_LEN {
        return;
    }
    let head_len = u32::from_be_bytes(image[8..12].try_into().expect("4 bytes")) as usize;
    if 16 + head_len + DIGEST_LEN <= image.len() {
        let crc = crc32c::crc32c(&image[12..12 + head_len]);
        image[12 + head_len..16 + head_len].copy_from_slice(&crc.to_be_bytes());
    }
    let end = image.len() - DIGEST_LEN;
    let digest = Sha256::digest(&image[..end]);
    image[end..].copy_from_slice(&digest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_makes_etcds_size_rule() {
        for len in [0u64, 1, 100, 511, 512, 513, 10_000] {
            let total = len + padding_for(len) + DIGEST_LEN as u64;
            assert_eq!(total % ALIGN, 32, "len {len}");
            assert!(padding_for(len) < ALIGN);
        }
    }
}
