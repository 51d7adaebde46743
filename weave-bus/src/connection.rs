//! One client connection served by an engine: a reader task (decode a frame, parse it, hand it
//! to the engine) and a writer task (drain the frames the engine queued). A connection's first
//! byte picks its framing: NUL starts the binary preamble, anything else is NDJSON. The socket
//! is a client's own (accepted by `server`) or one end of a socket pair whose other end a
//! daemon of a cluster carries to a follower (`cluster/`).

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use codex_weave_runtime::ErrorCode;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::config::Limits;
use crate::conn::{ConnId, ConnOut, ConnShared};
use crate::engine::response;
use crate::handle::Bus;
use crate::refusal::Refusal;
use codex_weave_transport_uds::{CodecError, Framing, PREAMBLE};

/// How long a connection the bus is closing keeps being drained, so the last line it was sent
/// (an error) is not destroyed by a reset over unread input.
const LINGER: Duration = Duration::from_secs(1);

/// Reads and discards until the peer closes or `LINGER` passes.
async fn linger(mut read: impl tokio::io::AsyncRead + Unpin) {
    let mut sink = vec![0u8; 64 * 1024];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = read.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Answers a connection the bus will not serve with one NDJSON error line, then closes it.
async fn refuse(
    mut read: impl tokio::io::AsyncRead + Unpin,
    mut write: impl tokio::io::AsyncWrite + Unpin,
    refusal: Refusal,
) {
    let line = Framing::Ndjson.encode(&response("", None, Err(refusal)));
    let _ = tokio::time::timeout(Duration::from_secs(1), write.write_all(&line)).await;
    let _ = write.shutdown().await;
    linger(&mut read).await;
}

/// [`refuse`] on a whole socket.
pub(crate) async fn refuse_stream(stream: UnixStream, refusal: Refusal) {
    let (read, write) = stream.into_split();
    refuse(read, write, refusal).await;
}

/// Reads a connection's first bytes (at most the preamble's length, so an idle connection
/// keeps no read-ahead buffer) and picks its framing: NUL starts the binary preamble, anything
/// else is NDJSON. Returns the framing and the bytes read that belong to the first frame;
/// `Ok(None)` when the peer closed without sending anything; `Err` for a NUL not followed by
/// the preamble.
async fn negotiate(
    read: &mut (impl tokio::io::AsyncRead + Unpin),
) -> io::Result<Option<(Framing, Vec<u8>)>> {
    let mut first = [0u8; PREAMBLE.len()];
    let mut n = 0;
    loop {
        if n > 0 {
            if first[0] != PREAMBLE[0] {
                return Ok(Some((Framing::Ndjson, first[..n].to_vec())));
            }
            if first[..n] != PREAMBLE[..n] {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bad preamble"));
            }
            if n == PREAMBLE.len() {
                return Ok(Some((Framing::Protobuf, Vec::new())));
            }
        }
        match read.read(&mut first[n..]).await? {
            0 if n == 0 => return Ok(None),
            0 => return Err(io::Error::new(io::ErrorKind::InvalidData, "cut preamble")),
            read => n += read,
        }
    }
}

/// Serves one connection with `bus`'s engine until either side ends it or `stop`. `operator`:
/// the connection acts for the HTTP token holder (a follower's HTTP API, carried here).
pub(crate) async fn serve_connection(
    stream: UnixStream,
    bus: Bus,
    stop: CancellationToken,
    limits: &Limits,
    operator: bool,
) {
    let metrics = bus.metrics();
    metrics.inc(&metrics.connections_total);
    metrics.connections_open.fetch_add(1, Ordering::Relaxed);
    serve_framed(stream, &bus, stop, limits, operator).await;
    metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
}

async fn serve_framed(
    stream: UnixStream,
    bus: &Bus,
    stop: CancellationToken,
    limits: &Limits,
    operator: bool,
) {
    let (max_line, max_buffer) = (limits.max_line, limits.max_conn_buffer);
    // The writer reports `Writable` below half the smaller limit: paused deliveries resume,
    // and followed streams catch up from the log.
    let resume_below = max_buffer.min(limits.max_stream_buffer) / 2;
    // A duplicate of the descriptor lets the engine write to the socket directly while the
    // writer task is idle.
    let direct = stream
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::os::unix::net::UnixStream::from);
    let (mut read, mut write) = stream.into_split();
    let negotiated = tokio::select! {
        _ = stop.cancelled() => return,
        negotiated = negotiate(&mut read) => negotiated,
    };
    let (framing, first) = match negotiated {
        Ok(Some(picked)) => picked,
        Ok(None) => return,
        Err(e) => {
            let refusal = Refusal::new(
                ErrorCode::BadRequest,
                format!(
                    "{e}: a binary-framing client opens with the 8 bytes {PREAMBLE:02x?}; \
                     an NDJSON client sends JSON lines"
                ),
            );
            bus.metrics().inc(&bus.metrics().bad_requests);
            return refuse(read, write, refusal).await;
        }
    };
    if framing == Framing::Protobuf && write.write_all(&PREAMBLE).await.is_err() {
        return;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(ConnShared::default());
    let mut out = ConnOut::new(tx, shared.clone()).with_framing(framing);
    if let Some(socket) = direct {
        out = out.with_socket(socket);
    }
    let conn = bus.open(out, operator);
    let writer = tokio::spawn(write_lines(
        write,
        rx,
        shared.clone(),
        bus.clone(),
        conn,
        resume_below,
    ));
    // What negotiation read comes first; the read buffer grows with the frames it meets.
    let read = AsyncReadExt::chain(std::io::Cursor::new(first), read);
    let mut lines = FramedRead::with_capacity(read, framing.codec(max_line), 1024);
    let mut drain = false;
    loop {
        // A client that does not read its responses does not get to send more requests (one
        // that died with its backlog is read on to its end, so that it goes offline).
        while shared.backlogged(max_buffer) {
            let drained = shared.drained.notified();
            if !shared.backlogged(max_buffer) {
                break;
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = drained => {}
            }
        }
        // Nor does any client while the engine has more read requests than it can take.
        tokio::select! {
            _ = stop.cancelled() => break,
            () = bus.metrics().intake.room() => {}
        }
        let next = tokio::select! {
            _ = stop.cancelled() => break,
            next = lines.next() => next,
        };
        match next {
            None => break,
            Some(Ok(frame)) => match framing.decode_request(&frame) {
                Ok(env) => bus.request_raw(conn, env, frame.len()),
                Err(bad) => bus.invalid(conn, bad.corr, ErrorCode::BadRequest, bad.message),
            },
            Some(Err(CodecError::FrameTooLarge { limit })) => {
                let what = match framing {
                    Framing::Ndjson => "line",
                    Framing::Protobuf => "frame",
                };
                bus.invalid(
                    conn,
                    None,
                    ErrorCode::FrameTooLarge,
                    format!("{what} longer than {limit} bytes; closing"),
                );
                drain = true;
                break;
            }
            Some(Err(CodecError::Io(e))) => {
                tracing::debug!(conn, error = %e, "read failed");
                break;
            }
        }
    }
    bus.closed(conn);
    if drain {
        linger(lines.into_inner()).await;
    }
    let _ = writer.await;
}

async fn write_lines(
    write: tokio::net::unix::OwnedWriteHalf,
    mut lines: mpsc::UnboundedReceiver<Bytes>,
    shared: Arc<ConnShared>,
    bus: Bus,
    conn: ConnId,
    resume_below: usize,
) {
    // No buffer of its own: the engine already hands over one chunk per commit, and an idle
    // connection should cost as little memory as possible (a 64 KB BufWriter per connection
    // was most of it).
    let mut w = write;
    while let Some(chunk) = lines.recv().await {
        if w.write_all(&chunk).await.is_err() {
            break;
        }
        if shared.written(chunk.len(), resume_below) {
            bus.writable(conn);
        }
    }
    shared.writer_ended();
    let _ = w.shutdown().await;
}
