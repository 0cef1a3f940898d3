//! Oversized messages: tonic refuses a message past the decoding limit with `OutOfRange`
//! ("Error, decoded message length too large: found N bytes, the limit is: M bytes"), while
//! etcd (grpc-go) answers `ResourceExhausted` "grpc: received message larger than max (N vs.
//! M)". Clients and retry policies key on the code, so this layer rewrites that one status to
//! etcd's, wherever it travels (response headers or trailers). Nothing else is touched.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Response};
use http_body_util::BodyExt;

const TONIC_TOO_LARGE: &str = "Error, decoded message length too large: found ";
/// grpc-go's words for a message past the limit, which etcd's clients see.
const GRPC_TOO_LARGE: &str = "grpc: received message larger than max";

/// grpc-go's refusal of a `found`-byte message past `limit` (the text etcd answers with).
pub(crate) fn too_large(found: impl std::fmt::Display, limit: impl std::fmt::Display) -> String {
    format!("{GRPC_TOO_LARGE} ({found} vs. {limit})")
}
const OUT_OF_RANGE: &str = "11";
const RESOURCE_EXHAUSTED: &str = "8";

pub async fn etcd_size_error(resp: Response<Body>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    rewrite(&mut parts.headers);
    let body = body.map_frame(|frame| match frame.into_trailers() {
        Ok(mut trailers) => {
            rewrite(&mut trailers);
            http_body::Frame::trailers(trailers)
        }
        Err(data) => data,
    });
    Response::from_parts(parts, Body::new(body))
}

fn rewrite(h: &mut HeaderMap) {
    let is_out_of_range = h.get("grpc-status").is_some_and(|v| v == OUT_OF_RANGE);
    let Some(msg) = h
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
    else {
        return;
    };
    if !is_out_of_range || !msg.starts_with(TONIC_TOO_LARGE) {
        return;
    }
    let numbers: Vec<&str> = msg
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    let text = match numbers.as_slice() {
        [found, limit, ..] => too_large(found, limit),
        _ => GRPC_TOO_LARGE.to_string(),
    };
    h.insert("grpc-status", HeaderValue::from_static(RESOURCE_EXHAUSTED));
    if let Ok(v) = HeaderValue::from_str(&text.replace(' ', "%20")) {
        h.insert("grpc-message", v);
    }
}

/// grpc-message is percent-encoded (tonic encodes spaces too).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(status: &'static str, msg: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("grpc-status", HeaderValue::from_static(status));
        h.insert("grpc-message", HeaderValue::from_static(msg));
        h
    }

    #[test]
    fn rewrites_only_the_size_error() {
        let mut h = headers(
            "11",
            "Error,%20decoded%20message%20length%20too%20large:%20found%203000011%20bytes,%20the%20limit%20is:%202097152%20bytes",
        );
        rewrite(&mut h);
        assert_eq!(h["grpc-status"], "8");
        assert_eq!(
            percent_decode(h["grpc-message"].to_str().unwrap()),
            "grpc: received message larger than max (3000011 vs. 2097152)"
        );
        let mut other = headers(
            "11",
            "etcdserver: mvcc: required revision is a future revision",
        );
        rewrite(&mut other);
        assert_eq!(other["grpc-status"], "11");
    }
}
