//! Remembered responses of state-changing requests, keyed by (session, src, idempotency key or
//! envelope id): a repeat gets the first response and changes nothing. Kept at least
//! `idempotency_ttl`, at most `max_idempotency_keys` (oldest evicted first); stored durably so
//! a repeat after a restart is still recognised. Lookups are in memory; the store only appends
//! (in age order) and deletes the oldest, so remembering costs no random B-tree writes.

use std::collections::VecDeque;
use std::sync::Arc;

use super::state::Map;

use codex_weave_runtime::Envelope;

use crate::store::IdempotencyRow;

/// (session, src, key) — key is `k:<idempotency_key>` or `i:<envelope id>`.
pub type IdemKey = (String, String, String);

/// Request types whose repeats are recognised.
const IDEMPOTENT: &[&str] = &[
    "session.create",
    "session.close",
    "agent.update",
    "agent.remove",
    "message.send",
    "action.submit",
    "action.result",
    "relay.submit",
];

/// The key a request is remembered under, if its type is idempotent.
pub fn key_for(env: &Envelope) -> Option<IdemKey> {
    if !IDEMPOTENT.contains(&env.kind.as_str()) {
        return None;
    }
    let key = match &env.idempotency_key {
        Some(k) if !k.is_empty() => format!("k:{k}"),
        _ => format!("i:{}", env.id),
    };
    Some((
        env.session.clone().unwrap_or_default(),
        env.src.clone(),
        key,
    ))
}

/// One key as held in memory: its three parts in one allocation, shared by the map and the
/// age queue (a remembered message used to cost six strings, each freed cold on eviction).
type Joined = Arc<str>;

/// `session`, `src` and `key` joined unambiguously: the first two lengths lead.
fn joined(key: &IdemKey) -> String {
    let (session, src, key) = key;
    format!("{}:{}:{session}{src}{key}", session.len(), src.len())
}

#[derive(Debug, Default)]
pub struct Idempotency {
    responses: Map<Joined, String>,
    /// Oldest first: (created ms, store row id, key).
    order: VecDeque<(i64, i64, Joined)>,
}

impl Idempotency {
    pub fn load(rows: Vec<IdempotencyRow>) -> Self {
        let mut this = Self::default();
        for row in rows {
            this.put(
                &(row.session, row.src, row.key),
                row.response,
                row.created_ms,
                row.id,
            );
        }
        this
    }

    pub fn get(&self, key: &IdemKey) -> Option<&str> {
        self.responses.get(joined(key).as_str()).map(String::as_str)
    }

    pub fn put(&mut self, key: &IdemKey, response: String, created_ms: i64, row_id: i64) {
        let key: Joined = joined(key).into();
        if self.responses.insert(key.clone(), response).is_none() {
            self.order.push_back((created_ms, row_id, key));
        }
    }

    pub fn len(&self) -> usize {
        self.responses.len()
    }

    /// Drops keys older than `ttl_ms` and the oldest beyond `max`. Returns the highest store
    /// row id dropped, for the store to delete through.
    pub fn evict(&mut self, now_ms: i64, ttl_ms: i64, max: usize) -> Option<i64> {
        let mut through = None;
        while let Some((created, _, _)) = self.order.front() {
            if now_ms - created <= ttl_ms && self.order.len() <= max {
                break;
            }
            let (_, row_id, key) = self.order.pop_front().expect("front exists");
            self.responses.remove(&key);
            through = Some(row_id);
        }
        through
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_never_run_together() {
        let k = |a: &str, b: &str, c: &str| joined(&(a.into(), b.into(), c.into()));
        assert_ne!(k("ab", "c", "i:x"), k("a", "bc", "i:x"));
        assert_ne!(k("a", "b", "ci:x"), k("a", "bc", "i:x"));
        assert_eq!(k("s", "a", "i:1"), k("s", "a", "i:1"));
    }
}
