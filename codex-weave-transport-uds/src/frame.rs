//! The socket's two framings and how a connection picks one.
//!
//! - **NDJSON** (wire v1, the default): one JSON envelope per `\n`-terminated line.
//! - **Protobuf**: a client that opens with [`PREAMBLE`] gets the same 8 bytes back, and from
//!   then on both sides send frames: a 4-byte big-endian length, then a `weave.v1.Envelope`
//!   (`docs/weave/weave.proto`). Same envelopes, same semantics, fewer bytes to parse.
//!
//! The preamble starts with a NUL byte, which no JSON text can start with, so the bus tells the
//! two apart from a connection's first byte without waiting for more.

use bytes::{BufMut, Bytes, BytesMut};
use codex_weave_runtime::pb::PbEnvelope;
use codex_weave_runtime::{check_json, Envelope, RawRequest};
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

use crate::codec::{CodecError, NdjsonCodec};

/// What a binary-framing client sends first, and what the bus answers: NUL, then `WEAVEP1`
/// (Weave, protobuf, version 1).
pub const PREAMBLE: [u8; 8] = *b"\0WEAVEP1";

/// Bytes in a frame's length prefix.
pub const LENGTH_PREFIX: usize = 4;
/// Bytes reserved for an encoded line before writing it (a delivered message is about 500).
const LINE_CAPACITY: usize = 768;

/// How envelopes are framed on one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Framing {
    #[default]
    Ndjson,
    Protobuf,
}

/// A frame that does not hold a valid envelope: the envelope's `id` when it could be read (for
/// the refusal's `corr`), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFrame {
    pub corr: Option<String>,
    pub message: String,
}

impl Framing {
    /// `"ndjson"` or `"protobuf"`.
    pub fn parse(s: &str) -> Option<Framing> {
        match s {
            "ndjson" => Some(Framing::Ndjson),
            "protobuf" => Some(Framing::Protobuf),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Framing::Ndjson => "ndjson",
            Framing::Protobuf => "protobuf",
        }
    }

    /// One complete frame holding `env`: a line with its `\n`, or a length-prefixed message.
    pub fn encode<P: Serialize, M: Serialize>(self, env: &Envelope<P, M>) -> Bytes {
        match self {
            Framing::Ndjson => {
                // Room for a typical line up front: growing from empty copied it five times.
                let mut buf = Vec::with_capacity(LINE_CAPACITY);
                if let Err(e) = serde_json::to_writer(&mut buf, env) {
                    // Our own types always serialize; keep the framing intact anyway.
                    tracing::error!(error = %e, "failed to encode a line");
                    buf.clear();
                    buf.extend_from_slice(
                        br#"{"v":1,"type":"error","id":"","ts":"","src":"weave"}"#,
                    );
                }
                buf.push(b'\n');
                Bytes::from(buf)
            }
            Framing::Protobuf => {
                let msg = PbEnvelope::from_envelope(env);
                let len = msg.encoded_len();
                let mut buf = BytesMut::with_capacity(LENGTH_PREFIX + len);
                buf.put_u32(len as u32);
                // Cannot fail: the buffer has room for the whole message.
                let _ = msg.encode(&mut buf);
                buf.freeze()
            }
        }
    }

    /// Frames raw content as is: a line gets its `\n`, a message its length prefix. For tests
    /// of bad input.
    pub fn wrap(self, content: &[u8]) -> Bytes {
        let mut buf = BytesMut::with_capacity(content.len() + LENGTH_PREFIX);
        match self {
            Framing::Ndjson => {
                buf.put_slice(content);
                buf.put_u8(b'\n');
            }
            Framing::Protobuf => {
                buf.put_u32(content.len() as u32);
                buf.put_slice(content);
            }
        }
        buf.freeze()
    }

    /// The envelope in one frame's content (as yielded by [`FrameCodec`]).
    pub fn decode(self, frame: &[u8]) -> Result<Envelope, BadFrame> {
        match self {
            Framing::Ndjson => parse_json(frame),
            Framing::Protobuf => match PbEnvelope::decode(frame) {
                Ok(msg) => msg.into_envelope().map_err(|e| BadFrame {
                    corr: e.id,
                    message: e.message,
                }),
                Err(e) => Err(BadFrame {
                    corr: None,
                    message: format!("not a weave.v1.Envelope: {e}"),
                }),
            },
        }
    }

    /// The request in one frame, its payload kept as JSON text (what the bus reads): refused
    /// exactly when [`Framing::decode`] would refuse it. An NDJSON payload is kept as sent; a
    /// protobuf one is written compactly (its text may hold line breaks).
    pub fn decode_request(self, frame: &[u8]) -> Result<RawRequest, BadFrame> {
        match self {
            Framing::Ndjson => {
                let env = parse_json::<RawRequest>(frame)?;
                if let Some(Err(e)) = env.payload.as_ref().map(|p| check_json(p.get())) {
                    return Err(BadFrame {
                        corr: Some(env.id),
                        message: format!("invalid envelope: payload: {e}"),
                    });
                }
                Ok(env)
            }
            Framing::Protobuf => Ok(self.decode(frame)?.into_raw_payload()),
        }
    }

    /// A decoder for this framing with frames of at most `max_frame` bytes of content.
    pub fn codec(self, max_frame: usize) -> FrameCodec {
        match self {
            Framing::Ndjson => FrameCodec::Ndjson(NdjsonCodec::new(max_frame)),
            Framing::Protobuf => FrameCodec::Protobuf {
                inner: LengthDelimitedCodec::builder()
                    .length_field_length(LENGTH_PREFIX)
                    .max_frame_length(max_frame)
                    .new_codec(),
                max_frame,
            },
        }
    }
}

/// Parses one JSON line. On failure: the line's `id` when it has one, and why.
fn parse_json<T: DeserializeOwned>(line: &[u8]) -> Result<T, BadFrame> {
    serde_json::from_slice::<T>(line).map_err(|e| {
        let (corr, message) = match serde_json::from_slice::<Value>(line) {
            Err(_) => (None, format!("not valid JSON (or not UTF-8): {e}")),
            Ok(Value::Object(map)) => {
                let corr = map.get("id").and_then(Value::as_str).map(str::to_owned);
                (corr, format!("invalid envelope: {e}"))
            }
            Ok(_) => (None, "a line must be a JSON object".to_owned()),
        };
        BadFrame { corr, message }
    })
}

/// Splits a byte stream into frame contents, in either framing. Empty frames (blank lines,
/// zero-length messages) are keep-alives and skipped; a frame cut off by the peer closing is
/// dropped, never acted upon.
#[derive(Debug)]
pub enum FrameCodec {
    Ndjson(NdjsonCodec),
    Protobuf {
        inner: LengthDelimitedCodec,
        max_frame: usize,
    },
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
        match self {
            FrameCodec::Ndjson(c) => c.decode(buf),
            FrameCodec::Protobuf { inner, max_frame } => loop {
                match inner.decode(buf) {
                    Ok(Some(frame)) if frame.is_empty() => continue,
                    Ok(frame) => return Ok(frame),
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        // The one error the length-delimited decoder reports: a length over
                        // the limit.
                        return Err(CodecError::FrameTooLarge { limit: *max_frame });
                    }
                    Err(e) => return Err(CodecError::Io(e)),
                }
            },
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
        match self {
            FrameCodec::Ndjson(c) => c.decode_eof(buf),
            FrameCodec::Protobuf { .. } => match self.decode(buf)? {
                Some(frame) => Ok(Some(frame)),
                None => {
                    buf.clear();
                    Ok(None)
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn envelope(n: usize) -> Envelope {
        let mut env = Envelope::new("message.send", format!("id-{n}"), "ts".into(), "a");
        env.payload = Some(json!({ "text": "x".repeat(n) }));
        env
    }

    fn decode_all(framing: Framing, max: usize, input: &[u8]) -> Result<Vec<Envelope>, String> {
        let mut codec = framing.codec(max);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(frame) = codec.decode(&mut buf).map_err(|e| e.to_string())? {
            out.push(framing.decode(&frame).map_err(|e| e.message)?);
        }
        if let Some(frame) = codec.decode_eof(&mut buf).map_err(|e| e.to_string())? {
            out.push(framing.decode(&frame).map_err(|e| e.message)?);
        }
        Ok(out)
    }

    #[test]
    fn both_framings_carry_the_same_envelopes() {
        for framing in [Framing::Ndjson, Framing::Protobuf] {
            let mut input = Vec::new();
            for n in [0, 1, 300] {
                input.extend_from_slice(&framing.encode(&envelope(n)));
            }
            let out = decode_all(framing, 1024, &input).unwrap();
            assert_eq!(
                out,
                vec![envelope(0), envelope(1), envelope(300)],
                "{framing:?}"
            );
        }
    }

    #[test]
    fn protobuf_frame_over_the_limit_is_refused_before_it_arrives() {
        let mut codec = Framing::Protobuf.codec(16);
        let mut buf = BytesMut::new();
        buf.put_u32(17);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::FrameTooLarge { limit: 16 })
        ));
    }

    #[test]
    fn empty_frames_are_keep_alives_and_a_cut_frame_is_dropped() {
        let mut input = Framing::Protobuf.wrap(b"").to_vec();
        input.extend_from_slice(&Framing::Protobuf.encode(&envelope(2)));
        let half = Framing::Protobuf.encode(&envelope(3));
        input.extend_from_slice(&half[..half.len() - 1]);
        assert_eq!(
            decode_all(Framing::Protobuf, 1024, &input).unwrap(),
            vec![envelope(2)]
        );
    }

    /// What the bus reads (payload as text) is refused exactly when the parsed envelope would
    /// be, and holds the same payload.
    #[test]
    fn a_request_keeps_its_payload_as_text_and_is_refused_as_a_parsed_one() {
        let lines = [
            r#"{"v":1,"type":"message.send","id":"a","payload":{"text": "hi","n":[1,2.5e3]}}"#,
            r#"{"v":1,"type":"message.send","id":"b","payload":{"n":1e400}}"#,
            r#"{"v":1,"type":"message.send","id":"c","payload":[[-18446744073709551617]]}"#,
            r#"{"v":1,"type":"message.ack","id":"d","corr":"x"}"#,
            r#"{"v":1,"type":"message.send","id":"e","payload":{"a":1,"a":2}}"#,
            r#"{"v":1,"id":7}"#,
            r#"[1]"#,
        ];
        for line in lines {
            let parsed = Framing::Ndjson.decode(line.as_bytes());
            let raw = Framing::Ndjson.decode_request(line.as_bytes());
            assert_eq!(parsed.is_ok(), raw.is_ok(), "{line}");
            if let (Ok(parsed), Ok(raw)) = (parsed, raw) {
                let payload = raw
                    .payload
                    .map(|p| serde_json::from_str::<Value>(p.get()).unwrap());
                assert_eq!(payload, parsed.payload, "{line}");
            }
        }
        let pb = Framing::Protobuf.encode(&envelope(3));
        let raw = Framing::Protobuf
            .decode_request(&pb[LENGTH_PREFIX..])
            .expect("a request");
        assert_eq!(raw.payload.expect("payload").get(), r#"{"text":"xxx"}"#);
    }

    #[test]
    fn garbage_in_a_frame_is_a_clear_error() {
        let err = Framing::Protobuf.decode(&[0xff, 0xff, 0xff]).unwrap_err();
        assert!(
            err.message.starts_with("not a weave.v1.Envelope"),
            "{err:?}"
        );
        let err = Framing::Ndjson
            .decode(br#"{"id":"x","v":"one"}"#)
            .unwrap_err();
        assert_eq!(err.corr.as_deref(), Some("x"));
    }

    proptest! {
        #[test]
        fn any_chunking_yields_the_same_protobuf_frames(
            sizes in proptest::collection::vec(0usize..200, 0..12),
            cut in 1usize..23,
        ) {
            let mut input = Vec::new();
            for &n in &sizes { input.extend_from_slice(&Framing::Protobuf.encode(&envelope(n))); }
            let mut codec = Framing::Protobuf.codec(4096);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for chunk in input.chunks(cut) {
                buf.extend_from_slice(chunk);
                while let Some(f) = codec.decode(&mut buf).unwrap() {
                    out.push(Framing::Protobuf.decode(&f).unwrap());
                }
            }
            let expected: Vec<Envelope> = sizes.iter().map(|&n| envelope(n)).collect();
            prop_assert_eq!(out, expected);
        }

        #[test]
        fn arbitrary_bytes_never_panic_either_decoder(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            for framing in [Framing::Ndjson, Framing::Protobuf] {
                let _ = decode_all(framing, 64, &bytes);
            }
        }
    }
}
