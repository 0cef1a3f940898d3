use std::pin::Pin;
use std::task::{Context, Poll};

use loona_hpack::{Decoder, Encoder};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use super::rewrite::*;
use super::*;

const URL: &str = "http://127.0.0.1:23372";
const DATA: u8 = 0x0;
const SETTINGS: u8 = 0x4;
const WINDOW_UPDATE: u8 = 0x8;
const END_STREAM: u8 = 0x1;

type Headers = Vec<(Vec<u8>, Vec<u8>)>;

/// What grpc-go sends for a unary call.
fn request(authority: &str) -> Headers {
    [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/etcdserverpb.Maintenance/Status"),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("user-agent", "grpc-go/1.26.0"),
        ("te", "trailers"),
        ("grpc-accept-encoding", "identity,deflate,gzip"),
    ]
    .iter()
    .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect()
}

fn encode(encoder: &mut Encoder<'static>, headers: &Headers) -> Vec<u8> {
    encoder.encode(headers.iter().map(|(n, v)| (&n[..], &v[..])))
}

fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let len = payload.len();
    FrameHeader {
        len,
        kind,
        flags,
        stream_id,
    }
    .write(&mut out);
    out.extend_from_slice(payload);
    out
}

/// A connection as grpc-go opens it: preface, SETTINGS, WINDOW_UPDATE, then two calls whose
/// header blocks come from one encoder (the second refers to the first's table entries).
fn connection(authority: &str) -> Vec<u8> {
    let mut client = Encoder::new();
    let first = encode(&mut client, &request(authority));
    let second = encode(&mut client, &request(authority));
    assert!(
        second.len() + 40 < first.len(),
        "the second block uses the dynamic table"
    );
    let mut input = PREFACE.to_vec();
    input.extend(frame(SETTINGS, 0, 0, &[0, 4, 0, 0x40, 0, 0]));
    input.extend(frame(WINDOW_UPDATE, 0, 0, &[0, 0x0f, 0, 1]));
    input.extend(frame(HEADERS, END_HEADERS, 1, &first));
    input.extend(frame(DATA, END_STREAM, 1, &[0, 0, 0, 0, 0]));
    input.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &second));
    input
}

fn feed_all(input: &[u8]) -> (Vec<u8>, Mode) {
    let mut r = Rewriter::default();
    let mut out = Vec::new();
    r.feed(input, &mut out).expect("well-formed input");
    (out, r.mode)
}

/// The frames after the preface, as (type, flags, stream, payload).
fn frames(bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    assert_eq!(&bytes[..PREFACE.len()], PREFACE);
    let mut rest = &bytes[PREFACE.len()..];
    let mut out = Vec::new();
    while let Some(h) = FrameHeader::parse(rest) {
        let payload = rest[FRAME_HEADER..FRAME_HEADER + h.len].to_vec();
        out.push((h.kind, h.flags, h.stream_id, payload));
        rest = &rest[FRAME_HEADER + h.len..];
    }
    assert!(rest.is_empty(), "output ends in the middle of a frame");
    out
}

/// Decodes every header block with one decoder as h2 would (4096-byte table at most):
/// (stream, HEADERS flags, headers) per block.
fn header_blocks(bytes: &[u8]) -> Vec<(u32, u8, Headers)> {
    let mut decoder = Decoder::new();
    decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
    let mut blocks = Vec::new();
    let mut open: Option<(u32, u8, Vec<u8>)> = None;
    for (kind, flags, stream, payload) in frames(bytes) {
        match (kind, open.as_mut()) {
            (HEADERS, None) => {
                assert_eq!(flags & (PADDED | PRIORITY), 0, "padding or priority left");
                open = Some((stream, flags, payload));
            }
            (CONTINUATION, Some((s, _, fragment))) if *s == stream => fragment.extend(payload),
            (HEADERS | CONTINUATION, _) => panic!("misplaced frame type {kind}"),
            _ => continue,
        }
        if flags & END_HEADERS != 0 {
            let (stream, flags, fragment) = open.take().unwrap();
            let headers = decoder.decode(&fragment).expect("server-side decode");
            blocks.push((stream, flags, headers));
        }
    }
    assert!(open.is_none(), "a header block was left open");
    blocks
}

#[test]
fn url_authority_is_rewritten_on_every_request() {
    let (out, mode) = feed_all(&connection(URL));
    assert!(mode == Mode::Rewrite);
    let blocks = header_blocks(&out);
    assert_eq!(blocks.len(), 2);
    for (_, _, headers) in &blocks {
        assert_eq!(headers, &request("127.0.0.1:23372"));
    }
    assert_eq!((blocks[0].0, blocks[0].1), (1, END_HEADERS));
    assert_eq!((blocks[1].0, blocks[1].1), (3, END_HEADERS | END_STREAM));
    // the other frames are untouched and in place
    let kinds: Vec<_> = frames(&out).iter().map(|f| (f.0, f.1, f.2)).collect();
    let expected = [
        (SETTINGS, 0, 0),
        (WINDOW_UPDATE, 0, 0),
        (HEADERS, END_HEADERS, 1),
        (DATA, END_STREAM, 1),
        (HEADERS, END_HEADERS | END_STREAM, 3),
    ];
    assert_eq!(kinds, expected);
    assert_eq!(frames(&out)[3].3, [0, 0, 0, 0, 0]);
}

#[test]
fn well_formed_authority_passes_through_byte_identical() {
    let input = connection("127.0.0.1:2379");
    let (out, mode) = feed_all(&input);
    assert!(mode == Mode::PassThrough);
    assert_eq!(out, input);
}

#[test]
fn http1_passes_through() {
    let input = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:2379\r\n\r\n";
    let (out, mode) = feed_all(input);
    assert!(mode == Mode::PassThrough);
    assert_eq!(out, input);
    // the start of a preface is held back, and handed over as is when the client stops
    let mut r = Rewriter::default();
    let mut out = Vec::new();
    r.feed(b"PRI * HTTP/2", &mut out).unwrap();
    assert!(out.is_empty());
    r.end(&mut out);
    assert_eq!(out, b"PRI * HTTP/2");
}

#[test]
fn continuation_frames_are_reassembled() {
    let block = encode(&mut Encoder::new(), &request(URL));
    let (a, rest) = block.split_at(10);
    let (b, c) = rest.split_at(20);
    // HEADERS with 3 bytes of padding and a priority field, then two CONTINUATIONs
    let mut payload = vec![3, 0, 0, 0, 0, 16];
    payload.extend_from_slice(a);
    payload.extend_from_slice(&[0, 0, 0]);
    let mut input = PREFACE.to_vec();
    input.extend(frame(HEADERS, END_STREAM | PADDED | PRIORITY, 5, &payload));
    input.extend(frame(CONTINUATION, 0, 5, b));
    input.extend(frame(CONTINUATION, END_HEADERS, 5, c));
    let (out, _) = feed_all(&input);
    let blocks = header_blocks(&out);
    assert_eq!(
        blocks,
        [(5, END_STREAM | END_HEADERS, request("127.0.0.1:23372"))]
    );
}

#[test]
fn large_blocks_are_written_as_continuations() {
    let mut headers = request(URL);
    headers.push((b"x-big".to_vec(), vec![b'x'; 40_000]));
    let mut input = PREFACE.to_vec();
    input.extend(frame(
        HEADERS,
        END_HEADERS,
        1,
        &encode(&mut Encoder::new(), &headers),
    ));
    let (out, _) = feed_all(&input);
    let sizes: Vec<_> = frames(&out).iter().map(|f| (f.0, f.1, f.3.len())).collect();
    assert_eq!(sizes[0], (HEADERS, 0, MAX_FRAME));
    assert_eq!(sizes[1], (CONTINUATION, 0, MAX_FRAME));
    assert_eq!((sizes[2].0, sizes[2].1), (CONTINUATION, END_HEADERS));
    headers[3].1 = b"127.0.0.1:23372".to_vec();
    assert!(header_blocks(&out) == [(1, 0, headers)]);
}

/// Hands out its bytes 1 to 7 at a time.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    reads: usize,
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = (self.reads % 7 + 1)
            .min(self.data.len() - self.pos)
            .min(buf.remaining());
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        self.reads += 1;
        Poll::Ready(Ok(()))
    }
}

async fn read_through(data: Vec<u8>) -> io::Result<Vec<u8>> {
    let trickle = Trickle {
        data,
        pos: 0,
        reads: 0,
    };
    let mut out = Vec::new();
    AuthorityStream::new(trickle).read_to_end(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn input_split_across_many_small_reads() {
    let rewrite = connection(URL);
    assert_eq!(
        read_through(rewrite.clone()).await.unwrap(),
        feed_all(&rewrite).0
    );
    let plain = connection("127.0.0.1:2379");
    assert_eq!(read_through(plain.clone()).await.unwrap(), plain);
    let http1 = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec();
    assert_eq!(read_through(http1.clone()).await.unwrap(), http1);
}

#[tokio::test]
async fn malformed_input_closes_the_connection() {
    let block = encode(&mut Encoder::new(), &request(URL));
    let with = |frames: &[Vec<u8>]| [PREFACE.to_vec(), frames.concat()].concat();
    let cases = [
        // CONTINUATION with no HEADERS before it
        with(&[frame(CONTINUATION, END_HEADERS, 1, &block)]),
        // another frame where the CONTINUATION is due
        with(&[frame(HEADERS, 0, 1, &block), frame(DATA, 0, 1, b"x")]),
        // CONTINUATION on another stream
        with(&[
            frame(HEADERS, 0, 1, &block),
            frame(CONTINUATION, END_HEADERS, 3, b""),
        ]),
        // padding longer than the frame
        with(&[frame(HEADERS, END_HEADERS | PADDED, 1, &[200, 0x82])]),
        // an index past both tables
        with(&[frame(HEADERS, END_HEADERS, 1, &[0xff, 0x7f])]),
        // a table size update past SETTINGS_HEADER_TABLE_SIZE
        with(&[frame(HEADERS, END_HEADERS, 1, &[0x3f, 0xe1, 0x3f, 0x82])]),
        // a block larger than MAX_BLOCK, refused from its frame header alone
        with(&[vec![0xff, 0xff, 0xff, HEADERS, 0, 0, 0, 0, 1]]),
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let err = read_through(case).await.expect_err(&format!("case {i}"));
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "case {i}: {err}");
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..2000 {
        let mut input = PREFACE.to_vec();
        let len = next() % 200;
        for _ in 0..len {
            let byte = next() as u8;
            // mostly small frame lengths and header frame types, so parsing goes deep
            input.push(match next() % 4 {
                0 => byte % 10,
                _ => byte,
            });
        }
        let mut r = Rewriter::default();
        let mut out = Vec::new();
        for piece in input.chunks(1 + next() as usize % 16) {
            if r.feed(piece, &mut out).is_err() {
                break;
            }
        }
        r.end(&mut out);
    }
}
