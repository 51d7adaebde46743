//! The async socket client: one connection, requests matched to responses by `corr`, and every
//! other line (deliveries, notices, stream records) handed to the caller in arrival order.
//!
//! Two tasks serve a connection: a writer draining an unbounded queue of lines (so `send` never
//! waits on the socket) and a reader that routes each decoded line.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use codex_weave_runtime::{Envelope, ErrorBody, Status};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;

use crate::codec::DEFAULT_MAX_LINE;
use crate::frame::{Framing, PREAMBLE};
use crate::time::now_rfc3339;

/// Lines that are not responses to this client's requests, in arrival order. Ends when the
/// connection closes.
pub type Events = mpsc::UnboundedReceiver<Envelope>;

#[derive(Debug)]
pub enum ClientError {
    Io(io::Error),
    /// The connection closed before the response arrived.
    Closed,
    /// The bus answered `status: "error"`.
    Refused(ErrorBody),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "socket error: {e}"),
            ClientError::Closed => f.write_str("connection closed"),
            ClientError::Refused(e) => write!(f, "{}: {}", e.code, e.message),
        }
    }
}

impl std::error::Error for ClientError {}

impl ClientError {
    /// The bus's error code when the bus refused the request.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Refused(e) => Some(&e.code),
            _ => None,
        }
    }
}

/// Requests waiting for their response; `None` once the connection is closed, so a request
/// made after the reader's last look is refused instead of waiting forever.
type Pending = Arc<Mutex<Option<HashMap<String, oneshot::Sender<Envelope>>>>>;

/// A connection to the bus. Cheap to clone; the connection closes when every clone is dropped
/// and the bus has nothing more to send.
#[derive(Clone, Debug)]
pub struct Client {
    /// Complete frames for the writer task.
    out: mpsc::UnboundedSender<Bytes>,
    pending: Pending,
    framing: Framing,
}

impl Client {
    /// Connects to the bus socket at `path` (NDJSON framing).
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<(Client, Events)> {
        Self::connect_with(path, Framing::Ndjson).await
    }

    /// Connects with the given framing. For protobuf frames it sends the preamble and waits for
    /// the bus to echo it; a bus that answers anything else (a full bus's `limit_reached` line,
    /// an older bus) fails the connect with what it said.
    pub async fn connect_with(
        path: impl AsRef<Path>,
        framing: Framing,
    ) -> io::Result<(Client, Events)> {
        Self::open(UnixStream::connect(path).await?, framing).await
    }

    /// Opens a client on a connected stream with the given framing: for protobuf frames it
    /// sends the preamble and waits for it back first.
    pub async fn open(mut stream: UnixStream, framing: Framing) -> io::Result<(Client, Events)> {
        if framing == Framing::Protobuf {
            stream.write_all(&PREAMBLE).await?;
            let mut answer = [0u8; PREAMBLE.len()];
            let n = read_up_to(&mut stream, &mut answer).await?;
            if answer[..n] != PREAMBLE {
                let mut said = answer[..n].to_vec();
                let mut rest = Vec::new();
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(1),
                    (&mut stream).take(4096).read_to_end(&mut rest),
                )
                .await;
                said.extend_from_slice(&rest);
                let said = String::from_utf8_lossy(&said);
                return Err(io::Error::other(format!(
                    "the bus did not accept binary framing; it said: {}",
                    said.trim()
                )));
            }
        }
        Ok(Self::from_stream_framed(stream, framing))
    }

    /// Wraps an already connected stream (NDJSON framing).
    pub fn from_stream(stream: UnixStream) -> (Client, Events) {
        Self::from_stream_framed(stream, Framing::Ndjson)
    }

    /// Wraps a connected stream whose framing is already agreed on.
    pub fn from_stream_framed(stream: UnixStream, framing: Framing) -> (Client, Events) {
        let (read, write) = stream.into_split();
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        tokio::spawn(write_frames(write, out_rx));
        tokio::spawn(read_frames(read, framing, pending.clone(), events_tx));
        (
            Client {
                out: out_tx,
                pending,
                framing,
            },
            events_rx,
        )
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Sends a request and waits for the line whose `corr` is its id. Fills `v`, `id` and `ts`
    /// when empty. Returns the response whatever its status; see [`Client::call`].
    pub async fn request(&self, env: Envelope) -> Result<Envelope, ClientError> {
        self.submit(env)?.await
    }

    /// Sends a request now and returns the future of its response: requests submitted one
    /// after another go out in that order, however their responses are awaited (pipelining).
    pub fn submit(
        &self,
        mut env: Envelope,
    ) -> Result<impl Future<Output = Result<Envelope, ClientError>> + Send + 'static, ClientError>
    {
        fill(&mut env);
        let (tx, rx) = oneshot::channel();
        match self.pending.lock().unwrap().as_mut() {
            Some(waiting) => waiting.insert(env.id.clone(), tx),
            None => return Err(ClientError::Closed),
        };
        if let Err(e) = self.send(env.clone()) {
            if let Some(waiting) = self.pending.lock().unwrap().as_mut() {
                waiting.remove(&env.id);
            }
            return Err(e);
        }
        Ok(async move { rx.await.map_err(|_| ClientError::Closed) })
    }

    /// Like [`Client::request`], but an error response becomes [`ClientError::Refused`].
    pub async fn call(&self, env: Envelope) -> Result<Envelope, ClientError> {
        let resp = self.request(env).await?;
        match (resp.status, resp.error.clone()) {
            (Some(Status::Ok), _) => Ok(resp),
            (_, Some(err)) => Err(ClientError::Refused(err)),
            _ => Err(ClientError::Refused(ErrorBody {
                code: "internal".into(),
                message: "response without status".into(),
                detail: None,
            })),
        }
    }

    /// Sends an envelope without waiting for anything (e.g. `message.ack`).
    pub fn send(&self, mut env: Envelope) -> Result<(), ClientError> {
        fill(&mut env);
        self.send_frame(self.framing.encode(&env))
    }

    /// Sends raw content in one frame: a line (given without its `\n`) or a message body (given
    /// without its length). For tests of bad input.
    pub fn send_raw(&self, content: Bytes) -> Result<(), ClientError> {
        self.send_frame(self.framing.wrap(&content))
    }

    fn send_frame(&self, frame: Bytes) -> Result<(), ClientError> {
        self.out.send(frame).map_err(|_| ClientError::Closed)
    }

    /// `true` once the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.out.is_closed()
    }
}

fn fill(env: &mut Envelope) {
    env.v = codex_weave_runtime::WIRE_VERSION;
    if env.id.is_empty() {
        env.id = uuid::Uuid::new_v4().to_string();
    }
    if env.ts.is_empty() {
        env.ts = now_rfc3339();
    }
}

/// Reads until `buf` is full or the stream ends; returns how much was read.
async fn read_up_to(stream: &mut UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match stream.read(&mut buf[n..]).await? {
            0 => break,
            read => n += read,
        }
    }
    Ok(n)
}

async fn write_frames(
    write: tokio::net::unix::OwnedWriteHalf,
    mut frames: mpsc::UnboundedReceiver<Bytes>,
) {
    let mut w = BufWriter::new(write);
    while let Some(frame) = frames.recv().await {
        let mut next = Some(frame);
        while let Some(frame) = next {
            if w.write_all(&frame).await.is_err() {
                return;
            }
            next = frames.try_recv().ok();
        }
        if w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

async fn read_frames(
    read: tokio::net::unix::OwnedReadHalf,
    framing: Framing,
    pending: Pending,
    events: mpsc::UnboundedSender<Envelope>,
) {
    let mut frames = FramedRead::new(read, framing.codec(DEFAULT_MAX_LINE * 16));
    while let Some(Ok(frame)) = frames.next().await {
        let Ok(env) = framing.decode(&frame) else {
            tracing::warn!("ignoring a frame that is not an envelope");
            continue;
        };
        let waiter = match (&env.status, &env.corr) {
            (Some(_), Some(corr)) => pending
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|w| w.remove(corr)),
            _ => None,
        };
        match waiter {
            Some(tx) => {
                let _ = tx.send(env);
            }
            None => {
                let _ = events.send(env);
            }
        }
    }
    // Wake every waiting request with `Closed`, and refuse new ones.
    pending.lock().unwrap().take();
}
