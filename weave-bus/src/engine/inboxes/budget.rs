//! The memory budget of pending messages: past `--max-memory` of payload and meta held in
//! memory, a queued or sent message keeps only a stub of its record (what finds and
//! acknowledges it) and is read back from the store when it must be sent.

use std::sync::Arc;

use super::delivery::{Delivery, DeliveryKind};
use crate::engine::recorded::Recorded;

#[derive(Debug)]
pub struct MemoryBudget {
    /// Payload bytes of pending messages held in memory.
    hot: usize,
    /// The most there may be.
    max: usize,
}

impl MemoryBudget {
    pub fn new(max: usize) -> Self {
        Self { hot: 0, max }
    }

    pub fn hot(&self) -> usize {
        self.hot
    }

    pub fn clear(&mut self) {
        self.hot = 0;
    }

    /// A delivery becomes pending: counted, and cooled at once if memory is past the budget.
    pub fn add(&mut self, d: &mut Delivery) {
        if d.hot {
            self.hot += d.size;
            self.cool_if_over(d);
        }
    }

    /// A delivery is no longer pending.
    pub fn remove(&mut self, d: &Delivery) {
        if d.hot {
            self.hot -= d.size;
        }
    }

    /// The delivery's record, read back from the store, is in memory again.
    pub fn warm(&mut self, d: &mut Delivery, record: Arc<Recorded>) {
        if !d.hot {
            d.envelope = record;
            d.hot = true;
            self.hot += d.size;
        }
    }

    /// When memory is past its budget, a message keeps only a stub of its record (groups and
    /// notices stay whole: they are few, and a group's actions are read from its payload).
    pub fn cool_if_over(&mut self, d: &mut Delivery) {
        if self.hot > self.max && d.hot && d.kind == DeliveryKind::Message {
            d.envelope = Arc::new(d.envelope.stub());
            d.hot = false;
            self.hot -= d.size;
        }
    }
}
