//! Standard base64 (with padding), as Go's `encoding/json` writes `[]byte` fields.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Encodes bytes the way etcdctl `-w json` prints keys and values.
pub fn encode(input: impl AsRef<[u8]>) -> String {
    let input = input.as_ref();
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard padded base64; panics on malformed input (test helper).
pub fn decode(input: &str) -> Vec<u8> {
    let digits: Vec<u32> = input
        .bytes()
        .filter(|&c| c != b'=')
        .map(|c| {
            ALPHABET
                .iter()
                .position(|&a| a == c)
                .unwrap_or_else(|| panic!("not base64: {input:?}")) as u32
        })
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | d << (18 - 6 * i));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// Decodes base64 to a UTF-8 string (test keys and values are text).
pub fn decode_str(input: &str) -> String {
    String::from_utf8(decode(input)).expect("base64 payload is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_padding_length() {
        for (plain, coded) in [
            ("", ""),
            ("a", "YQ=="),
            ("ab", "YWI="),
            ("abc", "YWJj"),
            ("lk", "bGs="),
        ] {
            assert_eq!(encode(plain), coded);
            assert_eq!(decode_str(coded), plain);
        }
    }
}
