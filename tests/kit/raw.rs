//! Bytes on the socket as a client in any language (or a broken one) writes them.

use std::path::Path;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::{BusProcess, WAIT};

/// A raw NDJSON connection: bytes written as a client in any language (or a broken one) writes
/// them, lines read as they were written. NDJSON whatever `WEAVE_TEST_FRAMING` says.
pub struct RawConn {
    pub reader: tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>,
    pub writer: tokio::net::unix::OwnedWriteHalf,
}

impl RawConn {
    pub async fn open(bus: &BusProcess) -> RawConn {
        RawConn::connect(&bus.socket()).await
    }

    /// A raw connection to the socket at `path`.
    pub async fn connect(path: &Path) -> RawConn {
        let (r, w) = tokio::net::UnixStream::connect(path)
            .await
            .unwrap()
            .into_split();
        RawConn {
            reader: tokio::io::BufReader::new(r),
            writer: w,
        }
    }

    /// Writes `bytes` as one line.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
        self.writer.write_all(b"\n").await.unwrap();
    }

    /// The next line as written (empty once the bus closed the connection), within [`WAIT`].
    pub async fn read_line(&mut self) -> String {
        let mut line = String::new();
        tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
            .await
            .expect("a line in time")
            .unwrap();
        line
    }

    /// The next line, parsed (`null` if it is not JSON).
    pub async fn read(&mut self) -> Value {
        serde_json::from_str(&self.read_line().await).unwrap_or(Value::Null)
    }

    /// Writes `bytes` as one line and returns the next line read back, parsed.
    pub async fn roundtrip(&mut self, bytes: &[u8]) -> Value {
        self.send(bytes).await;
        self.read().await
    }

    /// The next line of type `kind` as written, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> String {
        loop {
            let line = self.read_line().await;
            let v: Value = serde_json::from_str(&line).expect("a JSON line");
            if v["type"] == kind {
                return line;
            }
        }
    }
}

/// One NDJSON request line (with its `\n`): a fresh id, `extra`'s keys added to the envelope.
pub fn request_line(kind: &str, session: &str, src: &str, extra: Value) -> Vec<u8> {
    let mut env = json!({
        "v": 1, "type": kind, "id": uuid::Uuid::new_v4().to_string(), "ts": "2026-12-07T00:00:00Z",
        "src": src, "session": session,
    });
    for (k, v) in extra.as_object().expect("an object") {
        env[k] = v.clone();
    }
    let mut bytes = env.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

/// A raw connection to the socket at `path` that has added agent `id` (named `name`) to
/// `session`; its answer is the first line to read. Split, for a reader and a writer task.
pub async fn raw_agent(
    path: &Path,
    session: &str,
    id: &str,
    name: &str,
) -> (OwnedReadHalf, OwnedWriteHalf) {
    let (read, mut write) = tokio::net::UnixStream::connect(path)
        .await
        .unwrap()
        .into_split();
    let add = json!({ "payload": { "id": id, "name": name } });
    write
        .write_all(&request_line("agent.add", session, id, add))
        .await
        .unwrap();
    (read, write)
}
