//! Counters the bus keeps about itself, read by `bus.stats` (and later `/metrics`). Plain
//! atomics: incremented on the engine thread and by connections, read by anyone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub connections_refused: AtomicU64,
    pub requests: AtomicU64,
    pub bad_requests: AtomicU64,
    pub errors: AtomicU64,
    pub records: AtomicU64,
    pub deliveries: AtomicU64,
    pub redeliveries: AtomicU64,
    pub acks: AtomicU64,
    pub dead_letters: AtomicU64,
    pub store_errors: AtomicU64,
    pub batches: AtomicU64,
    pub batched_inputs: AtomicU64,
    pub commit_micros_total: AtomicU64,
    pub commit_micros_max: AtomicU64,
    /// The runtime's last rebuild (at start, or after a failed commit): 1 if it started from
    /// a stored snapshot, and how many records it replayed.
    pub rebuild_from_snapshot: AtomicU64,
    pub rebuild_replayed: AtomicU64,
    /// Runtime snapshots written, the size of the last one, and the longest it took.
    pub snapshots: AtomicU64,
    pub snapshot_bytes: AtomicU64,
    pub snapshot_micros_max: AtomicU64,
    /// Followers of a log that fell behind (their connection past `max_stream_buffer`) and
    /// went on from the store; followers cut off because the log no longer held their cursor.
    pub followers_paused: AtomicU64,
    pub followers_cut: AtomicU64,
    /// Not a counter: the bytes of read requests the engine has not taken yet, which socket
    /// readers wait on (shared through here by every reader and the engine).
    pub intake: crate::intake::Intake,
}

impl Metrics {
    pub fn inc(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe_batch(&self, inputs: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batched_inputs
            .fetch_add(inputs as u64, Ordering::Relaxed);
    }

    pub fn observe_commit(&self, took: Duration) {
        let us = took.as_micros() as u64;
        self.commit_micros_total.fetch_add(us, Ordering::Relaxed);
        self.commit_micros_max.fetch_max(us, Ordering::Relaxed);
    }

    /// Every counter by name, for `bus.stats`.
    pub fn snapshot(&self) -> serde_json::Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "connections_open": g(&self.connections_open),
            "connections_total": g(&self.connections_total),
            "connections_refused": g(&self.connections_refused),
            "requests": g(&self.requests),
            "bad_requests": g(&self.bad_requests),
            "errors": g(&self.errors),
            "records": g(&self.records),
            "deliveries": g(&self.deliveries),
            "redeliveries": g(&self.redeliveries),
            "acks": g(&self.acks),
            "dead_letters": g(&self.dead_letters),
            "store_errors": g(&self.store_errors),
            "batches": g(&self.batches),
            "batched_inputs": g(&self.batched_inputs),
            "commit_micros_total": g(&self.commit_micros_total),
            "commit_micros_max": g(&self.commit_micros_max),
            "rebuild_from_snapshot": g(&self.rebuild_from_snapshot),
            "rebuild_replayed": g(&self.rebuild_replayed),
            "snapshots": g(&self.snapshots),
            "snapshot_bytes": g(&self.snapshot_bytes),
            "snapshot_micros_max": g(&self.snapshot_micros_max),
            "followers_paused": g(&self.followers_paused),
            "followers_cut": g(&self.followers_cut),
            "intake_bytes": self.intake.waiting() as u64,
        })
    }
}
