//! A lean connection for the bench's clients: framed reads, buffered writes flushed once per
//! burst, and envelope builders. Both the bus runs and the baseline use it, so both pay the
//! same client costs. NDJSON by default; the bus runs also use it with protobuf frames.

use std::path::Path;

use bytes::BytesMut;
use codex_weave_runtime::Envelope;
use codex_weave_transport_uds::{FrameCodec, Framing, PREAMBLE};
use futures::{FutureExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio_util::codec::FramedRead;

pub struct Reader(FramedRead<OwnedReadHalf, FrameCodec>, Framing);
pub struct Writer(BufWriter<OwnedWriteHalf>, Framing);

pub async fn connect(path: &Path) -> (Reader, Writer) {
    connect_framed(path, Framing::Ndjson).await
}

/// Connects in `framing` (sending the preamble and reading its echo for protobuf).
pub async fn connect_framed(path: &Path, framing: Framing) -> (Reader, Writer) {
    let mut stream = UnixStream::connect(path).await.expect("connect");
    if framing == Framing::Protobuf {
        stream.write_all(&PREAMBLE).await.expect("preamble");
        let mut echo = [0u8; PREAMBLE.len()];
        stream.read_exact(&mut echo).await.expect("preamble echo");
        assert_eq!(echo, PREAMBLE, "the bus refused binary framing");
    }
    split_framed(stream, framing)
}

pub fn split(stream: UnixStream) -> (Reader, Writer) {
    split_framed(stream, Framing::Ndjson)
}

fn split_framed(stream: UnixStream, framing: Framing) -> (Reader, Writer) {
    let (r, w) = stream.into_split();
    (
        Reader(FramedRead::new(r, framing.codec(64 << 20)), framing),
        Writer(BufWriter::with_capacity(256 << 10, w), framing),
    )
}

impl Reader {
    /// The envelope in a frame this reader returned.
    pub fn parse(&self, frame: &[u8]) -> Envelope {
        self.1.decode(frame).expect("an envelope")
    }

    /// The next line, waiting for it.
    pub async fn next(&mut self) -> Option<BytesMut> {
        self.0.next().await.map(|r| r.expect("framing"))
    }

    /// The next line only if it is already buffered.
    pub fn ready(&mut self) -> Option<BytesMut> {
        self.0
            .next()
            .now_or_never()
            .flatten()
            .map(|r| r.expect("framing"))
    }
}

impl Writer {
    pub async fn line(&mut self, env: &Envelope) {
        let frame = self.1.encode(env);
        self.0.write_all(&frame).await.expect("write");
    }

    pub async fn flush(&mut self) {
        self.0.flush().await.expect("flush");
    }
}

pub fn parse(line: &[u8]) -> Envelope {
    serde_json::from_slice(line).expect("an envelope")
}

pub fn request(kind: &str, session: Option<&str>, src: &str) -> Envelope {
    let mut env = Envelope::new(
        kind,
        uuid::Uuid::new_v4().to_string(),
        codex_weave_transport_uds::time::now_rfc3339(),
        src,
    );
    env.session = session.map(str::to_owned);
    env
}

/// A `message.send` numbered `n` (the number leads the text, so receivers can check each
/// arrives exactly once).
pub fn message(session: &str, src: &str, dst: &str, n: usize, text: &str) -> Envelope {
    let mut env = request("message.send", Some(session), src);
    env.dst = Some(dst.to_owned());
    env.payload = Some(json!({ "text": format!("{n}:{text}") }));
    env
}

/// A reply to `to_msg` (a delivered `message.send`), in its conversation, as an agent answers.
pub fn reply(session: &str, src: &str, dst: &str, to_msg: &Envelope, text: &str) -> Envelope {
    let n = number(to_msg);
    let mut env = message(session, src, dst, n, text);
    let ctx = to_msg
        .payload
        .as_ref()
        .and_then(|p| p.get("context_id"))
        .cloned();
    env.payload =
        Some(json!({ "text": format!("{n}:{text}"), "kind": "reply", "context_id": ctx }));
    env
}

/// The number a message carries.
pub fn number(env: &Envelope) -> usize {
    let text = env
        .payload
        .as_ref()
        .and_then(|p| p.get("text"))
        .and_then(|t| t.as_str())
        .expect("text");
    text.split(':').next().unwrap().parse().expect("numbered")
}

pub fn ack(session: &str, src: &str, delivery: &Envelope) -> Envelope {
    let mut env = request("message.ack", Some(session), src);
    env.corr = Some(delivery.corr.clone().unwrap_or_else(|| delivery.id.clone()));
    env
}
