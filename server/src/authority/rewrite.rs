//! The inbound HTTP/2 byte stream's parser and rewriter, without I/O (see the parent module).

use loona_hpack::decoder::DecoderError;
use loona_hpack::{Decoder, Encoder};

pub(super) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub(super) const FRAME_HEADER: usize = 9;
pub(super) const HEADERS: u8 = 0x1;
pub(super) const CONTINUATION: u8 = 0x9;
pub(super) const END_HEADERS: u8 = 0x4;
pub(super) const PADDED: u8 = 0x8;
pub(super) const PRIORITY: u8 = 0x20;
/// The default SETTINGS_MAX_FRAME_SIZE, which the server keeps: no frame we write is larger.
pub(super) const MAX_FRAME: usize = 16_384;
/// The default SETTINGS_HEADER_TABLE_SIZE, which the server keeps: the most the client's
/// encoder may ask for. Enforced here because the client's size updates never reach h2.
pub(super) const HEADER_TABLE_SIZE: usize = 4096;
/// The largest header block (all its fragments) before the connection is closed.
pub(super) const MAX_BLOCK: usize = 1 << 20;

/// Why a connection was closed.
#[derive(Debug, thiserror::Error)]
pub(super) enum Malformed {
    #[error("HTTP/2 frame of type {kind:#x} where a CONTINUATION of stream {stream} was due")]
    ContinuationExpected { kind: u8, stream: u32 },
    #[error("HTTP/2 CONTINUATION frame without a HEADERS frame before it")]
    StrayContinuation,
    #[error("HTTP/2 HEADERS frame shorter than its padding and priority fields")]
    ShortHeaders,
    #[error("HTTP/2 header block larger than {MAX_BLOCK} bytes")]
    BlockTooLarge,
    #[error("HPACK header block cannot be decoded: {0}")]
    Hpack(DecoderError),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Waiting for the client preface; any other first bytes mean pass-through.
    Preface,
    /// Frames until the first header block decides.
    FirstRequest,
    Rewrite,
    PassThrough,
}

/// The inbound byte stream's parser and rewriter, without I/O.
pub(super) struct Rewriter {
    pub(super) mode: Mode,
    /// Input not parsed yet: less than a frame.
    input: Vec<u8>,
    /// Payload bytes of the current non-header frame still to copy through.
    skip: usize,
    /// A header block waiting for its END_HEADERS.
    block: Option<Block>,
    decoder: Decoder<'static>,
    encoder: Encoder<'static>,
    /// Whether the server's decoder has been told its table size is 0.
    table_size_sent: bool,
}

struct Block {
    stream_id: u32,
    /// The HEADERS frame's flags.
    flags: u8,
    /// The frames as received, replayed unchanged if the connection needs no rewriting.
    raw: Vec<u8>,
    fragment: Vec<u8>,
}

pub(super) struct FrameHeader {
    pub(super) len: usize,
    pub(super) kind: u8,
    pub(super) flags: u8,
    pub(super) stream_id: u32,
}

impl FrameHeader {
    pub(super) fn parse(b: &[u8]) -> Option<Self> {
        let h: &[u8; FRAME_HEADER] = b.get(..FRAME_HEADER)?.try_into().ok()?;
        Some(Self {
            len: u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize,
            kind: h[3],
            flags: h[4],
            stream_id: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        })
    }

    pub(super) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.len as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&[self.kind, self.flags]);
        out.extend_from_slice(&self.stream_id.to_be_bytes());
    }
}

impl Default for Rewriter {
    fn default() -> Self {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        let mut encoder = Encoder::new();
        encoder.set_max_table_size(0);
        Self {
            mode: Mode::Preface,
            input: Vec::new(),
            skip: 0,
            block: None,
            decoder,
            encoder,
            table_size_sent: false,
        }
    }
}

impl Rewriter {
    pub(super) fn passes_through(&self) -> bool {
        self.mode == Mode::PassThrough
    }

    /// Parses `data`, appending what the server should read to `out`.
    pub(super) fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
        let mut input = std::mem::take(&mut self.input);
        input.extend_from_slice(data);
        let result = self.parse(&input, out);
        if let Ok(used) = result {
            input.drain(..used);
            self.input = input;
        }
        result.map(drop)
    }

    /// The client closed its side: whatever was held back unparsed goes to the server as is.
    pub(super) fn end(&mut self, out: &mut Vec<u8>) {
        if matches!(self.mode, Mode::Preface | Mode::FirstRequest) {
            if let Some(block) = self.block.take() {
                out.extend_from_slice(&block.raw);
            }
            out.append(&mut self.input);
        }
        self.mode = Mode::PassThrough;
    }

    /// Returns how many bytes of `input` were used.
    fn parse(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, Malformed> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.mode {
                Mode::PassThrough => {
                    out.extend_from_slice(rest);
                    return Ok(input.len());
                }
                Mode::Preface => {
                    let n = rest.len().min(PREFACE.len());
                    if rest[..n] != PREFACE[..n] {
                        self.mode = Mode::PassThrough;
                    } else if n < PREFACE.len() {
                        return Ok(pos);
                    } else {
                        out.extend_from_slice(PREFACE);
                        pos += PREFACE.len();
                        self.mode = Mode::FirstRequest;
                    }
                }
                Mode::FirstRequest | Mode::Rewrite if self.skip > 0 => {
                    let n = self.skip.min(rest.len());
                    out.extend_from_slice(&rest[..n]);
                    pos += n;
                    self.skip -= n;
                    if self.skip > 0 {
                        return Ok(pos);
                    }
                }
                Mode::FirstRequest | Mode::Rewrite => {
                    let Some(h) = FrameHeader::parse(rest) else {
                        return Ok(pos);
                    };
                    if h.kind != HEADERS && h.kind != CONTINUATION {
                        if let Some(b) = &self.block {
                            let (kind, stream) = (h.kind, b.stream_id);
                            return Err(Malformed::ContinuationExpected { kind, stream });
                        }
                        out.extend_from_slice(&rest[..FRAME_HEADER]);
                        pos += FRAME_HEADER;
                        self.skip = h.len;
                        continue;
                    }
                    let held = self.block.as_ref().map_or(0, |b| b.fragment.len());
                    if held + h.len > MAX_BLOCK {
                        return Err(Malformed::BlockTooLarge);
                    }
                    let Some(frame) = rest.get(..FRAME_HEADER + h.len) else {
                        return Ok(pos);
                    };
                    pos += frame.len();
                    self.header_frame(&h, frame, out)?;
                }
            }
        }
    }

    /// Adds a HEADERS or CONTINUATION frame to the block, and handles the block when complete.
    fn header_frame(
        &mut self,
        h: &FrameHeader,
        frame: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Malformed> {
        let keep_raw = self.mode == Mode::FirstRequest;
        let payload = &frame[FRAME_HEADER..];
        let mut block = match (h.kind, self.block.take()) {
            (HEADERS, None) => Block {
                stream_id: h.stream_id,
                flags: h.flags,
                raw: if keep_raw { frame.to_vec() } else { Vec::new() },
                fragment: headers_fragment(h.flags, payload)?.to_vec(),
            },
            (CONTINUATION, Some(mut b)) if b.stream_id == h.stream_id => {
                if keep_raw {
                    b.raw.extend_from_slice(frame);
                }
                b.fragment.extend_from_slice(payload);
                b
            }
            (kind, Some(b)) => {
                let stream = b.stream_id;
                return Err(Malformed::ContinuationExpected { kind, stream });
            }
            (_, None) => return Err(Malformed::StrayContinuation),
        };
        if h.flags & END_HEADERS == 0 {
            self.block = Some(block);
            return Ok(());
        }
        let mut headers = self
            .decoder
            .decode(&block.fragment)
            .map_err(Malformed::Hpack)?;
        if self.mode == Mode::FirstRequest {
            let url = headers
                .iter()
                .find(|(n, _)| n == b":authority")
                .map(|(_, v)| v);
            if !url.is_some_and(|v| v.windows(3).any(|w| w == b"://")) {
                self.mode = Mode::PassThrough;
                out.append(&mut block.raw);
                return Ok(());
            }
            tracing::debug!(
                authority = %String::from_utf8_lossy(url.map_or(&[][..], |v| v)),
                "client sent a URL as :authority (etcdctl --cluster); rewriting its requests"
            );
            self.mode = Mode::Rewrite;
        }
        for (name, value) in &mut headers {
            if name == b":authority" {
                *value = host_port(value).to_vec();
            }
        }
        let mut encoded = Vec::new();
        if !self.table_size_sent {
            encoded.push(0x20); // dynamic table size update: 0
            self.table_size_sent = true;
        }
        encoded.extend(
            self.encoder
                .encode(headers.iter().map(|(n, v)| (&n[..], &v[..]))),
        );
        write_block(block.stream_id, block.flags, &encoded, out);
        Ok(())
    }
}

/// A HEADERS frame's payload without its padding and priority fields.
fn headers_fragment(flags: u8, payload: &[u8]) -> Result<&[u8], Malformed> {
    let mut p = payload;
    let mut pad = 0;
    if flags & PADDED != 0 {
        let (&n, rest) = p.split_first().ok_or(Malformed::ShortHeaders)?;
        pad = n as usize;
        p = rest;
    }
    if flags & PRIORITY != 0 {
        p = p.get(5..).ok_or(Malformed::ShortHeaders)?;
    }
    let end = p.len().checked_sub(pad).ok_or(Malformed::ShortHeaders)?;
    Ok(&p[..end])
}

/// Writes `block` as a HEADERS frame with the original flags (PADDED and PRIORITY dropped)
/// and, past [`MAX_FRAME`], CONTINUATION frames; END_HEADERS on the last.
fn write_block(stream_id: u32, flags: u8, block: &[u8], out: &mut Vec<u8>) {
    let mut chunks = block.chunks(MAX_FRAME).peekable();
    let mut kind = HEADERS;
    let mut flags = flags & !(PADDED | PRIORITY | END_HEADERS);
    loop {
        let chunk = chunks.next().unwrap_or_default();
        let last = chunks.peek().is_none();
        let h = FrameHeader {
            len: chunk.len(),
            kind,
            flags: if last { flags | END_HEADERS } else { flags },
            stream_id,
        };
        h.write(out);
        out.extend_from_slice(chunk);
        if last {
            return;
        }
        kind = CONTINUATION;
        flags = 0;
    }
}

/// `http://127.0.0.1:2379/` → `127.0.0.1:2379`; anything without a scheme is left alone.
fn host_port(authority: &[u8]) -> &[u8] {
    let Some(i) = authority.windows(3).position(|w| w == b"://") else {
        return authority;
    };
    let rest = &authority[i + 3..];
    let end = rest
        .iter()
        .position(|c| matches!(c, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    &rest[..end]
}
