//! Bytes on the socket as a client in any language (or a broken one) writes them.

use std::path::Path;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

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
