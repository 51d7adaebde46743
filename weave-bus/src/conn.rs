//! The engine's view of one client connection: an unbounded queue of encoded lines drained by
//! the connection's writer task, and a byte count so a client that stops reading is noticed.
//!
//! The bus never blocks on a client. When the writer task has nothing queued, whoever releases a
//! committed batch (the engine, or the store's writer thread) writes its lines straight to the
//! socket with one non-blocking `write` (saving a thread hop on the latency path); whatever does
//! not fit goes to the writer task's queue, so order is kept. The engine checks `queued()`: past
//! the connection's buffer limit it stops sending that client deliveries (they wait durably)
//! and the reader stops taking its requests, until the writer task has drained the backlog.

use std::io::{ErrorKind, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use codex_weave_transport_uds::Framing;
use tokio::sync::{mpsc, Notify};

/// Identifies a connection for the life of the bus process.
pub type ConnId = u64;

/// State shared between the engine (producer) and a connection's tasks.
#[derive(Debug, Default)]
pub struct ConnShared {
    queued: AtomicUsize,
    /// Bytes of lines in batches that wait for their commit (released after it).
    promised: AtomicUsize,
    /// Set by the engine when it held deliveries back for this connection.
    stalled: AtomicBool,
    /// A direct write failed: leave the socket to the writer task (which will see the error).
    direct_broken: AtomicBool,
    /// The writer task has ended (the client can no longer be written to): what is queued will
    /// never drain.
    writer_gone: AtomicBool,
    /// Woken each time the writer drains, and when it ends, for a reader waiting for room.
    pub drained: Notify,
}

impl ConnShared {
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Called by the writer after writing `n` bytes. Returns `true` when the engine held
    /// deliveries back and should now resume them.
    pub fn written(&self, n: usize, resume_below: usize) -> bool {
        let left = self.queued.fetch_sub(n, Ordering::AcqRel).saturating_sub(n);
        self.drained.notify_waiters();
        left < resume_below && self.stalled.swap(false, Ordering::AcqRel)
    }

    /// Called by the writer when it ends: a reader waiting for room stops waiting.
    pub fn writer_ended(&self) {
        self.writer_gone.store(true, Ordering::Release);
        self.drained.notify_waiters();
    }

    /// Whether the reader must wait before taking more requests: the client's backlog is past
    /// `max` and the writer is still there to drain it.
    pub fn backlogged(&self, max: usize) -> bool {
        self.queued() > max && !self.writer_gone.load(Ordering::Acquire)
    }
}

/// The sending side of a connection, held by the engine. A clone goes with each committed
/// batch to whichever thread releases it.
#[derive(Debug, Clone)]
pub struct ConnOut {
    tx: mpsc::UnboundedSender<Bytes>,
    shared: Arc<ConnShared>,
    /// The socket itself (a duplicate of the connection's descriptor, non-blocking), for direct
    /// writes while the writer is idle. `None` for in-process connections.
    direct: Option<Arc<StdUnixStream>>,
    /// How the engine encodes what it sends here.
    framing: Framing,
}

impl ConnOut {
    pub fn new(tx: mpsc::UnboundedSender<Bytes>, shared: Arc<ConnShared>) -> Self {
        Self {
            tx,
            shared,
            direct: None,
            framing: Framing::Ndjson,
        }
    }

    pub fn with_framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    pub fn with_socket(mut self, socket: StdUnixStream) -> Self {
        self.direct = Some(Arc::new(socket));
        self
    }

    /// Whether the client has closed its end (or shut it for writing), as the kernel already
    /// knows while this connection's reader may not have come to the end of what it read. Never
    /// for in-process connections.
    pub fn hung_up(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        let Some(socket) = self.direct.as_deref() else {
            return false;
        };
        // nix names no POLLRDHUP (Linux only): the peer shut its writing side or closed.
        let rdhup = PollFlags::from_bits_retain(nix::libc::POLLRDHUP);
        let mut fds = [PollFd::new(socket.as_fd(), rdhup)];
        let gone = rdhup | PollFlags::POLLHUP | PollFlags::POLLERR;
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
            && fds[0].revents().is_some_and(|r| r.intersects(gone))
    }

    /// Sends encoded frames: written at once when the writer is idle, else queued behind it.
    /// A connection the engine holds back (stalled) always goes through its writer, which tells
    /// the engine when it drains: a direct write that took everything would tell nobody.
    pub fn push_all(&self, mut bytes: Bytes) {
        let direct = self
            .direct
            .as_deref()
            .filter(|_| !self.shared.direct_broken.load(Ordering::Acquire));
        if self.shared.queued() == 0 && !self.shared.stalled.load(Ordering::Acquire) {
            if let Some(mut socket) = direct {
                match socket.write(&bytes) {
                    Ok(n) if n == bytes.len() => return,
                    Ok(n) => {
                        let _ = bytes.split_to(n);
                    }
                    Err(e)
                        if e.kind() == ErrorKind::WouldBlock
                            || e.kind() == ErrorKind::Interrupted => {}
                    // The writer will see the error and close.
                    Err(_) => self.shared.direct_broken.store(true, Ordering::Release),
                }
            }
        }
        self.push(bytes);
    }

    /// Queues encoded frames. A closed connection swallows them: the engine
    /// learns of the close through its own input and requeues what was not acked.
    pub fn push(&self, line: Bytes) {
        // Count before sending: the writer may take the line and subtract before we return.
        let n = line.len();
        self.shared.queued.fetch_add(n, Ordering::AcqRel);
        if self.tx.send(line).is_err() {
            self.shared.queued.fetch_sub(n, Ordering::AcqRel);
        }
    }

    pub fn queued(&self) -> usize {
        self.shared.queued()
    }

    /// Bytes queued plus bytes of lines waiting for their batch's commit: what this
    /// connection will hold once those batches are released.
    pub fn pending(&self) -> usize {
        self.shared.queued() + self.shared.promised.load(Ordering::Acquire)
    }

    /// A committed batch will bring `n` bytes of lines.
    pub fn promise(&self, n: usize) {
        self.shared.promised.fetch_add(n, Ordering::AcqRel);
    }

    /// The batch of a [`ConnOut::promise`] was released (or refused).
    pub fn settle(&self, n: usize) {
        let _ = self
            .shared
            .promised
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.saturating_sub(n))
            });
    }

    pub fn mark_stalled(&self) {
        self.shared.stalled.store(true, Ordering::Release);
    }
}
