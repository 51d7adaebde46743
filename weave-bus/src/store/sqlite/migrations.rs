//! Numbered schema migrations, applied in order at start-up. `PRAGMA user_version` holds the
//! number of the last one applied. Never edit a released migration: add the next one.

use rusqlite::{Connection, OptionalExtension};

const MIGRATIONS: &[&str] = &[
    // 1: sessions, agents, the event log, pending and dead deliveries, idempotency keys.
    "CREATE TABLE sessions (
        key INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        name TEXT,
        created_at TEXT NOT NULL,
        closed_at TEXT
    );
    CREATE TABLE agents (
        session INTEGER NOT NULL,
        id TEXT NOT NULL,
        name TEXT,
        PRIMARY KEY (session, id)
    );
    CREATE TABLE events (
        session INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        ts TEXT NOT NULL,
        envelope TEXT NOT NULL,
        PRIMARY KEY (session, seq)
    ) WITHOUT ROWID;
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        session INTEGER NOT NULL,
        target TEXT NOT NULL,
        seq INTEGER NOT NULL,
        count INTEGER NOT NULL
    );
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY,
        delivery_id INTEGER NOT NULL,
        session INTEGER NOT NULL,
        target TEXT NOT NULL,
        seq INTEGER NOT NULL,
        count INTEGER NOT NULL,
        reason TEXT NOT NULL,
        ts TEXT NOT NULL
    );
    CREATE INDEX dead_letters_by_session ON dead_letters (session, id);
    -- Append-only (rowid order = age); looked up in memory, so no index on the key.
    CREATE TABLE idempotency (
        id INTEGER PRIMARY KEY,
        session TEXT NOT NULL,
        src TEXT NOT NULL,
        key TEXT NOT NULL,
        response TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    );",
    // 2: what kind of agent (a terminal `agent`, a `human` in the browser, an `sdk` client).
    "ALTER TABLE agents ADD COLUMN kind TEXT NOT NULL DEFAULT 'agent';",
    // 3: the operator's order of a session's agents (NULL: after the ordered ones, by id).
    "ALTER TABLE agents ADD COLUMN position INTEGER;",
    // 4: a dead letter keeps its own copy of the envelope, so old records can be pruned.
    "ALTER TABLE dead_letters ADD COLUMN envelope TEXT;",
    // 5: the runtime's state as of the records named in `through` (JSON: session key → seq),
    // so that a start replays only the records that follow it. At most one row.
    "CREATE TABLE runtime_snapshot (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        through TEXT NOT NULL,
        state BLOB NOT NULL
    );",
    // 6: remembered responses, one row per batch (`entries`: a JSON array of
    // `[id, session, src, key, response, created_ms]`, `response` as its JSON), keyed by the
    // batch's last id. A row per response cost a sixth of the store's time. The table of
    // migration 1 is still read at start and emptied as its keys expire.
    "CREATE TABLE idempotency_chunks (
        last_id INTEGER PRIMARY KEY,
        entries TEXT NOT NULL
    );",
    // 7: receipts, one row per message (or action of a group) and recipient: its state
    // (0 queued, 1 delivered, 2 read, 3 answered) only ever moves forward. `seq` is the record
    // that carried the message, so an agent's unread messages are read in log order and pruned
    // with the log.
    "CREATE TABLE receipts (
        session INTEGER NOT NULL,
        message TEXT NOT NULL,
        agent TEXT NOT NULL,
        seq INTEGER NOT NULL,
        state INTEGER NOT NULL,
        PRIMARY KEY (session, message, agent)
    ) WITHOUT ROWID;
    CREATE INDEX receipts_by_agent ON receipts (session, agent, state, seq);",
    // 8: full-text search over the records' text (SQLite FTS5, contentless: the text stays in
    // `events`; rowid = session << 40 | seq). `search_indexed` says how far each session's log
    // is indexed; the index catches up before every search and when the bus is quiet.
    "CREATE VIRTUAL TABLE events_fts USING fts5(
        body, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TABLE search_indexed (
        session INTEGER PRIMARY KEY,
        through INTEGER NOT NULL
    );",
    // 9: a client's instance key per agent (the same agent under a new id takes over what was
    // queued for the old one), and the agent a moved delivery was first addressed to (an
    // action group's actions are picked by it; NULL: the target).
    "ALTER TABLE agents ADD COLUMN instance TEXT;
    ALTER TABLE deliveries ADD COLUMN addressed TEXT;",
    // 10: each agent's secret, the proof that lets a connection take the agent over from a
    // live one (returned by the agent.add that registered it).
    "ALTER TABLE agents ADD COLUMN secret TEXT;",
    // 11: receipts keyed by the record that carried the message, so that a message's rows are
    // appended, not inserted at a random place of a b-tree keyed by its id (a page written to
    // the log per message: 10 µs of the store's 14 µs per message). A message's records are
    // found by a 64-bit hash of its id in `message_seqs`, written in bulk and sorted
    // (`message_index.rs`); `message_indexed` says, per session, through which seq every
    // receipt's id is in it (none yet: the first start after this reads them all back).
    "CREATE TABLE receipts_by_seq (
        session INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        message TEXT NOT NULL,
        agent TEXT NOT NULL,
        state INTEGER NOT NULL,
        PRIMARY KEY (session, seq, message, agent)
    ) WITHOUT ROWID;
    INSERT INTO receipts_by_seq (session, seq, message, agent, state)
        SELECT session, seq, message, agent, state FROM receipts;
    DROP TABLE receipts;
    ALTER TABLE receipts_by_seq RENAME TO receipts;
    CREATE INDEX receipts_by_agent ON receipts (session, agent, state, seq);
    CREATE TABLE message_seqs (
        session INTEGER NOT NULL,
        hash INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (session, hash, seq)
    ) WITHOUT ROWID;
    CREATE INDEX message_seqs_by_seq ON message_seqs (session, seq);
    CREATE TABLE message_indexed (
        session INTEGER PRIMARY KEY,
        through INTEGER NOT NULL
    );",
    // 12: a mirror of a replicated store (`store/replicated/`): the stream sequence of the
    // last transaction of the log it applied.
    "CREATE TABLE replicated (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        through INTEGER NOT NULL
    );",
];

pub fn run(conn: &Connection) -> rusqlite::Result<()> {
    let applied: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        conn.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))?;
        tracing::info!(migration = i + 1, "store migrated");
    }
    Ok(())
}

/// Creates the index if it is missing (a store from before it, or one whose index was dropped):
/// every session is then indexed again from its log on the next search.
pub(super) fn ensure_search_index(conn: &Connection) -> rusqlite::Result<()> {
    let present: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events_fts'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if present.is_none() {
        tracing::warn!("the search index is missing: rebuilt from the log");
        conn.execute_batch(
            "CREATE VIRTUAL TABLE events_fts USING fts5(
                 body, content = '', contentless_delete = 1,
                 tokenize = 'unicode61 remove_diacritics 2');
             DELETE FROM search_indexed;",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Durability;
    use crate::store::prelude::*;
    use crate::store::Store;

    /// A store of migration 10 (receipts keyed by message id) opens with its receipts found by
    /// id, from `message_seqs`.
    #[test]
    fn receipts_keyed_by_id_move_to_their_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..10] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(
                "PRAGMA user_version = 10;
                 INSERT INTO sessions (key, id, created_at) VALUES (1, 's', 't');
                 INSERT INTO receipts (session, message, agent, seq, state) VALUES
                     (1, 'm1', 'b', 1, 3), (1, 'm1', 'c', 1, 1), (1, 'm2', 'b', 2, 0);",
            )
            .unwrap();
        }
        let store = Store::open(&path, Durability::Normal).unwrap();
        let rows: Vec<_> = store
            .receipts_of(1, &["m1".into(), "m2".into()])
            .unwrap()
            .into_iter()
            .map(|r| (r.message, r.agent, r.seq, r.state))
            .collect();
        assert_eq!(
            rows,
            [
                ("m1".into(), "b".into(), 1, 3),
                ("m1".into(), "c".into(), 1, 1),
                ("m2".into(), "b".into(), 2, 0)
            ]
        );
        assert_eq!(store.unread(1, "b", 2, 10).unwrap().1, 1);
    }
}
