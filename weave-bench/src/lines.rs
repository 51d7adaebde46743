//! A lean line connection for the bench's clients: framed reads, buffered writes flushed once
//! per burst, and envelope builders. Both the bus runs and the baseline use it, so both pay the
//! same client costs.

use std::path::Path;

use bytes::BytesMut;
use codex_weave_runtime::Envelope;
use codex_weave_transport_uds::NdjsonCodec;
use futures::{FutureExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio_util::codec::FramedRead;

pub struct Reader(FramedRead<OwnedReadHalf, NdjsonCodec>);
pub struct Writer(BufWriter<OwnedWriteHalf>);

pub async fn connect(path: &Path) -> (Reader, Writer) {
    let stream = UnixStream::connect(path).await.expect("connect");
    split(stream)
}

pub fn split(stream: UnixStream) -> (Reader, Writer) {
    let (r, w) = stream.into_split();
    (
        Reader(FramedRead::new(r, NdjsonCodec::new(64 << 20))),
        Writer(BufWriter::with_capacity(256 << 10, w)),
    )
}

impl Reader {
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
        let mut buf = serde_json::to_vec(env).expect("encode");
        buf.push(b'\n');
        self.0.write_all(&buf).await.expect("write");
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
