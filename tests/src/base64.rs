//! Base64 as Go's `encoding/json` writes `[]byte` (standard alphabet, padded): etcdctl's
//! `-w json` output carries keys and values this way.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

pub fn encode(input: impl AsRef<[u8]>) -> String {
    STANDARD.encode(input)
}

/// Decodes etcdctl's base64; panics with the input on malformed text (a test failure).
pub fn decode(input: &str) -> Vec<u8> {
    STANDARD
        .decode(input)
        .unwrap_or_else(|e| panic!("not base64 ({e}): {input:?}"))
}

/// Decodes to text (keys and values in tests are UTF-8).
pub fn decode_str(input: &str) -> String {
    String::from_utf8(decode(input)).expect("UTF-8 after base64")
}
