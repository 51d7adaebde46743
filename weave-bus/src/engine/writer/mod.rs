//! The store's writer: applies each batch's writes, commits, and only then releases the batch's
//! lines, in batch order.
//!
//! A busy engine hands a finished batch to the writer thread and goes on applying the next one,
//! so the commit of one batch overlaps the work of the next (under load the store's inserts and
//! commit were a fifth of the engine's time). A quiet engine — the writer idle, the batch small —
//! writes and commits the batch itself: no thread hop on the latency path. Either way the batches
//! reach the store in order: the engine works inline only when nothing it handed over is still
//! pending.
//!
//! A failed commit refuses the batch's requests (`store_unavailable`) and poisons the writer:
//! every later batch was applied in memory on top of the failed one, so each is rolled back and
//! refused too, until the engine has reloaded its memory from the store and calls
//! [`Writer::recover`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use codex_weave_runtime::ErrorCode;

use super::answer::response;
use super::idempotency::{IdemKey, Response};
use crate::conn::ConnOut;
use crate::metrics::Metrics;
use crate::refusal::Refusal;
use crate::store::prelude::*;
use crate::store::{IdempotencyRef, StoreError, StoreResult};

/// One write into the batch's transaction.
pub type WriteFn = Box<dyn FnOnce(&dyn Backend) -> StoreResult<()> + Send>;
/// A read run on the writer thread after what was handed over.
type ReadFn = Box<dyn FnOnce(&dyn Backend) + Send>;

/// A write of the batch: the rows every message writes, typed (their statements are prepared
/// once per batch), or any other write.
pub enum Write {
    Event {
        session: i64,
        seq: u64,
        ts: String,
        envelope: String,
    },
    Delivery {
        id: u64,
        session: i64,
        target: String,
        seq: u64,
        count: u32,
        /// Set when the delivery moved to another agent (see `Delivery::addressed`).
        addressed: Option<String>,
    },
    Undelivery(u64),
    /// A receipt moved forward (or created at `state`).
    Receipt {
        session: i64,
        message: String,
        agent: String,
        seq: u64,
        state: i64,
    },
    /// The batch's remembered responses (one row).
    Idempotency(Vec<Remembered>),
    Other(WriteFn),
}

/// A response remembered under its key, numbered in age order.
pub struct Remembered {
    pub id: i64,
    pub key: IdemKey,
    pub response: Response,
    pub created_ms: i64,
}

impl Write {
    /// Runs the write; `rows` holds the batch's prepared statements once a typed row needed them.
    fn run<'a>(
        self,
        store: &'a dyn Backend,
        rows: &mut Option<Box<dyn RowWriter + 'a>>,
    ) -> StoreResult<()> {
        if let Write::Other(f) = self {
            return f(store);
        }
        let r = match rows {
            Some(r) => r,
            None => rows.insert(store.rows()?),
        };
        match self {
            Write::Event {
                session,
                seq,
                ts,
                envelope,
            } => r.insert_event(session, seq, &ts, &envelope),
            Write::Delivery {
                id,
                session,
                target,
                seq,
                count,
                addressed,
            } => r.put_delivery(id, session, &target, seq, count, addressed.as_deref()),
            Write::Undelivery(id) => r.delete_delivery(id),
            Write::Receipt {
                session,
                message,
                agent,
                seq,
                state,
            } => r.put_receipt(session, &message, &agent, seq, state),
            Write::Idempotency(entries) => {
                let refs: Vec<IdempotencyRef<'_>> = entries
                    .iter()
                    .map(|e| IdempotencyRef {
                        id: e.id,
                        session: e.key.session(),
                        src: e.key.src(),
                        key: e.key.key(),
                        response: &e.response,
                        created_ms: e.created_ms,
                    })
                    .collect();
                r.put_idempotency(&refs)
            }
            Write::Other(f) => f(store),
        }
    }
}

/// Batches handed over and not yet committed, at most: past it the engine waits for the writer
/// (the store is then the limit, and memory must not run ahead of it).
const MAX_PENDING: usize = 2;

/// What a batch releases once committed: per connection, its lines in order and the ids of the
/// requests it answers (each answered `store_unavailable` instead if the commit fails).
pub struct Release {
    pub out: ConnOut,
    pub lines: Bytes,
    pub requests: Vec<String>,
}

enum Job {
    Batch {
        writes: Vec<Write>,
        release: Option<Vec<Release>>,
    },
    Read(ReadFn),
    Recover,
}

struct State {
    store: Box<dyn Backend>,
    /// The first failed write of the open transaction: the whole batch is rolled back.
    failed: Option<StoreError>,
    /// A commit failed and the engine has not recovered yet.
    poisoned: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Jobs handed to the thread and not finished.
    pending: AtomicUsize,
    /// Mirrors `State::poisoned` for a lock-free check.
    poisoned: AtomicBool,
    metrics: Arc<Metrics>,
}

pub struct Writer {
    shared: Arc<Shared>,
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub fn spawn(store: Box<dyn Backend>, metrics: Arc<Metrics>) -> std::io::Result<Writer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                store,
                failed: None,
                poisoned: false,
            }),
            pending: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
            metrics,
        });
        let (tx, rx) = sync_channel(MAX_PENDING);
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("weave-store".into())
                .spawn(move || run(&shared, rx))?
        };
        Ok(Writer {
            shared,
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    /// Nothing handed over is pending: the engine may use the store itself.
    pub fn idle(&self) -> bool {
        self.shared.pending.load(Ordering::Acquire) == 0
    }

    /// A commit failed since the last [`Writer::recover`].
    pub fn poisoned(&self) -> bool {
        self.shared.poisoned.load(Ordering::Acquire)
    }

    fn send(&self, job: Job) {
        let Some(jobs) = &self.jobs else { return };
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        if jobs.send(job).is_err() {
            self.shared.pending.fetch_sub(1, Ordering::AcqRel);
            tracing::error!("the store writer stopped; a batch is lost");
        }
    }

    /// Applies writes of the open batch: at once when the writer is idle, else after what it has.
    pub fn write(&self, writes: Vec<Write>) {
        if writes.is_empty() {
            return;
        }
        if self.idle() {
            apply(&mut self.shared.lock(), writes);
        } else {
            self.send(Job::Batch {
                writes,
                release: None,
            });
        }
    }

    /// Ends a batch: its remaining writes, the commit, then its lines. `inline`: commit on the
    /// calling thread if the writer is idle (a small batch, where a thread hop would cost more
    /// than the overlap gains).
    pub fn commit(&self, writes: Vec<Write>, release: Vec<Release>, inline: bool) {
        if inline && self.idle() {
            let mut state = self.shared.lock();
            apply(&mut state, writes);
            finish(&self.shared, &mut state, release);
        } else {
            self.send(Job::Batch {
                writes,
                release: Some(release),
            });
        }
    }

    /// Runs `f` on the store after everything handed over, and returns its result.
    pub fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Backend) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        if self.idle() {
            return f(&*self.shared.lock().store);
        }
        let (tx, rx) = sync_channel(1);
        self.send(Job::Read(Box::new(move |store| {
            let _ = tx.send(f(store));
        })));
        rx.recv().unwrap_or_else(|_| Err(stopped()))
    }

    /// The engine took the store's state back after a failed commit: batches count again.
    pub fn recover(&self) {
        if self.idle() {
            recover(&self.shared, &mut self.shared.lock());
        } else {
            self.send(Job::Recover);
        }
    }

    /// Finishes what was handed over, folds the write-ahead log into the database, and stops.
    pub fn stop(mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Err(e) = self.shared.lock().store.checkpoint() {
            tracing::warn!(error = %e, "final checkpoint failed; the log replays at next start");
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves nothing half-done that the next batch relies
        // on (an open transaction is rolled back or committed as a whole), so carry on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn run(shared: &Shared, jobs: Receiver<Job>) {
    for job in jobs {
        {
            let mut state = shared.lock();
            match job {
                Job::Batch { writes, release } => {
                    apply(&mut state, writes);
                    if let Some(release) = release {
                        finish(shared, &mut state, release);
                    }
                }
                Job::Read(f) => f(&*state.store),
                Job::Recover => recover(shared, &mut state),
            }
        }
        shared.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs writes in the open transaction (opening it first); after a failure, or while poisoned,
/// the rest are skipped.
fn apply(state: &mut State, writes: Vec<Write>) {
    if state.poisoned || writes.is_empty() {
        return;
    }
    if state.failed.is_none() {
        if let Err(e) = state.store.begin() {
            state.failed = Some(e);
        }
    }
    let State { store, failed, .. } = state;
    let mut rows = None;
    for write in writes {
        if failed.is_some() {
            break;
        }
        if let Err(e) = write.run(&**store, &mut rows) {
            *failed = Some(e);
        }
    }
}

/// Commits the open transaction and releases the batch's lines, or rolls it back and refuses its
/// requests.
fn finish(shared: &Shared, state: &mut State, release: Vec<Release>) {
    let started = Instant::now();
    let result = if state.poisoned {
        state.store.rollback();
        Err(None)
    } else if let Some(e) = state.failed.take() {
        state.store.rollback();
        Err(Some(e))
    } else {
        state.store.commit().map_err(Some)
    };
    shared.metrics.observe_commit(started.elapsed());
    match result {
        Ok(()) => {
            for r in release {
                r.out.settle(r.lines.len());
                r.out.push_all(r.lines);
            }
        }
        Err(error) => {
            let message = match &error {
                Some(e) => {
                    tracing::error!(error = %e, "store commit failed; batch refused");
                    shared.metrics.inc(&shared.metrics.store_errors);
                    format!("the store could not commit: {e}")
                }
                None => "the store could not commit an earlier batch this one depends on".into(),
            };
            state.poisoned = true;
            shared.poisoned.store(true, Ordering::Release);
            let refusal = Refusal::new(ErrorCode::StoreUnavailable, message);
            for r in release {
                r.out.settle(r.lines.len());
                let framing = r.out.framing();
                let mut lines = bytes::BytesMut::new();
                for id in &r.requests {
                    let env = response(id, None, Err(refusal.clone()));
                    lines.extend_from_slice(&framing.encode(&env));
                }
                if !lines.is_empty() {
                    r.out.push_all(lines.freeze());
                }
            }
        }
    }
}

fn recover(shared: &Shared, state: &mut State) {
    state.poisoned = false;
    state.failed = None;
    shared.poisoned.store(false, Ordering::Release);
}

fn stopped() -> StoreError {
    StoreError::other("the store writer stopped")
}

#[cfg(test)]
mod tests;
