//! The engine's view of one client connection: an unbounded queue of encoded lines drained by
//! the connection's writer task, and a byte count so a client that stops reading is noticed.
//!
//! The engine never blocks on a client: it pushes lines and checks `queued()`. Past the
//! connection's buffer limit it stops sending that client deliveries (they wait durably) and the
//! reader stops taking its requests, until the writer has drained the backlog.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

/// Identifies a connection for the life of the bus process.
pub type ConnId = u64;

/// State shared between the engine (producer) and a connection's tasks.
#[derive(Debug, Default)]
pub struct ConnShared {
    queued: AtomicUsize,
    /// Set by the engine when it held deliveries back for this connection.
    stalled: AtomicBool,
    /// Woken each time the writer drains, for a reader waiting for room.
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
}

/// The sending side of a connection, owned by the engine.
#[derive(Debug, Clone)]
pub struct ConnOut {
    tx: mpsc::UnboundedSender<Bytes>,
    shared: Arc<ConnShared>,
}

impl ConnOut {
    pub fn new(tx: mpsc::UnboundedSender<Bytes>, shared: Arc<ConnShared>) -> Self {
        Self { tx, shared }
    }

    /// Queues one encoded line (ending in `\n`). A closed connection swallows it: the engine
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

    pub fn mark_stalled(&self) {
        self.shared.stalled.store(true, Ordering::Release);
    }
}
