//! The bus's configuration: where its home is, how durable a commit is, and every limit.
//! Each limit is a named field with its default here and a `weave-bus` flag of the same name.

use std::path::PathBuf;
use std::time::Duration;

/// How far a commit goes before the bus answers `ok`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Written to the write-ahead log before answering, without fsync: survives `kill -9` of
    /// the bus, not a power loss. SQLite WAL with `synchronous=NORMAL`.
    #[default]
    Normal,
    /// fsync on every group commit: survives power loss. SQLite WAL with `synchronous=FULL`.
    Fsync,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Normal => "normal",
            Durability::Fsync => "fsync",
        }
    }
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "normal" => Ok(Durability::Normal),
            "fsync" => Ok(Durability::Fsync),
            _ => Err(format!("durability must be `normal` or `fsync`, not `{s}`")),
        }
    }
}

/// Explicit limits. Exceeding one gets a clear error code, never a silent drop.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest accepted line in bytes (newline excluded); longer: `frame_too_large`, then close.
    pub max_line: usize,
    /// Simultaneous socket connections; more are closed at once after a `limit_reached` line.
    pub max_connections: usize,
    /// Open sessions; more: `limit_reached`.
    pub max_sessions: usize,
    /// Registered agents per session; more: `limit_reached`.
    pub max_agents_per_session: usize,
    /// Deliveries waiting for one agent (queued + unacked); more: `inbox_full` to the sender.
    pub max_queue_per_agent: usize,
    /// Deliveries sent to one agent and not yet acked; more wait in its queue.
    pub max_inflight_per_agent: usize,
    /// Deliveries of one message in all (first + redeliveries) before it is dead-lettered.
    pub max_deliver: u32,
    /// Bytes queued for one connection's socket before the bus stops sending it deliveries
    /// (they wait durably) and stops reading its requests.
    pub max_conn_buffer: usize,
    /// Bytes queued for one connection before its followed streams (`events.stream` with
    /// `follow`, and replays) stop taking records and catch up from the log as it drains: a
    /// follower that stops reading costs at most this much memory, never the log.
    pub max_stream_buffer: usize,
    /// Payload bytes waiting for one agent (queued + unacked); more: `inbox_full`.
    pub max_queue_bytes_per_agent: usize,
    /// Payload bytes of pending messages kept in memory, all agents together; past it a queued
    /// message keeps only what finds it (ids, sequence, size) and is read from the store when
    /// it is sent. The store is the buffer, not memory.
    pub max_memory: usize,
    /// Idempotency keys are kept at least this long...
    pub idempotency_ttl: Duration,
    /// ...unless more than this many are stored, then the oldest go first.
    pub max_idempotency_keys: usize,
    /// Most records one `events.history` page returns.
    pub max_history_page: usize,
    /// Records kept per session; older ones are pruned (never one a pending delivery needs).
    /// A cursor below what is kept gets an explicit gap.
    pub retain_events: u64,
    /// Records written between two snapshots of the runtime's state; a start replays at most
    /// about this many (after a clean stop, none: a snapshot is taken at shutdown).
    pub snapshot_every: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line: codex_weave_transport_uds::DEFAULT_MAX_LINE,
            max_connections: 4096,
            max_sessions: 10_000,
            max_agents_per_session: 1024,
            max_queue_per_agent: 100_000,
            max_inflight_per_agent: 4096,
            max_deliver: 5,
            max_conn_buffer: 8 * 1024 * 1024,
            max_stream_buffer: 256 * 1024,
            max_queue_bytes_per_agent: 1024 * 1024 * 1024,
            max_memory: 64 * 1024 * 1024,
            idempotency_ttl: Duration::from_secs(24 * 3600),
            max_idempotency_keys: 100_000,
            max_history_page: 10_000,
            retain_events: 1_000_000,
            snapshot_every: 100_000,
        }
    }
}

/// Everything the bus needs to start.
#[derive(Debug, Clone)]
pub struct BusConfig {
    pub home: PathBuf,
    pub durability: Durability,
    pub limits: Limits,
    /// The runtime's limits (loop guard, relay retry hint).
    pub runtime: codex_weave_runtime::RuntimeConfig,
    /// Start with an empty store even where the home had one (`--new-store`; see
    /// `store_marker.rs`).
    pub new_store: bool,
    /// The store replicated through a NATS JetStream cluster (`--cluster`; see
    /// `store/replicated/`), or the local store alone.
    pub cluster: Option<LogConfig>,
}

/// Where the log lives: the NATS servers, the stream, this store's subject in it, replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub urls: String,
    pub stream: String,
    pub subject: String,
    pub replicas: usize,
}

impl BusConfig {
    pub fn new(home: impl Into<PathBuf>) -> Self {
        Self {
            home: home.into(),
            durability: Durability::default(),
            limits: Limits::default(),
            runtime: codex_weave_runtime::RuntimeConfig::default(),
            new_store: false,
            cluster: None,
        }
    }

    pub fn socket_path(&self) -> PathBuf {
        self.home.join(codex_weave_transport_uds::SOCKET_FILE)
    }

    pub fn store_path(&self) -> PathBuf {
        self.home.join("weave.db")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.home.join("bus.lock")
    }
}
