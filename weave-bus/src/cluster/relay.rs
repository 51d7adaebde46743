//! What a daemon's in-process clients — its HTTP API and SSE streams — talk to while another
//! daemon leads: a [`Bus`] whose connections are carried to the leader exactly as a socket
//! client's are (`Node::serve`, one socket pair per connection, NDJSON), so the HTTP API of
//! every daemon of a cluster is served by the one engine that leads it.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use codex_weave_transport_uds::Framing;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use futures::future::BoxFuture;

use crate::conn::{ConnId, ConnOut};
use crate::engine::{response, Input};
use crate::handle::{complete, Bus};
use crate::metrics::Metrics;

/// Whatever serves a socket as the cluster does (the daemon's node: here while it leads, else
/// through the leader).
pub trait Carrier: Send + Sync + 'static {
    /// Serves `stream` until it ends; `operator`: it acts for the HTTP token holder.
    fn carry(self: Arc<Self>, stream: UnixStream, operator: bool) -> BoxFuture<'static, ()>;
}

/// A bus whose every connection goes through `node`.
pub fn bus(node: Arc<dyn Carrier>, metrics: Arc<Metrics>) -> Bus {
    let (tx, rx) = std::sync::mpsc::channel();
    let runtime = tokio::runtime::Handle::current();
    // The engine's input channel is a blocking one: read it on a thread of its own.
    let spawned = std::thread::Builder::new()
        .name("weave-relay".into())
        .spawn(move || relay(node, rx, runtime));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the relay thread: HTTP here gets no answers");
    }
    Bus::new(tx, metrics)
}

/// Hands each input to its connection's task until the last handle of the bus is dropped.
fn relay(node: Arc<dyn Carrier>, inputs: Receiver<Input>, runtime: tokio::runtime::Handle) {
    let mut conns: HashMap<ConnId, mpsc::UnboundedSender<Line>> = HashMap::new();
    while let Ok(input) = inputs.recv() {
        match input {
            Input::Open {
                conn,
                out,
                operator,
            } => {
                let (lines, requests) = mpsc::unbounded_channel();
                conns.insert(conn, lines);
                runtime.spawn(carry(node.clone(), out, requests, operator));
            }
            Input::Request { conn, req, .. } => {
                if let Some(lines) = conns.get(&conn) {
                    let mut env = req.env;
                    complete(&mut env);
                    let mut line = serde_json::to_vec(&env).unwrap_or_default();
                    line.push(b'\n');
                    let _ = lines.send(Line::Request(line.into()));
                }
            }
            Input::Refused { conn, refused } => {
                if let Some(lines) = conns.get(&conn) {
                    let refused = *refused;
                    let answer = response(
                        &refused.id,
                        refused.session.as_deref(),
                        Err(refused.refusal),
                    );
                    let _ = lines.send(Line::Answer(Framing::Ndjson.encode(&answer)));
                }
            }
            Input::Closed { conn } => {
                conns.remove(&conn);
            }
            Input::Invalid { .. } | Input::Writable { .. } => {}
            Input::Shutdown => break,
        }
    }
}

/// What goes to a connection's task.
enum Line {
    /// A request line, for the engine that serves it.
    Request(Bytes),
    /// An answer made here (a request refused before it could be sent).
    Answer(Bytes),
}

/// One connection: its requests written to a socket that `node` serves, the lines read back
/// handed to `out` whole. Ends when the other side closes it (then `out` is dropped: the
/// client sees the connection end) or, once closed here, when the other side has finished.
async fn carry(
    node: Arc<dyn Carrier>,
    out: ConnOut,
    mut requests: mpsc::UnboundedReceiver<Line>,
    operator: bool,
) {
    let Ok((ours, theirs)) = UnixStream::pair() else {
        return;
    };
    let served = tokio::spawn(node.carry(theirs, operator));
    let (mut read, mut write) = ours.into_split();
    let out = Arc::new(out);
    let answers = out.clone();
    let writing = async move {
        while let Some(line) = requests.recv().await {
            match line {
                Line::Request(line) => {
                    if write.write_all(&line).await.is_err() {
                        return;
                    }
                }
                Line::Answer(line) => answers.push(line),
            }
        }
        let _ = write.shutdown().await;
    };
    let reading = async move {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        while let Ok(n) = read.read_buf(&mut buf).await {
            if n == 0 {
                break;
            }
            if let Some(end) = buf.iter().rposition(|&b| b == b'\n') {
                out.push_all(buf.split_to(end + 1).freeze());
            }
        }
    };
    {
        tokio::pin!(writing, reading);
        let mut closed_here = false;
        loop {
            tokio::select! {
                () = &mut writing, if !closed_here => closed_here = true,
                () = &mut reading => break,
            }
        }
    }
    let _ = served.await;
}
