//! NDJSON framing: one envelope per line, `\n` terminated (a `\r` before it is tolerated).
//!
//! The decoder yields each line's bytes without parsing them, so the caller decides how to
//! report bad JSON (and can still answer with the line's `id`). A line longer than the limit is
//! an error after which the stream must be closed: the rest of the oversized line cannot be
//! told apart from the next request.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Default maximum line length: 1 MiB, the newline excluded.
pub const DEFAULT_MAX_LINE: usize = 1024 * 1024;

/// Splits a byte stream into lines of at most `max_line` bytes.
#[derive(Debug, Clone)]
pub struct NdjsonCodec {
    max_line: usize,
    /// Bytes of the buffer already searched for `\n`, so a long line is scanned once.
    scanned: usize,
}

#[derive(Debug)]
pub enum CodecError {
    /// A line (or an unterminated prefix of one) exceeded the limit.
    FrameTooLarge {
        limit: usize,
    },
    Io(std::io::Error),
}

impl std::fmt::Display for CodecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodecError::FrameTooLarge { limit } => write!(f, "line longer than {limit} bytes"),
            CodecError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CodecError {}

impl From<std::io::Error> for CodecError {
    fn from(e: std::io::Error) -> Self {
        CodecError::Io(e)
    }
}

impl NdjsonCodec {
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line,
            scanned: 0,
        }
    }

    pub fn max_line(&self) -> usize {
        self.max_line
    }
}

impl Default for NdjsonCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE)
    }
}

impl Decoder for NdjsonCodec {
    type Item = BytesMut;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
        loop {
            let Some(offset) = memchr_newline(&buf[self.scanned..]) else {
                self.scanned = buf.len();
                // Allow for a "\r\n" ending: the limit counts the content only.
                if buf.len() > self.max_line + 1 {
                    return Err(CodecError::FrameTooLarge {
                        limit: self.max_line,
                    });
                }
                return Ok(None);
            };
            let end = self.scanned + offset;
            self.scanned = 0;
            let mut line = buf.split_to(end + 1);
            line.truncate(end);
            if line.last() == Some(&b'\r') {
                line.truncate(end - 1);
            }
            if line.len() > self.max_line {
                return Err(CodecError::FrameTooLarge {
                    limit: self.max_line,
                });
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue; // blank lines are keep-alives, not requests
            }
            return Ok(Some(line));
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
        match self.decode(buf)? {
            Some(line) => Ok(Some(line)),
            None => {
                // A line cut off by the peer closing is never acted upon: it may be half of a
                // request, and there is nobody left to answer.
                buf.advance(buf.len());
                self.scanned = 0;
                Ok(None)
            }
        }
    }
}

/// The first newline (vectorized: byte by byte, finding line ends was a seventh of the socket
/// thread's instructions).
fn memchr_newline(haystack: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', haystack)
}

impl Encoder<Bytes> for NdjsonCodec {
    type Error = CodecError;

    /// Writes `line` followed by `\n`. The line must not contain a newline (serde_json never
    /// writes one in compact output).
    fn encode(&mut self, line: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        if line.len() > self.max_line {
            return Err(CodecError::FrameTooLarge {
                limit: self.max_line,
            });
        }
        dst.reserve(line.len() + 1);
        dst.put_slice(&line);
        dst.put_u8(b'\n');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(codec: &mut NdjsonCodec, input: &[u8]) -> Result<Vec<Vec<u8>>, CodecError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(line) = codec.decode(&mut buf)? {
            out.push(line.to_vec());
        }
        if let Some(line) = codec.decode_eof(&mut buf)? {
            out.push(line.to_vec());
        }
        Ok(out)
    }

    #[test]
    fn splits_lines_and_skips_blank_ones() {
        let mut codec = NdjsonCodec::new(16);
        let lines = decode_all(&mut codec, b"{\"a\":1}\n\n  \r\n{}\r\n").unwrap();
        assert_eq!(lines, vec![b"{\"a\":1}".to_vec(), b"{}".to_vec()]);
    }

    #[test]
    fn half_written_line_at_eof_is_dropped() {
        let mut codec = NdjsonCodec::new(16);
        assert_eq!(
            decode_all(&mut codec, b"{}\n{\"a\"").unwrap(),
            vec![b"{}".to_vec()]
        );
    }

    #[test]
    fn line_at_the_limit_passes_and_one_more_byte_fails() {
        let mut codec = NdjsonCodec::new(4);
        assert_eq!(
            decode_all(&mut codec, b"abcd\n").unwrap(),
            vec![b"abcd".to_vec()]
        );
        assert!(matches!(
            decode_all(&mut codec, b"abcde\n"),
            Err(CodecError::FrameTooLarge { limit: 4 })
        ));
        // Unterminated and already too long: refused before the newline arrives.
        let mut buf = BytesMut::from(&b"abcdefgh"[..]);
        assert!(codec.decode(&mut buf).is_err());
    }

    proptest! {
        #[test]
        fn any_chunking_yields_the_same_lines(
            lines in proptest::collection::vec("[a-z{}\":,0-9]{1,40}", 0..20),
            cut in 1usize..17,
        ) {
            let mut input = Vec::new();
            for l in &lines { input.extend_from_slice(l.as_bytes()); input.push(b'\n'); }
            let mut codec = NdjsonCodec::new(64);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for chunk in input.chunks(cut) {
                buf.extend_from_slice(chunk);
                while let Some(line) = codec.decode(&mut buf).unwrap() { out.push(line.to_vec()); }
            }
            let expected: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
            prop_assert_eq!(out, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut codec = NdjsonCodec::new(32);
            let _ = decode_all(&mut codec, &bytes);
        }
    }
}
