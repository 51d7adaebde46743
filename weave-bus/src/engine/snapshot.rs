//! The runtime's state survives restarts as a snapshot in the store plus the records that
//! follow it. A snapshot is written in the same transaction as the batch it ends, so it always
//! matches the committed log: every `snapshot_every` records, and at shutdown. A start (or a
//! failed commit) takes the snapshot back and replays only the records after it; a missing or
//! unreadable snapshot (an older version's) falls back to replaying the whole log.
//!
//! The replay merges the sessions' logs in commit-time order: the runtime's memory budget is
//! shared by all sessions, so what it keeps after a replay is what it kept live (the most
//! recent entries of every session), not the tail of whichever session was replayed last.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::Instant;

use codex_weave_runtime::{Envelope, Runtime};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::brain::input_for;
use super::Engine;
use crate::store::{StoreError, StoredRecord};

/// Records read from the store per query and session while replaying.
const REPLAY_PAGE: usize = 2_000;

/// One session's log being replayed: what is read and not yet applied, and where to read on.
struct LogCursor {
    key: i64,
    sid: String,
    since: u64,
    rows: VecDeque<StoredRecord>,
}

/// A record's commit time in nanoseconds (0 when unreadable: it then sorts first).
fn commit_nanos(ts: &str) -> i128 {
    OffsetDateTime::parse(ts, &Rfc3339).map_or(0, |t| t.unix_timestamp_nanos())
}

impl Engine {
    /// Writes the runtime's state as of the batch being applied into the batch's transaction.
    pub(super) fn write_snapshot(&mut self) {
        let started = Instant::now();
        let through: HashMap<i64, u64> = self
            .registry
            .sessions
            .values()
            .map(|s| (s.key, s.last_seq))
            .collect();
        let through = serde_json::to_string(&through).unwrap_or_default();
        let state = self.runtime.snapshot();
        let bytes = state.len();
        self.write(move |s| s.put_runtime_snapshot(&through, &state));
        self.records.since_snapshot = 0;
        let took = started.elapsed();
        let m = &self.metrics;
        m.snapshots.fetch_add(1, Ordering::Relaxed);
        m.snapshot_bytes.store(bytes as u64, Ordering::Relaxed);
        m.snapshot_micros_max
            .fetch_max(took.as_micros() as u64, Ordering::Relaxed);
        tracing::debug!(bytes, ?took, "runtime snapshot written");
    }

    /// Takes the stored snapshot back (if any) and replays the recorded requests that follow
    /// it, in commit order. Outputs are dropped: they are recorded already.
    pub(super) fn rebuild_runtime(&mut self) -> Result<(), StoreError> {
        let started = Instant::now();
        let cfg = self.cfg.runtime.clone();
        let (runtime, through) = match self.read(|s| s.runtime_snapshot())? {
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
        let replayed = self.replay_in_commit_order(&through)?;
        self.records.since_snapshot = replayed;
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

    /// Replays every session's records after `through` into the runtime, all sessions merged
    /// by commit time (then session, then seq). Returns how many records were read.
    fn replay_in_commit_order(&mut self, through: &HashMap<i64, u64>) -> Result<u64, StoreError> {
        let mut cursors: Vec<LogCursor> = self
            .registry
            .sessions
            .values()
            .map(|s| LogCursor {
                key: s.key,
                sid: s.id.clone(),
                since: through.get(&s.key).copied().unwrap_or(0),
                rows: VecDeque::new(),
            })
            .collect();
        cursors.sort_by_key(|c| c.key);
        // The next record of each cursor: (commit time, session key, seq) → cursor index.
        let mut next = BinaryHeap::new();
        for (i, c) in cursors.iter_mut().enumerate() {
            if let Some(at) = self.refill(c)? {
                next.push(Reverse((at, c.key, i)));
            }
        }
        let mut replayed = 0u64;
        while let Some(Reverse((_, _, i))) = next.pop() {
            let c = &mut cursors[i];
            let Some(row) = c.rows.pop_front() else {
                continue;
            };
            if let Ok(env) = serde_json::from_str::<Envelope>(&row.envelope) {
                if let Some(input) = input_for(&c.sid, &env) {
                    self.runtime.handle(input);
                }
            }
            replayed += 1;
            let at = match c.rows.front() {
                Some(r) => Some(commit_nanos(&r.ts)),
                None => self.refill(c)?,
            };
            if let Some(at) = at {
                next.push(Reverse((at, c.key, i)));
            }
        }
        Ok(replayed)
    }

    /// Reads the cursor's next page when it has nothing buffered; returns the commit time of
    /// its next record, `None` at the end of its log.
    fn refill(&mut self, c: &mut LogCursor) -> Result<Option<i128>, StoreError> {
        if c.rows.is_empty() {
            let (key, since) = (c.key, c.since);
            let rows = self.read(move |s| s.records_after(key, since, REPLAY_PAGE))?;
            if let Some(last) = rows.last() {
                c.since = last.seq;
            }
            c.rows.extend(rows);
        }
        Ok(c.rows.front().map(|r| commit_nanos(&r.ts)))
    }
}
