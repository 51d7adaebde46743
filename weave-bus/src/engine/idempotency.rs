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

/// (session, src, key) — key is `k:<idempotency_key>` or `i:<envelope id>` — joined in one
/// string, unambiguously (the first two lengths lead), built once per request.
#[derive(Debug, Clone)]
pub struct IdemKey {
    joined: Arc<str>,
    /// Where session, src and key start in `joined`.
    at: [usize; 3],
}

impl IdemKey {
    pub fn new(session: &str, src: &str, tag: &str, key: &str) -> Self {
        let mut joined =
            String::with_capacity(12 + session.len() + src.len() + tag.len() + key.len());
        let mut int = itoa::Buffer::new();
        joined.push_str(int.format(session.len()));
        joined.push(':');
        joined.push_str(int.format(src.len()));
        joined.push(':');
        let s = joined.len();
        joined.push_str(session);
        let r = joined.len();
        joined.push_str(src);
        let k = joined.len();
        joined.push_str(tag);
        joined.push_str(key);
        Self {
            joined: joined.into(),
            at: [s, r, k],
        }
    }

    pub fn session(&self) -> &str {
        &self.joined[self.at[0]..self.at[1]]
    }

    pub fn src(&self) -> &str {
        &self.joined[self.at[1]..self.at[2]]
    }

    pub fn key(&self) -> &str {
        &self.joined[self.at[2]..]
    }
}

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
pub fn key_for<P>(env: &Envelope<P>) -> Option<IdemKey> {
    if !IDEMPOTENT.contains(&env.kind.as_str()) {
        return None;
    }
    let (tag, key) = match &env.idempotency_key {
        Some(k) if !k.is_empty() => ("k:", k.as_str()),
        _ => ("i:", env.id.as_str()),
    };
    Some(IdemKey::new(
        env.session.as_deref().unwrap_or_default(),
        &env.src,
        tag,
        key,
    ))
}

/// A remembered response, shared by the map and the row written to the store.
pub type Response = Arc<str>;

#[derive(Debug, Default)]
pub struct Idempotency {
    responses: Map<Arc<str>, Response>,
    /// Oldest first: (created ms, store row id, key).
    order: VecDeque<(i64, i64, Arc<str>)>,
}

impl Idempotency {
    pub fn load(rows: Vec<IdempotencyRow>) -> Self {
        let mut this = Self::default();
        for row in rows {
            this.put(
                IdemKey::new(&row.session, &row.src, "", &row.key),
                row.response.into(),
                row.created_ms,
                row.id,
            );
        }
        this
    }

    pub fn get(&self, key: &IdemKey) -> Option<&str> {
        self.responses.get(&*key.joined).map(|r| &**r)
    }

    pub fn put(&mut self, key: IdemKey, response: Response, created_ms: i64, row_id: i64) {
        let key = key.joined;
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
        let k = |a: &str, b: &str, c: &str| IdemKey::new(a, b, "i:", c).joined;
        assert_ne!(k("ab", "c", "x"), k("a", "bc", "x"));
        assert_ne!(k("a", "b", "cx"), k("a", "bc", "x"));
        assert_eq!(k("s", "a", "1"), k("s", "a", "1"));
        let key = IdemKey::new("s1", "src", "k:", "mine");
        assert_eq!(
            (key.session(), key.src(), key.key()),
            ("s1", "src", "k:mine")
        );
        // As loaded from the store: the tag is part of the stored key.
        assert_eq!(IdemKey::new("s1", "src", "", "k:mine").joined, key.joined);
    }
}
