//! `Bus`: the cheap-to-clone in-process handle to a running bus. Socket connections use it, and
//! so will HTTP and tests: every client goes through the same engine, hence the same rules.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

use bytes::Bytes;
use codex_weave_runtime::{Envelope, ErrorCode, RawRequest};

use crate::request::Request;
use tokio::sync::mpsc;

use crate::conn::{ConnId, ConnOut, ConnShared};
use crate::engine::Input;
use crate::metrics::Metrics;

#[derive(Clone, Debug)]
pub struct Bus {
    inputs: Sender<Input>,
    next_conn: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

impl Bus {
    pub(crate) fn new(inputs: Sender<Input>, metrics: Arc<Metrics>) -> Self {
        Self {
            inputs,
            next_conn: Arc::new(AtomicU64::new(1)),
            metrics,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(crate) fn metrics_arc(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Registers a connection whose lines go to `tx`; returns its id.
    pub(crate) fn open(&self, out: ConnOut, operator: bool) -> ConnId {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let _ = self.inputs.send(Input::Open {
            conn,
            out,
            operator,
        });
        conn
    }

    /// A request built in process (its payload written compactly, as a line would carry it).
    pub(crate) fn request(&self, conn: ConnId, env: Envelope) {
        self.request_raw(conn, env.into_raw_payload(), 0);
    }

    /// A request read from a socket (see `Framing::decode_request`): checked and typed here,
    /// once, before the engine sees it.
    /// `bytes`: its size on the socket, counted in the intake until the engine takes it.
    pub(crate) fn request_raw(&self, conn: ConnId, env: RawRequest, bytes: usize) {
        let input = match Request::parse(env) {
            Ok(req) => {
                self.metrics.intake.add(bytes);
                Input::Request {
                    conn,
                    req: Box::new(req),
                    bytes,
                }
            }
            Err(refused) => Input::Refused {
                conn,
                refused: Box::new(refused),
            },
        };
        let _ = self.inputs.send(input);
    }

    pub(crate) fn invalid(
        &self,
        conn: ConnId,
        corr: Option<String>,
        code: ErrorCode,
        message: String,
    ) {
        let _ = self.inputs.send(Input::Invalid {
            conn,
            corr,
            code,
            message,
        });
    }

    pub(crate) fn writable(&self, conn: ConnId) {
        let _ = self.inputs.send(Input::Writable { conn });
    }

    pub(crate) fn closed(&self, conn: ConnId) {
        let _ = self.inputs.send(Input::Closed { conn });
    }

    pub(crate) fn shutdown(&self) {
        let _ = self.inputs.send(Input::Shutdown);
    }

    /// One request, answered: opens an in-process connection, sends `env` (filling `v`, `id`,
    /// `ts` when empty) and returns the response (the line whose `corr` is its id). `None` if
    /// the bus stopped.
    pub async fn call(&self, env: Envelope) -> Option<Envelope> {
        let line = self.call_line(env, false).await?;
        serde_json::from_slice(&line).ok()
    }

    /// Like [`Bus::call`], but an `ok` response's payload is returned as the JSON text the bus
    /// wrote (so records pass through byte for byte); an error response as the envelope.
    /// Like [`Bus::call`], on an operator connection (may rename or remove any agent).
    pub async fn call_as_operator(&self, env: Envelope) -> Option<Envelope> {
        let line = self.call_line(env, true).await?;
        serde_json::from_slice(&line).ok()
    }

    pub async fn call_raw(&self, env: Envelope) -> Option<Result<String, Envelope>> {
        let line = self.call_line(env, false).await?;
        let raw: Envelope<Box<serde_json::value::RawValue>> = serde_json::from_slice(&line).ok()?;
        if raw.status == Some(codex_weave_runtime::Status::Ok) {
            return Some(Ok(raw
                .payload
                .map(|p| p.get().to_owned())
                .unwrap_or_else(|| "null".into())));
        }
        serde_json::from_slice(&line).ok().map(Err)
    }

    async fn call_line(&self, mut env: Envelope, operator: bool) -> Option<Bytes> {
        complete(&mut env);
        #[derive(serde::Deserialize)]
        struct Head {
            corr: Option<String>,
            status: Option<codex_weave_runtime::Status>,
        }
        let id = env.id.clone();
        let mut conn = self.connect_as(operator);
        conn.send(env);
        while let Some(line) = conn.next_line().await {
            let Ok(head) = serde_json::from_slice::<Head>(&line) else {
                continue;
            };
            if head.status.is_some() && head.corr.as_deref() == Some(id.as_str()) {
                return Some(line);
            }
        }
        None
    }

    /// Opens an in-process connection: requests go in with [`LocalConn::send`], every line the
    /// bus writes for it (responses, deliveries, records) comes out of [`LocalConn::lines`].
    pub fn connect(&self) -> LocalConn {
        self.connect_as(false)
    }

    /// An in-process connection for the operator (the token holder): like [`Bus::connect`],
    /// and it may also rename or remove any agent.
    pub fn connect_operator(&self) -> LocalConn {
        self.connect_as(true)
    }

    fn connect_as(&self, operator: bool) -> LocalConn {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(ConnShared::default());
        let id = self.open(ConnOut::new(tx, shared.clone()), operator);
        LocalConn {
            bus: self.clone(),
            id,
            shared,
            chunks: rx,
            pending: Bytes::new(),
        }
    }
}

/// Fills in what an in-process request may leave out and a line on the wire must carry: `v`,
/// and `id` and `ts` when empty.
pub(crate) fn complete<P, M>(env: &mut codex_weave_runtime::Envelope<P, M>) {
    env.v = codex_weave_runtime::WIRE_VERSION;
    if env.id.is_empty() {
        env.id = uuid::Uuid::new_v4().to_string();
    }
    if env.ts.is_empty() {
        env.ts = codex_weave_transport_uds::time::now_rfc3339();
    }
}

/// An in-process connection to the bus. Closing (dropping) it is a disconnect.
#[derive(Debug)]
pub struct LocalConn {
    bus: Bus,
    id: ConnId,
    shared: Arc<ConnShared>,
    /// What the bus wrote: chunks of whole lines (one chunk may hold many).
    chunks: mpsc::UnboundedReceiver<Bytes>,
    /// Lines of the current chunk not yet returned.
    pending: Bytes,
}

impl LocalConn {
    pub fn send(&self, env: Envelope) {
        self.bus.request(self.id, env);
    }

    /// A handle that sends on this connection from anywhere (e.g. while a task reads it).
    pub fn sender(&self) -> LocalSender {
        LocalSender {
            bus: self.bus.clone(),
            id: self.id,
        }
    }

    /// The next line the bus wrote (without its `\n`); `None` once the bus is gone.
    ///
    /// A line counts as written once it is returned, not when its chunk arrives: the chunk a
    /// slow reader (an SSE client) is still working through stays inside its byte budget.
    pub async fn next_line(&mut self) -> Option<Bytes> {
        loop {
            if !self.pending.is_empty() {
                let end = self
                    .pending
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap_or(self.pending.len());
                let line = self.pending.split_to(end);
                let mut used = end;
                if !self.pending.is_empty() {
                    let _ = self.pending.split_to(1); // the newline
                    used += 1;
                }
                if self.shared.written(used, usize::MAX) {
                    self.bus.writable(self.id);
                }
                if !line.is_empty() {
                    return Some(line);
                }
                continue;
            }
            self.pending = self.chunks.recv().await?;
        }
    }
}

impl Drop for LocalConn {
    fn drop(&mut self) {
        self.bus.closed(self.id);
    }
}

/// Sends requests on a [`LocalConn`] (cloneable). After the connection closes, what it sends is
/// ignored by the bus.
#[derive(Debug, Clone)]
pub struct LocalSender {
    bus: Bus,
    id: ConnId,
}

impl LocalSender {
    pub fn send(&self, env: Envelope) {
        self.bus.request(self.id, env);
    }
}
