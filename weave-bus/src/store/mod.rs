//! The durable store: what the bus keeps (records, deliveries, state) behind one seam
//! ([`backend`]: the event log, the delivery queue and key-value state, written a batch per
//! transaction), with SQLite ([`Store`], `sqlite/`) as its implementation and `conformance`,
//! the suite any backend must pass.

pub(crate) mod backend;
#[cfg(test)]
pub mod conformance;
pub mod replicated;
mod sqlite;

pub use backend::{
    AgentRow, Backend, DeadLetter, DeadLetterRow, DeliveryQueue, DeliveryRow, EventLog,
    IdempotencyRef, IdempotencyRow, Loaded, ReceiptRow, Receipts, RowWriter, Search, SearchQuery,
    SessionRow, State, StoreError, StoreResult, StoredRecord, Transactions, UnreadRow,
};
/// The store's traits, for calling their methods on a `dyn Backend`.
pub mod prelude {
    pub use super::backend::{
        Backend, DeliveryQueue, EventLog, Receipts, RowWriter, Search, State, Transactions,
    };
}

pub use sqlite::{match_expression, spawn_checkpointer, Store};
