//! The seam between the engine and a durable backend: what the bus stores, as three concerns —
//! the **event log** (each session's records, dense by seq, appended and read in order), the
//! **delivery queue** (pending deliveries by id, dead letters) and **key-value state**
//! (sessions, agents, remembered responses, the runtime's snapshot, receipts) — written in
//! transactions of one batch each. SQLite ([`super::Store`]) is the first implementation; a
//! replicated one (NATS JetStream, issue 18) implements the same traits and must pass
//! `conformance`.
//!
//! The traits take and return plain rows; nothing here knows SQL. Every method is object safe,
//! so the engine holds a `Box<dyn Backend>`.

use std::fmt;

/// A backend's failure, with its own text (what a refused request reports).
pub struct StoreError(Box<dyn std::error::Error + Send + Sync>);

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// A failure that is not a backend's own error (e.g. the writer thread stopped).
    pub fn other(message: impl Into<String>) -> StoreError {
        StoreError(message.into().into())
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for StoreError {
    fn from(e: E) -> StoreError {
        StoreError(Box::new(e))
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A stored session as loaded at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub key: i64,
    pub id: String,
    pub name: Option<String>,
    pub created_at: String,
    pub closed: bool,
    /// Highest sequence number written for this session (0 when none).
    pub last_seq: u64,
    /// Lowest sequence number still stored (older ones were pruned).
    pub first_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub session_key: i64,
    pub id: String,
    pub name: Option<String>,
    pub kind: String,
    pub position: Option<i64>,
    pub instance: Option<String>,
    /// The proof that lets a connection take the agent over from a live one.
    pub secret: Option<String>,
}

/// A pending delivery and the stored record it delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: u64,
    pub session_key: i64,
    pub target: String,
    pub seq: u64,
    pub count: u32,
    pub envelope: String,
    /// The agent the delivery was first addressed to, when it has moved since.
    pub addressed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterRow {
    pub id: u64,
    pub target: String,
    pub seq: u64,
    pub count: u32,
    pub reason: String,
    pub ts: String,
    pub envelope: String,
}

/// A dead letter to write: a delivery given up on, and why.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    pub id: u64,
    pub session: i64,
    pub target: &'a str,
    pub seq: u64,
    pub count: u32,
    pub reason: &'a str,
    pub ts: &'a str,
    pub envelope: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdempotencyRow {
    /// Row id: insertion order, which is also age order.
    pub id: i64,
    pub session: String,
    pub src: String,
    pub key: String,
    pub response: String,
    pub created_ms: i64,
}

impl IdempotencyRow {
    /// The row borrowed, as [`RowWriter::put_idempotency`] takes it.
    pub fn as_ref(&self) -> IdempotencyRef<'_> {
        IdempotencyRef {
            id: self.id,
            session: &self.session,
            src: &self.src,
            key: &self.key,
            response: &self.response,
            created_ms: self.created_ms,
        }
    }
}

/// A remembered response to write, borrowed from the engine's memory.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyRef<'a> {
    pub id: i64,
    pub session: &'a str,
    pub src: &'a str,
    pub key: &'a str,
    /// JSON text.
    pub response: &'a str,
    pub created_ms: i64,
}

/// Everything the engine rebuilds its memory from.
#[derive(Debug, Default)]
pub struct Loaded {
    pub sessions: Vec<SessionRow>,
    pub agents: Vec<AgentRow>,
    pub deliveries: Vec<DeliveryRow>,
    pub idempotency: Vec<IdempotencyRow>,
    pub next_delivery_id: u64,
}

/// One stored record: sequence number, time and the envelope's JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub seq: u64,
    pub ts: String,
    pub envelope: String,
}

/// A receipt as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRow {
    pub message: String,
    pub agent: String,
    /// The record that carried the message.
    pub seq: u64,
    pub state: i64,
}

/// An unread message: its receipt and the record that carried it.
#[derive(Debug, Clone)]
pub struct UnreadRow {
    pub message: String,
    pub seq: u64,
    pub state: i64,
    pub ts: String,
    pub envelope: String,
}

/// What to look for: text (words, all of them; `word*` a prefix), a sender (id or display
/// name), a time range `[since, until)` of RFC 3339 UTC times, and a page (`before` a seq).
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub text: Option<String>,
    pub from: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub before: Option<u64>,
    pub limit: usize,
}

/// The rows every message writes, in the open transaction: its record, its delivery's state,
/// its receipts and its remembered response. A backend may prepare them once per batch.
pub trait RowWriter {
    /// Appends record `seq` to the session's log; seqs of a session are written in order.
    fn insert_event(&mut self, session: i64, seq: u64, ts: &str, envelope: &str)
        -> StoreResult<()>;
    /// Writes a delivery's current state (insert or update by id).
    fn put_delivery(
        &mut self,
        id: u64,
        session: i64,
        target: &str,
        seq: u64,
        count: u32,
        addressed: Option<&str>,
    ) -> StoreResult<()>;
    /// The delivery is settled (acked, given up on, forgotten).
    fn delete_delivery(&mut self, id: u64) -> StoreResult<()>;
    /// Moves a receipt to `state`, or creates it there; never moves it back.
    fn put_receipt(
        &mut self,
        session: i64,
        message: &str,
        agent: &str,
        seq: u64,
        state: i64,
    ) -> StoreResult<()>;
    /// Appends a batch's remembered responses (numbered by the engine in age order).
    fn put_idempotency(&mut self, entries: &[IdempotencyRef<'_>]) -> StoreResult<()>;
}

/// Transactions: one batch, one commit; nothing written since `begin` survives a `rollback`.
pub trait Transactions {
    fn begin(&mut self) -> StoreResult<()>;
    fn commit(&mut self) -> StoreResult<()>;
    fn rollback(&mut self);
    /// Makes what was committed compact and durable on its own (at shutdown).
    fn checkpoint(&self) -> StoreResult<()>;
    /// The writer of the rows every message writes, for the open transaction.
    fn rows(&self) -> StoreResult<Box<dyn RowWriter + '_>>;
}

/// The event log: each session's records, read back in seq order.
pub trait EventLog {
    /// Records with `seq > since`, oldest first, at most `limit`.
    fn records_after(
        &self,
        session: i64,
        since: u64,
        limit: usize,
    ) -> StoreResult<Vec<StoredRecord>>;
    /// The latest `limit` records, oldest first.
    fn latest_records(&self, session: i64, limit: usize) -> StoreResult<Vec<StoredRecord>>;
    /// Deletes the session's records with `seq <= through`, with their receipts and index
    /// entries (retention).
    fn prune_events(&self, session: i64, through: u64) -> StoreResult<()>;
}

/// The delivery queue beyond its rows ([`RowWriter`]): what was given up on.
pub trait DeliveryQueue {
    fn insert_dead_letter(&self, dead: DeadLetter<'_>) -> StoreResult<()>;
    /// The session's dead letters, oldest first, at most `limit`.
    fn dead_letters(&self, session: i64, limit: usize) -> StoreResult<Vec<DeadLetterRow>>;
}

/// Key-value state: sessions, agents, remembered responses, the runtime's snapshot.
pub trait State {
    /// Everything the engine rebuilds its memory from.
    fn load(&self) -> StoreResult<Loaded>;
    /// A new session under `key` (the engine numbers sessions: one past the highest loaded).
    fn insert_session(
        &self,
        key: i64,
        id: &str,
        name: Option<&str>,
        created_at: &str,
    ) -> StoreResult<()>;
    fn close_session(&self, key: i64, at: &str) -> StoreResult<()>;
    /// Adds the agent, or updates its name and kind.
    fn upsert_agent(
        &self,
        session: i64,
        id: &str,
        name: Option<&str>,
        kind: &str,
    ) -> StoreResult<()>;
    fn set_agent_instance(&self, session: i64, id: &str, instance: Option<&str>)
        -> StoreResult<()>;
    fn set_agent_secret(&self, session: i64, id: &str, secret: &str) -> StoreResult<()>;
    fn set_agent_position(&self, session: i64, id: &str, position: Option<i64>) -> StoreResult<()>;
    fn delete_agent(&self, session: i64, id: &str) -> StoreResult<()>;
    /// Forgets remembered responses through `id`; a backend may keep a batch whose newer keys
    /// are still remembered (they expire again at the next start).
    fn delete_idempotency_through(&self, id: i64) -> StoreResult<()>;
    /// Replaces the runtime's snapshot: `state` as of `through`.
    fn put_runtime_snapshot(&self, through: &str, state: &[u8]) -> StoreResult<()>;
    /// The runtime's snapshot, if one was taken: (through, state).
    fn runtime_snapshot(&self) -> StoreResult<Option<(String, Vec<u8>)>>;
}

/// Receipts: read back per message and per agent.
pub trait Receipts {
    /// The receipts of `messages` (every recipient's), in the order of the ids, then by agent.
    fn receipts_of(&self, session: i64, messages: &[String]) -> StoreResult<Vec<ReceiptRow>>;
    /// `agent`'s receipts of `messages` that exist.
    fn receipts_for(
        &self,
        session: i64,
        agent: &str,
        messages: &[String],
    ) -> StoreResult<Vec<ReceiptRow>>;
    /// `agent`'s messages whose receipt is below `below`, oldest first, at most `limit`, with
    /// the records that carried them; and how many there are in all.
    fn unread(
        &self,
        session: i64,
        agent: &str,
        below: i64,
        limit: usize,
    ) -> StoreResult<(Vec<UnreadRow>, u64)>;
}

/// Search over the log (a backend without an index of its own keeps a local mirror).
pub trait Search {
    /// Indexes the session's records not indexed yet, at most `max`; how many were looked at.
    fn index_search(&self, session: i64, max: u64) -> StoreResult<u64>;
    /// Records matching `q`, newest first, at most `q.limit`, the index brought up to date.
    fn search(&self, session: i64, q: &SearchQuery) -> StoreResult<Vec<StoredRecord>>;
}

/// A complete backend: what the engine holds.
pub trait Backend:
    Transactions + EventLog + DeliveryQueue + State + Receipts + Search + Send
{
}

impl<T: Transactions + EventLog + DeliveryQueue + State + Receipts + Search + Send> Backend for T {}
