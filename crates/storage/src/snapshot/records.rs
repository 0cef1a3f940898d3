//! The decompressed body cut into records without copying them: the stream is decompressed
//! into large shared chunks and each record is a slice of one, so the keys and values decoded
//! from it (`Bytes` fields) are slices too. A chunk is freed when the last record cut from it
//! is dropped, so memory follows the records in flight, not the file.

use std::io::{ErrorKind, Read};

use prost::bytes::{Buf, Bytes, BytesMut};

/// Decompressed bytes per chunk (about a thousand 1 KiB records).
const CHUNK: usize = 1 << 20;

/// Why a record's bytes could not be taken.
#[derive(Debug)]
pub(super) enum Cut {
    /// Reading the stream failed.
    Read(std::io::Error),
    /// The stream ended inside the record, after `found` of its bytes.
    Short(usize),
}

pub(super) struct Records<R> {
    src: R,
    /// Decompressed bytes not yet cut (`..filled`) and room for more (zeroed once, when the
    /// chunk is made); records are split off its front.
    buf: BytesMut,
    filled: usize,
    /// A read error, reported only when a record needs bytes past what was read before it,
    /// as a byte-by-byte reader would.
    failed: Option<std::io::Error>,
    eof: bool,
}

impl<R: Read> Records<R> {
    pub(super) fn new(src: R) -> Self {
        Records {
            src,
            buf: BytesMut::new(),
            filled: 0,
            failed: None,
            eof: false,
        }
    }

    pub(super) fn get_ref(&self) -> &R {
        &self.src
    }

    /// The source, positioned after the last byte it decompressed.
    pub(super) fn into_inner(self) -> R {
        self.src
    }

    /// The next record's length prefix (a protobuf varint), `None` at a clean end of stream.
    pub(super) fn next_len(&mut self) -> std::io::Result<Option<u64>> {
        self.fill(10);
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf[..self.filled].get(i) else {
                if let Some(e) = self.failed.take() {
                    return Err(e);
                }
                return if i == 0 {
                    Ok(None)
                } else {
                    Err(ErrorKind::UnexpectedEof.into())
                };
            };
            value |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                self.buf.advance(i + 1);
                self.filled -= i + 1;
                return Ok(Some(value));
            }
        }
        Err(std::io::Error::new(
            ErrorKind::InvalidData,
            "record length is not a varint",
        ))
    }

    /// The record's `len` bytes that follow its prefix, as a slice of the chunk. The buffer
    /// grows with what the stream really holds, never with what the prefix claims.
    pub(super) fn take(&mut self, len: u64) -> Result<Bytes, Cut> {
        let want = usize::try_from(len).unwrap_or(usize::MAX);
        self.fill(want);
        if self.filled < want {
            return Err(match self.failed.take() {
                Some(e) => Cut::Read(e),
                None => Cut::Short(self.filled),
            });
        }
        self.filled -= want;
        Ok(self.buf.split_to(want).freeze())
    }

    /// Reads until `want` bytes are buffered, the stream ends or a read fails (kept in
    /// `failed`).
    fn fill(&mut self, want: usize) {
        while self.filled < want && !self.eof && self.failed.is_none() {
            if self.filled == self.buf.len() {
                // a new chunk, with the start of the record being cut; the old chunk lives on
                // in the records already cut from it. Growth doubles with the data read, so a
                // record larger than a chunk costs amortized copies, not a huge allocation.
                let cap = CHUNK.max(want.min(self.filled.saturating_mul(2)));
                let mut fresh = BytesMut::zeroed(cap);
                fresh[..self.filled].copy_from_slice(&self.buf[..self.filled]);
                self.buf = fresh;
            }
            match self.src.read(&mut self.buf[self.filled..]) {
                Ok(n) => {
                    self.filled += n;
                    self.eof = n == 0;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => self.failed = Some(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(records: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            prost::encoding::encode_varint(r.len() as u64, &mut out);
            out.extend_from_slice(r);
        }
        out
    }

    fn all(src: &[u8]) -> Result<Vec<Bytes>, Cut> {
        let mut rs = Records::new(src);
        let mut out = Vec::new();
        while let Some(len) = rs.next_len().map_err(Cut::Read)? {
            out.push(rs.take(len)?);
        }
        Ok(out)
    }

    #[test]
    fn cuts_records_across_chunks_and_reads_large_ones() {
        let big = vec![7u8; 3 * CHUNK + 5];
        let small: Vec<Vec<u8>> = (0..5000u32).map(|i| vec![i as u8; 700]).collect();
        let mut parts: Vec<&[u8]> = small.iter().map(|v| v.as_slice()).collect();
        parts.insert(2500, &big);
        parts.push(b"");
        let got = all(&framed(&parts)).unwrap();
        assert_eq!(got.len(), parts.len());
        for (g, p) in got.iter().zip(&parts) {
            assert_eq!(g.as_ref(), *p);
        }
    }

    #[test]
    fn records_are_slices_of_one_chunk() {
        let got = all(&framed(&[b"abc", b"defg"])).unwrap();
        // the second starts right after the first and its one-byte length prefix
        assert_eq!(got[1].as_ptr(), got[0].as_ptr().wrapping_add(4));
    }

    #[test]
    fn a_short_or_lying_stream_is_refused_without_a_large_allocation() {
        let mut src = framed(&[b"abc"]);
        src.push(0x80); // a length prefix cut short
        assert!(matches!(all(&src), Err(Cut::Read(e)) if e.kind() == ErrorKind::UnexpectedEof));
        let mut src = Vec::new();
        prost::encoding::encode_varint(1 << 40, &mut src);
        src.extend_from_slice(b"xyz");
        assert!(matches!(all(&src), Err(Cut::Short(3))));
        let e = Records::new([0xffu8; 11].as_slice())
            .next_len()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData);
    }

    /// A read error surfaces only when a record needs bytes past it.
    #[test]
    fn a_read_error_waits_for_the_record_that_needs_it() {
        struct Failing<'a>(&'a [u8]);
        impl Read for Failing<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Err(std::io::Error::other("broken"));
                }
                let n = self.0.read(buf)?;
                Ok(n)
            }
        }
        let src = framed(&[b"one", b"two"]);
        let mut rs = Records::new(Failing(&src[..src.len() - 1]));
        let len = rs.next_len().unwrap().unwrap();
        assert_eq!(rs.take(len).unwrap().as_ref(), b"one");
        let len = rs.next_len().unwrap().unwrap();
        assert!(matches!(rs.take(len), Err(Cut::Read(e)) if e.to_string() == "broken"));
    }
}
