//! Which record carried a message, found by the message's id. Receipts are keyed by (session,
//! seq, message, agent) so that every message's rows are appended to the table; finding them by
//! id goes through `message_seqs` (session, a 64-bit FNV-1a hash of the id, seq), then the
//! receipts of that seq with that id (so a hash shared by two ids costs a look, never a wrong
//! answer). Written row by row, that table would put each message at a random place of a b-tree
//! — a page of the write-ahead log per message, the cost the receipts' key avoids — so it is
//! written in bulk: the hashes of the receipts written since the last bulk write wait here, in
//! memory, and the commit that finds [`LAG_LIMIT`] of them waiting writes them sorted, many to a
//! page.
//!
//! Every receipt past a session's `message_indexed.through` has its hash waiting here; after a
//! crash (or a rollback) they are read back from the receipts past it, about [`LAG_LIMIT`] rows.

use std::hash::Hasher;

use rusqlite::{params, Connection};

type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// How many ids may wait for the bulk write: 2–4 MB of memory, and what a start reads back
/// from the receipts (a store from before migration 11 reads all of its receipts back once,
/// and its first commit writes them in bulk).
pub(super) const LAG_LIMIT: usize = 65_536;

/// The id's key in `message_seqs`: FNV-1a, 64 bits (a fixed function: the table outlives
/// builds).
pub(super) fn id_hash(message: &str) -> i64 {
    let mut h = fnv::FnvHasher::default();
    h.write(message.as_bytes());
    h.finish() as i64
}

#[derive(Debug, Default)]
pub(super) struct MessageIndex {
    /// (session, id hash) → the seq that carried it, for receipts written since the last bulk
    /// write.
    waiting: Map<(i64, i64), u64>,
    /// Per session: the id of every receipt with `seq <= through` is in `message_seqs`.
    through: Map<i64, u64>,
    pub(super) limit: usize,
}

impl MessageIndex {
    /// Each session's `through` and the ids of the receipts past it, as stored.
    pub(super) fn load(conn: &Connection, limit: usize) -> rusqlite::Result<MessageIndex> {
        let mut index = MessageIndex {
            limit,
            ..MessageIndex::default()
        };
        let mut stmt = conn.prepare("SELECT session, through FROM message_indexed")?;
        for row in stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))? {
            let (session, through) = row?;
            index.through.insert(session, through);
        }
        let sessions: Vec<i64> = conn
            .prepare("SELECT key FROM sessions")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut past = conn.prepare(
            "SELECT DISTINCT message, seq FROM receipts WHERE session = ?1 AND seq > ?2",
        )?;
        for session in sessions {
            let through = index.through(session);
            for row in past.query_map(params![session, through as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })? {
                let (message, seq) = row?;
                if let Some(hash) = index.note(session, &message, seq) {
                    insert(conn, session, hash, seq)?;
                }
            }
        }
        Ok(index)
    }

    fn through(&self, session: i64) -> u64 {
        self.through.get(&session).copied().unwrap_or(0)
    }

    /// A receipt of `message`, carried by record `seq`, was written. Returns the id's hash when
    /// it cannot wait and must be written to `message_seqs` now: its seq is at or before what
    /// the last bulk write covered (a receipt for an old record), or the hash already waits
    /// under another seq (two messages with one id, or two ids with one hash).
    pub(super) fn note(&mut self, session: i64, message: &str, seq: u64) -> Option<i64> {
        let hash = id_hash(message);
        if seq <= self.through(session) {
            return Some(hash);
        }
        let known = *self.waiting.entry((session, hash)).or_insert(seq);
        (known != seq).then_some(hash)
    }

    /// The seq `message`'s hash waits under, if it waits.
    pub(super) fn waiting(&self, session: i64, hash: i64) -> Option<u64> {
        self.waiting.get(&(session, hash)).copied()
    }

    /// Whether the commit about to happen should write what waits.
    pub(super) fn due(&self) -> bool {
        self.waiting.len() >= self.limit
    }

    /// Writes every waiting hash to `message_seqs`, sorted, in the open transaction, and moves
    /// each session's `through` past them. (A failed commit reloads the index from the store.)
    pub(super) fn write(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let mut rows: Vec<(i64, i64, u64)> = Vec::with_capacity(self.waiting.len());
        let mut last: Map<i64, u64> = Map::default();
        for ((session, hash), seq) in self.waiting.drain() {
            let at = last.entry(session).or_default();
            *at = (*at).max(seq);
            rows.push((session, hash, seq));
        }
        rows.sort_unstable();
        for &(session, hash, seq) in &rows {
            insert(conn, session, hash, seq)?;
        }
        let mut stmt = conn.prepare_cached(
            "INSERT INTO message_indexed (session, through) VALUES (?1, ?2)
             ON CONFLICT (session) DO UPDATE SET through = excluded.through",
        )?;
        for (session, seq) in last {
            let through = self.through(session).max(seq);
            self.through.insert(session, through);
            stmt.execute(params![session, through as i64])?;
        }
        Ok(())
    }

    /// The session's log was pruned through `through`: those records' ids no longer wait.
    pub(super) fn prune(&mut self, session: i64, through: u64) {
        self.waiting
            .retain(|&(s, _), seq| s != session || *seq > through);
    }
}

/// One row of `message_seqs`.
pub(super) fn insert(conn: &Connection, session: i64, hash: i64, seq: u64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO message_seqs (session, hash, seq) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![session, hash, seq as i64])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Durability;
    use crate::store::prelude::*;
    use crate::store::Store;

    const TS: &str = "2026-01-01T00:00:00Z";

    fn open(dir: &std::path::Path, limit: usize) -> Store {
        let store = Store::open(&dir.join("s.db"), Durability::Normal).unwrap();
        store.messages.borrow_mut().limit = limit;
        store
    }

    /// Records 1..=n, each carrying message `m{seq}` for agent `b`, one commit per record.
    fn messages(store: &mut Store, seqs: std::ops::RangeInclusive<u64>) {
        for seq in seqs {
            store.begin().unwrap();
            {
                let mut rows = store.rows().unwrap();
                rows.insert_event(1, seq, TS, "{}").unwrap();
                rows.put_receipt(1, &format!("m{seq}"), "b", seq, 1)
                    .unwrap();
            }
            store.commit().unwrap();
        }
    }

    fn found(store: &Store, ids: &[&str]) -> Vec<(String, u64)> {
        let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        store
            .receipts_of(1, &ids)
            .unwrap()
            .into_iter()
            .map(|r| (r.message, r.seq))
            .collect()
    }

    #[test]
    fn ids_are_found_whether_written_in_bulk_or_waiting_and_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path(), 4);
        store.insert_session(1, "s", None, TS).unwrap();
        messages(&mut store, 1..=10);
        // Two bulk writes (after 4 and 8 ids), two ids waiting.
        assert_eq!(store.messages.borrow().waiting.len(), 2);
        assert_eq!(store.messages.borrow().through(1), 8);
        let all = ["m1", "m5", "m9", "m10", "m11"];
        let expected: Vec<(String, u64)> = [1, 5, 9, 10].map(|s| (format!("m{s}"), s)).into();
        assert_eq!(found(&store, &all), expected);
        // A crash: nothing more is written; the waiting ids are read back from the receipts.
        drop(store);
        let mut store = open(dir.path(), 4);
        assert_eq!(store.messages.borrow().waiting.len(), 2);
        assert_eq!(found(&store, &all), expected);
        // A receipt for an old record (another agent of message 3) is written at once.
        store.begin().unwrap();
        store
            .rows()
            .unwrap()
            .put_receipt(1, "m3", "c", 3, 0)
            .unwrap();
        store.commit().unwrap();
        let agents: Vec<String> = store
            .receipts_for(1, "c", &["m3".into()])
            .unwrap()
            .into_iter()
            .map(|r| r.agent)
            .collect();
        assert_eq!(agents, ["c"]);
    }

    #[test]
    fn a_rollback_forgets_the_ids_it_wrote_and_a_reused_id_finds_both_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(dir.path(), 100);
        store.insert_session(1, "s", None, TS).unwrap();
        messages(&mut store, 1..=2);
        store.begin().unwrap();
        store
            .rows()
            .unwrap()
            .put_receipt(1, "m3", "b", 3, 0)
            .unwrap();
        store.rollback();
        assert!(found(&store, &["m3"]).is_empty());
        assert_eq!(store.messages.borrow().waiting.len(), 2);
        // Two senders used one id: both records are found by it.
        store.begin().unwrap();
        {
            let mut rows = store.rows().unwrap();
            rows.insert_event(1, 3, TS, "{}").unwrap();
            rows.put_receipt(1, "m1", "c", 3, 0).unwrap();
        }
        store.commit().unwrap();
        assert_eq!(
            found(&store, &["m1"]),
            [("m1".to_string(), 1), ("m1".to_string(), 3)]
        );
        store.prune_events(1, 2).unwrap();
        assert_eq!(found(&store, &["m1", "m2"]), [("m1".to_string(), 3)]);
        assert_eq!(store.messages.borrow().waiting.len(), 0);
    }
}
