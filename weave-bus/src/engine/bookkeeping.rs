//! The records' bookkeeping: remembered responses (idempotency) and the ids of their rows, how
//! many records went by since the runtime's last snapshot, and the sessions whose records the
//! search index has not taken in yet.

use super::idempotency::Idempotency;

#[derive(Default)]
pub struct Records {
    pub idem: Idempotency,
    /// The id of the next remembered response's row: numbered here, not by the store, because
    /// the store writes behind.
    next_idempotency_id: i64,
    /// Records written since the runtime's last snapshot.
    pub since_snapshot: u64,
    /// Sessions with records the search index has not taken in (see `Session::unindexed`).
    pub unindexed: Vec<String>,
}

impl Records {
    /// The id for the next remembered response.
    pub fn next_idempotency_id(&mut self) -> i64 {
        self.next_idempotency_id = self.next_idempotency_id.max(1);
        let id = self.next_idempotency_id;
        self.next_idempotency_id += 1;
        id
    }

    /// Ids continue past `last` (the newest loaded row).
    pub fn continue_after(&mut self, last: i64) {
        self.next_idempotency_id = last + 1;
    }
}
