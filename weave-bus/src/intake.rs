//! Requests read from sockets that the engine has not taken yet, bounded in bytes: a client
//! that pipelines faster than the engine applies waits in its socket (the kernel's buffer, then
//! the client's own), not in the daemon's memory. Without it 100,000 pipelined messages of
//! 1 KB sat in the engine's input channel as parsed envelopes: about 300 MB of RSS.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Bytes of read requests waiting for the engine, all connections together, past which
/// socket readers stop reading until the engine catches up.
pub const MAX_INTAKE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct Intake {
    waiting: AtomicUsize,
    taken: Notify,
}

impl Intake {
    /// A reader hands the engine a request of `n` bytes.
    pub fn add(&self, n: usize) {
        self.waiting.fetch_add(n, Ordering::AcqRel);
    }

    /// The engine took a request of `n` bytes.
    pub fn take(&self, n: usize) {
        let before = self.waiting.fetch_sub(n, Ordering::AcqRel);
        if before > MAX_INTAKE_BYTES && before - n <= MAX_INTAKE_BYTES {
            self.taken.notify_waiters();
        }
    }

    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Returns once the engine has room for more requests.
    pub async fn room(&self) {
        while self.waiting() > MAX_INTAKE_BYTES {
            let taken = self.taken.notified();
            if self.waiting() <= MAX_INTAKE_BYTES {
                return;
            }
            taken.await;
        }
    }
}
