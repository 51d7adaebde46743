//! The engine: the one thread that owns the bus's state and decides what goes into its store.
//!
//! Connections (socket or in-process) send it [`Input`]s over one channel. It takes a batch —
//! whatever has arrived, up to [`MAX_BATCH`] — applies each input to memory while collecting the
//! same changes as writes for one store transaction, commits once (group commit), and only then
//! releases the batch's responses and deliveries to the connections. So an `ok` is never sent
//! for something a crash could lose, ordering per target is the order of application, and
//! "replay then follow live" needs no locks: nothing else touches the state. Under load the
//! commit runs on the store's writer thread while the engine applies the next batch (see
//! [`writer`]).

mod answer;
mod batch;
mod bookkeeping;
mod brain;
mod commands;
mod delivery;
mod followers;
mod idempotency;
pub(crate) mod inboxes;
mod input;
mod logs;
mod receipt_rows;
mod receipts;
mod recorded;
mod records;
mod registry;
mod restore;
mod retry;
mod snapshot;
mod stamp;
pub(crate) mod state;
mod writer;

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use codex_weave_runtime::Envelope;
use codex_weave_transport_uds::Framing;
use serde::Serialize;

use crate::config::BusConfig;
use crate::conn::{ConnId, ConnOut};
use crate::metrics::Metrics;
use crate::refusal::Refusal;
use crate::request::Refused;
use crate::store::prelude::*;
use crate::store::{StoreError, StoreResult};
use answer::ok_line;
pub use answer::{bus_envelope, new_id, now_ms, response, Answer, Reply};
use batch::Batch;
use bookkeeping::Records;
use inboxes::Inboxes;
pub use input::Input;
use registry::Registry;
use retry::StoreRetry;
use state::{Conn, Map, Session};
use writer::{Release, Write, Writer};

/// Most inputs applied in one store transaction.
pub const MAX_BATCH: usize = 1024;
/// Most request bytes applied in one store transaction: a batch's records are in memory twice
/// (the rows it writes and the records it delivers) until it commits, and 1,024 messages of
/// 64 KiB would make that 128 MiB per batch.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// A batch of at most this many inputs is committed by the engine itself when the writer is
/// idle: on a quiet bus a thread hop would cost more latency than the overlap gains.
const INLINE_BATCH: usize = 16;
/// A due runtime snapshot waits for this long a pause in the traffic...
const SNAPSHOT_IDLE: Duration = Duration::from_millis(50);
/// ...unless this many times `snapshot_every` records went by without one.
const SNAPSHOT_FORCE: u64 = 3;
/// Records of one session the search index takes in at one pause.
const INDEX_STEP: u64 = 20_000;

/// The engine holds its parts and routes inputs between them: who is connected and where
/// ([`Registry`]), what waits to be delivered ([`Inboxes`]), the conversations' rules (the
/// runtime), the records' bookkeeping ([`Records`]), the store ([`Writer`]) and what waits for
/// it to recover ([`StoreRetry`]), and the batch being applied.
pub struct Engine {
    cfg: BusConfig,
    metrics: Arc<Metrics>,
    /// Sessions and agents (registry, presence), connections, session followers.
    registry: Registry,
    /// Every pending delivery, per agent: queues, in-flight windows, redelivery.
    inboxes: Inboxes,
    /// Conversations: ownership, relays, the loop guard.
    runtime: codex_weave_runtime::Runtime,
    /// Remembered responses, snapshot and search-index bookkeeping.
    records: Records,
    writer: Writer,
    retry: StoreRetry,
    batch: Batch,
}

impl Engine {
    pub fn new(
        cfg: BusConfig,
        store: Box<dyn Backend>,
        metrics: Arc<Metrics>,
    ) -> Result<Engine, StoreError> {
        let loaded = store.load()?;
        let writer = Writer::spawn(store, metrics.clone()).map_err(StoreError::from)?;
        let inboxes = Inboxes::new(cfg.limits.max_inflight_per_agent, cfg.limits.max_deliver)
            .with_memory_budget(cfg.limits.max_memory);
        let mut engine = Engine {
            runtime: codex_weave_runtime::Runtime::new(cfg.runtime.clone()),
            cfg,
            writer,
            metrics,
            registry: Registry::default(),
            inboxes,
            records: Records::default(),
            retry: StoreRetry::default(),
            batch: Batch::default(),
        };
        engine.restore(loaded);
        engine.rebuild_runtime()?;
        Ok(engine)
    }

    /// Runs until [`Input::Shutdown`] or until every sender is gone.
    pub fn run(mut self, inputs: Receiver<Input>) {
        loop {
            let timer = self
                .inboxes
                .poll_timeout()
                .map(|deadline| deadline.saturating_duration_since(Instant::now()));
            let snapshot_due = self.records.since_snapshot >= self.cfg.limits.snapshot_every.max(1);
            let idle =
                (snapshot_due || !self.records.unindexed.is_empty()).then_some(SNAPSHOT_IDLE);
            let retry = self.retry.wait(Instant::now());
            let first = match timer.into_iter().chain(idle).chain(retry).min() {
                Some(wait) => match inputs.recv_timeout(wait) {
                    Ok(input) => Some(input),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match inputs.recv() {
                    Ok(input) => Some(input),
                    Err(_) => break,
                },
            };
            // Nothing came for SNAPSHOT_IDLE: a good moment for a due snapshot.
            self.batch.quiet =
                first.is_none() && idle.is_some_and(|i| timer.is_none_or(|t| i <= t));
            // A batch handed over earlier failed: memory is ahead of the store.
            if self.writer.poisoned() {
                self.reload_after_failure();
            }
            let mut stop = false;
            let (mut applied, mut bytes) = (0, 0);
            let due = self.retry.take_due(Instant::now());
            if !due.is_empty() {
                self.batch.pump.extend(due);
                self.pump_marked();
            }
            if let Some(input) = first {
                bytes += input.bytes();
                stop = self.apply(input);
                applied += 1;
            }
            while !stop && applied < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                match inputs.try_recv() {
                    Ok(input) => {
                        bytes += input.bytes();
                        stop = self.apply(input);
                        applied += 1;
                    }
                    Err(_) => break,
                }
            }
            self.fire_timers(Instant::now());
            self.finish_batch(applied);
            self.metrics.observe_batch(applied);
            if stop {
                break;
            }
        }
        self.writer.stop();
        tracing::info!("engine stopped; store committed");
    }

    /// Applies one input. Returns `true` to stop.
    fn apply(&mut self, input: Input) -> bool {
        match input {
            Input::Open {
                conn,
                out,
                operator,
            } => {
                self.registry.conns.insert(
                    conn,
                    Conn {
                        out,
                        agents: Vec::new(),
                        watching: Vec::new(),
                        operator,
                    },
                );
            }
            Input::Request { conn, req, bytes } => {
                self.metrics.inc(&self.metrics.requests);
                self.metrics.intake.take(bytes);
                // A connection closed early (its client hung up; see `agent_add`) may still
                // have requests in flight: they come after its close.
                if self.registry.conns.contains_key(&conn) {
                    self.on_request(conn, *req);
                }
            }
            Input::Refused { conn, refused } => {
                self.metrics.inc(&self.metrics.requests);
                let Refused {
                    id,
                    session,
                    refusal,
                } = *refused;
                self.respond(conn, &id, session.as_deref(), Err(refusal));
            }
            Input::Invalid {
                conn,
                corr,
                code,
                message,
            } => {
                self.metrics.inc(&self.metrics.bad_requests);
                let corr = corr.unwrap_or_default();
                self.respond(conn, &corr, None, Err(Refusal::new(code, message)));
            }
            Input::Writable { conn } => {
                if let Some(c) = self.registry.conns.get(&conn) {
                    self.batch.pump.extend(c.agents.iter().cloned());
                }
                self.catch_up_conn(conn);
            }
            Input::Closed { conn } => self.on_closed(conn),
            Input::Shutdown => {
                self.batch.stopping = true;
                return true;
            }
        }
        self.pump_marked();
        false
    }

    /// Writes dirty deliveries, then hands the batch to the writer: commit, then its lines —
    /// or, if the store fails, `store_unavailable` for each of its requests, and memory is
    /// reloaded from the store so that nothing uncommitted is believed.
    fn finish_batch(&mut self, applied: usize) {
        self.record_receipts();
        self.flush_receipts();
        self.flush_dirty();
        if !self.batch.remembered.is_empty() {
            let remembered = std::mem::take(&mut self.batch.remembered);
            self.write_row(Write::Idempotency(remembered));
        }
        self.prune_logs();
        let evicted = self.records.idem.evict(
            now_ms(),
            self.cfg.limits.idempotency_ttl.as_millis() as i64,
            self.cfg.limits.max_idempotency_keys,
        );
        if let Some(through) = evicted {
            self.write(move |s| s.delete_idempotency_through(through));
        }
        if self.batch.quiet {
            self.index_quietly();
        }
        let every = self.cfg.limits.snapshot_every.max(1);
        let due = (self.records.since_snapshot >= every && self.batch.quiet)
            || self.records.since_snapshot >= every.saturating_mul(SNAPSHOT_FORCE);
        if due || (self.batch.stopping && self.records.since_snapshot > 0) {
            self.write_snapshot();
        }
        let mut batch = std::mem::take(&mut self.batch);
        let release = self.release(&mut batch);
        self.writer
            .commit(batch.writes, release, applied <= INLINE_BATCH);
        if self.writer.poisoned() {
            self.reload_after_failure();
        } else if self.writer.idle() {
            // Everything handed over is committed: the store is healthy again.
            self.retry.reset();
        }
    }

    /// A batch's lines and requests per connection, in the order produced, for the writer to
    /// release once the batch commits (one write per connection).
    fn release(&self, batch: &mut Batch) -> Vec<Release> {
        let mut per_conn: Map<ConnId, usize> = Map::default();
        let mut release: Vec<(Release, BytesMut)> = Vec::new();
        let (closing, bytes) = (&batch.closing, &batch.bytes);
        let mut slot = |conn: ConnId, release: &mut Vec<(Release, BytesMut)>| {
            if let Some(&i) = per_conn.get(&conn) {
                return Some(i);
            }
            let out = match self.registry.conns.get(&conn) {
                Some(c) => &c.out,
                None => closing.get(&conn)?,
            };
            release.push((
                Release {
                    out: out.clone(),
                    lines: Bytes::new(),
                    requests: Vec::new(),
                },
                // Sized once: the batch counted each connection's bytes as it queued them.
                BytesMut::with_capacity(bytes.get(&conn).copied().unwrap_or(0)),
            ));
            per_conn.insert(conn, release.len() - 1);
            Some(release.len() - 1)
        };
        for (conn, line) in batch.lines.drain(..) {
            if let Some(i) = slot(conn, &mut release) {
                release[i].1.extend_from_slice(&line);
            }
        }
        for (conn, id) in batch.requests.drain(..) {
            if let Some(i) = slot(conn, &mut release) {
                release[i].0.requests.push(id);
            }
        }
        release
            .into_iter()
            .map(|(mut r, lines)| {
                r.out.promise(lines.len());
                r.lines = lines.freeze();
                r
            })
            .collect()
    }

    /// Adds a store write to the batch's transaction; the first failure fails the whole batch.
    fn write(&mut self, f: impl FnOnce(&dyn Backend) -> StoreResult<()> + Send + 'static) {
        self.batch.writes.push(Write::Other(Box::new(f)));
    }

    /// Adds one of the rows every message writes to the batch's transaction.
    fn write_row(&mut self, row: Write) {
        self.batch.writes.push(row);
    }

    /// Reads the store as of everything applied so far (this batch's writes included).
    fn read<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&dyn Backend) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        self.flush_receipts();
        self.writer.write(std::mem::take(&mut self.batch.writes));
        self.writer.read(f)
    }

    /// Queues an envelope for a connection, encoded in its framing, released at commit.
    fn send<P: Serialize, M: Serialize>(&mut self, conn: ConnId, env: &Envelope<P, M>) {
        let frame = self.framing_of(conn, &self.batch.closing).encode(env);
        self.send_encoded(conn, frame);
    }

    /// Queues a frame already encoded in the connection's framing.
    fn send_encoded(&mut self, conn: ConnId, frame: Bytes) {
        *self.batch.bytes.entry(conn).or_default() += frame.len();
        self.batch.lines.push((conn, frame));
    }

    /// Bytes connection `conn` holds or will hold once the batches so far are released: queued,
    /// waiting for a commit, and in this batch.
    fn unreleased(&self, conn: ConnId) -> usize {
        let held = self
            .registry
            .conns
            .get(&conn)
            .map_or(0, |c| c.out.pending());
        held + self.batch.bytes_for(conn)
    }

    /// The framing of a connection, open or closing in this batch.
    fn framing_of(&self, conn: ConnId, closing: &Map<ConnId, ConnOut>) -> Framing {
        match self.registry.conns.get(&conn) {
            Some(c) => c.out.framing(),
            None => closing.get(&conn).map(ConnOut::framing).unwrap_or_default(),
        }
    }

    fn respond(&mut self, conn: ConnId, corr: &str, session: Option<&str>, reply: Reply) {
        if reply.is_err() {
            self.metrics.inc(&self.metrics.errors);
        }
        self.batch.requests.push((conn, corr.to_owned()));
        let framing = self.framing_of(conn, &self.batch.closing);
        let frame = match (&reply, framing) {
            (Ok(answer), Framing::Ndjson) => ok_line(
                corr,
                answer.session.as_deref().or(session),
                answer.payload.as_deref(),
            ),
            _ => framing.encode(&response(corr, session, reply)),
        };
        self.send_encoded(conn, frame);
    }

    fn session_by_key_mut(&mut self, key: i64) -> Option<&mut Session> {
        self.registry.by_key_mut(key)
    }
}
