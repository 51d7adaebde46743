//! The runtime's state survives restarts as a snapshot in the store plus the records that
//! follow it. A snapshot is written in the same transaction as the batch it ends, so it always
//! matches the committed log: every `snapshot_every` records, and at shutdown. A start (or a
//! failed commit) takes the snapshot back and replays only the records after it; a missing or
//! unreadable snapshot (an older version's) falls back to replaying the whole log.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use codex_weave_runtime::{Envelope, Runtime};

use super::brain::input_for;
use super::Engine;
use crate::store::StoreError;

/// Records read from the store per query while replaying.
const REPLAY_PAGE: usize = 10_000;

impl Engine {
    /// Writes the runtime's state as of the batch being applied into the batch's transaction.
    pub(super) fn write_snapshot(&mut self) {
        let started = Instant::now();
        let through: HashMap<i64, u64> = self
            .sessions
            .values()
            .map(|s| (s.key, s.last_seq))
            .collect();
        let through = serde_json::to_string(&through).unwrap_or_default();
        let state = self.runtime.snapshot();
        let bytes = state.len();
        self.write(|s| s.put_runtime_snapshot(&through, &state));
        self.since_snapshot = 0;
        let took = started.elapsed();
        let m = &self.metrics;
        m.snapshots.fetch_add(1, Ordering::Relaxed);
        m.snapshot_bytes.store(bytes as u64, Ordering::Relaxed);
        m.snapshot_micros_max
            .fetch_max(took.as_micros() as u64, Ordering::Relaxed);
        tracing::debug!(bytes, ?took, "runtime snapshot written");
    }

    /// Takes the stored snapshot back (if any) and replays, session by session, the recorded
    /// requests that follow it. Outputs are dropped: they are recorded already.
    pub(super) fn rebuild_runtime(&mut self) -> Result<(), StoreError> {
        let started = Instant::now();
        let cfg = self.cfg.runtime.clone();
        let (runtime, through) = match self.store.runtime_snapshot()? {
            Some((through, state)) => {
                match (
                    serde_json::from_str::<HashMap<i64, u64>>(&through),
                    Runtime::from_snapshot(cfg.clone(), &state),
                ) {
                    (Ok(through), Ok(runtime)) => (runtime, through),
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::warn!(error = %e, "runtime snapshot unreadable; replaying the whole log");
                        (Runtime::new(cfg), HashMap::new())
                    }
                }
            }
            None => (Runtime::new(cfg), HashMap::new()),
        };
        self.runtime = runtime;
        let mut sessions: Vec<(i64, String)> = self
            .sessions
            .values()
            .map(|s| (s.key, s.id.clone()))
            .collect();
        sessions.sort();
        let mut replayed = 0u64;
        for (key, sid) in sessions {
            let mut since = through.get(&key).copied().unwrap_or(0);
            loop {
                let rows = self.store.records_after(key, since, REPLAY_PAGE)?;
                let Some(last) = rows.last().map(|r| r.seq) else {
                    break;
                };
                for row in rows {
                    let Ok(env) = serde_json::from_str::<Envelope>(&row.envelope) else {
                        continue;
                    };
                    if let Some(input) = input_for(&sid, &env) {
                        self.runtime.handle(input);
                    }
                    replayed += 1;
                }
                since = last;
            }
        }
        self.since_snapshot = replayed;
        let m = &self.metrics;
        m.rebuild_from_snapshot
            .store(u64::from(!through.is_empty()), Ordering::Relaxed);
        m.rebuild_replayed.store(replayed, Ordering::Relaxed);
        tracing::info!(
            from_snapshot = !through.is_empty(),
            replayed,
            took = ?started.elapsed(),
            "runtime state rebuilt"
        );
        Ok(())
    }
}
