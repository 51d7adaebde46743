//! The batch being applied: what it will write and release once its transaction commits.

use bytes::Bytes;

use super::receipt_rows;
use super::state::Map;
use super::writer::{Remembered, Write};
use crate::conn::{ConnId, ConnOut};

/// What one batch produced, released only once its transaction commits.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) lines: Vec<(ConnId, Bytes)>,
    /// Bytes of `lines` per connection: what the connection will hold once the batch is
    /// released, on top of what it holds now (a batch of 1,024 records sent to 60 followers
    /// would otherwise be copied to each of them before any looked full).
    pub(super) bytes: Map<ConnId, usize>,
    /// Requests answered in this batch, to answer `store_unavailable` if the commit fails.
    pub(super) requests: Vec<(ConnId, String)>,
    /// The batch's store writes not yet handed to the writer.
    pub(super) writes: Vec<Write>,
    /// Responses remembered in this batch, written as one row at its end.
    pub(super) remembered: Vec<Remembered>,
    /// Deliveries whose stored row must be written or deleted at commit.
    pub(super) dirty: Vec<u64>,
    /// Agents that may have deliveries to send: (session, agent).
    pub(super) pump: Vec<(String, String)>,
    /// Sessions whose log outgrew `retain_events`: pruned before the commit.
    pub(super) prune: Vec<String>,
    /// Receipts that moved in this batch, recorded at its end.
    pub(super) receipts: Vec<receipt_rows::Moved>,
    /// Receipt rows not handed to `writes` yet.
    pub(super) receipt_rows: receipt_rows::ReceiptRows,
    /// Connections that closed during the batch: their last lines (an error for the line that
    /// made the bus close them, say) still go out.
    pub(super) closing: Map<ConnId, ConnOut>,
    /// The bus is stopping: snapshot the runtime with this batch.
    pub(super) stopping: bool,
    /// The batch began after a pause in the traffic.
    pub(super) quiet: bool,
}

impl Batch {
    /// Bytes of lines this batch holds for connection `conn`.
    pub(super) fn bytes_for(&self, conn: ConnId) -> usize {
        self.bytes.get(&conn).copied().unwrap_or(0)
    }
}
