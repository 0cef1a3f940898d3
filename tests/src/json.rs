//! Reading etcdctl `-w json` output.
//!
//! etcdctl marshals Go structs with `omitempty`: zero numbers, `false` and empty lists are
//! absent, and byte fields (keys, values) are base64. These helpers read absent as zero.

use serde_json::Value;

use crate::base64;

/// A key-value as etcdctl prints it, decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: String,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

impl Kv {
    /// An expected key-value without a lease.
    pub fn new(
        key: &str,
        value: &str,
        create_revision: i64,
        mod_revision: i64,
        version: i64,
    ) -> Kv {
        Kv {
            key: key.into(),
            value: value.into(),
            create_revision,
            mod_revision,
            version,
            lease: 0,
        }
    }

    /// The same key-value attached to `lease`.
    pub fn with_lease(mut self, lease: i64) -> Kv {
        self.lease = lease;
        self
    }

    /// Decodes one JSON `KeyValue` object.
    pub fn from_json(v: &Value) -> Kv {
        Kv {
            key: base64::decode_str(v["key"].as_str().unwrap_or("")),
            value: base64::decode_str(v["value"].as_str().unwrap_or("")),
            create_revision: int(v, "create_revision"),
            mod_revision: int(v, "mod_revision"),
            version: int(v, "version"),
            lease: int(v, "lease"),
        }
    }
}

/// An integer field; absent (Go's omitempty) reads as 0.
pub fn int(v: &Value, field: &str) -> i64 {
    match &v[field] {
        Value::Null => 0,
        n => n
            .as_i64()
            .unwrap_or_else(|| panic!("{field} is not an i64: {n}")),
    }
}

/// An unsigned integer field (IDs, hashes); absent reads as 0.
pub fn uint(v: &Value, field: &str) -> u64 {
    match &v[field] {
        Value::Null => 0,
        n => n
            .as_u64()
            .unwrap_or_else(|| panic!("{field} is not a u64: {n}")),
    }
}

/// A boolean field; absent reads as false.
pub fn flag(v: &Value, field: &str) -> bool {
    match &v[field] {
        Value::Null => false,
        b => b
            .as_bool()
            .unwrap_or_else(|| panic!("{field} is not a bool: {b}")),
    }
}

/// `header.revision` of a response.
pub fn header_revision(v: &Value) -> i64 {
    int(&v["header"], "revision")
}

/// The decoded list under `field` (`kvs`, `prev_kvs`); absent reads as empty.
pub fn kv_list(v: &Value, field: &str) -> Vec<Kv> {
    v[field]
        .as_array()
        .map(|a| a.iter().map(Kv::from_json).collect())
        .unwrap_or_default()
}

/// The decoded `kvs` of a range response.
pub fn kvs(v: &Value) -> Vec<Kv> {
    kv_list(v, "kvs")
}

/// Just the keys of a range response, in order.
pub fn keys(v: &Value) -> Vec<String> {
    kvs(v).into_iter().map(|kv| kv.key).collect()
}
