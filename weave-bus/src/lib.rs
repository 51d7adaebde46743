//! The Weave bus: owns `<home>/coord.sock`, the registry of sessions and agents, delivery with
//! per-target FIFO order, acks, redelivery and dead letters, idempotency, and the durable event
//! log — in wire v1, so existing Codex+Weave clients work unchanged.
//!
//! Layout (one concept per file): `config` (limits), `home` (directory, lock, socket file),
//! `store` (SQLite), `engine` (the single thread that owns state; `engine/commands` has one
//! file per request family), `server` (accept loop and connections), `handle` (the in-process
//! `Bus`), `refusal` (why a request was refused), `limit_flags` (every limit as a flag and a config key),
//! `console` (logs and console lines that a closed pipe cannot hurt), `engine/brain.rs` (where every request meets the runtime).

pub mod cluster;
pub mod cluster_flags;
pub mod config;
pub mod conn;
mod connection;
pub mod console;
pub mod engine;
pub mod handle;
pub mod home;
pub mod intake;
mod json_text;
pub mod limit_flags;
pub mod metrics;
pub mod refusal;
pub mod request;
pub mod server;
pub mod start_error;
pub mod store;
pub mod store_marker;
mod term;

pub use cluster_flags::ClusterFlags;
pub use codex_weave_runtime::RuntimeConfig;
pub use codex_weave_transport_uds::shutdown_signal;
pub use config::{BusConfig, Durability, Limits};
pub use handle::{Bus, LocalConn, LocalSender};
pub use limit_flags::LimitFlags;
pub use refusal::Refusal;
pub use server::{BusServer, StartError};
