//! The durable store: SQLite in WAL mode under the home, written through one connection only —
//! by the store's writer thread, or by the engine itself for a small batch while the writer is
//! idle (`engine/writer.rs`).
//!
//! Each batch of requests is one transaction, committed once (group commit); nothing is
//! answered before that commit. Checkpoints run on their own thread and connection
//! so they never sit on the request path. The schema is created by numbered migrations.

mod migrations;
mod receipts;
mod search;

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, CachedStatement, Connection, OptionalExtension};

use crate::config::Durability;
pub use receipts::{ReceiptRow, UnreadRow};
pub use search::{match_expression, SearchQuery};

pub use rusqlite::Error as StoreError;
pub type StoreResult<T> = Result<T, StoreError>;

/// A stored session as loaded at start-up.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub key: i64,
    pub id: String,
    pub name: Option<String>,
    pub created_at: String,
    pub closed: bool,
    /// Highest sequence number written for this session (0 when none).
    pub last_seq: u64,
    /// Lowest sequence number still stored (older ones were pruned).
    pub first_seq: u64,
}

#[derive(Debug, Clone)]
pub struct AgentRow {
    pub session_key: i64,
    pub id: String,
    pub name: Option<String>,
    pub kind: String,
    pub position: Option<i64>,
    pub instance: Option<String>,
}

/// A pending delivery and the stored record it delivers.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: u64,
    pub session_key: i64,
    pub target: String,
    pub seq: u64,
    pub count: u32,
    pub envelope: String,
    /// The agent the delivery was first addressed to, when it has moved since.
    pub addressed: Option<String>,
}

#[derive(Debug, Clone)]
pub struct DeadLetterRow {
    pub id: u64,
    pub target: String,
    pub seq: u64,
    pub count: u32,
    pub reason: String,
    pub ts: String,
    pub envelope: String,
}

#[derive(Debug, Clone)]
pub struct IdempotencyRow {
    /// Row id: insertion order, which is also age order.
    pub id: i64,
    pub session: String,
    pub src: String,
    pub key: String,
    pub response: String,
    pub created_ms: i64,
}

/// Everything the engine rebuilds its memory from.
#[derive(Debug, Default)]
pub struct Loaded {
    pub sessions: Vec<SessionRow>,
    pub agents: Vec<AgentRow>,
    pub deliveries: Vec<DeliveryRow>,
    pub idempotency: Vec<IdempotencyRow>,
    pub next_delivery_id: u64,
}

/// One stored record: sequence number, time and the envelope's JSON text.
#[derive(Debug, Clone)]
pub struct StoredRecord {
    pub seq: u64,
    pub ts: String,
    pub envelope: String,
}

pub struct Store {
    conn: Connection,
    in_txn: bool,
}

/// The rows every message writes — its record, its delivery's state, its remembered response —
/// with their statements prepared once per batch (looking each up in the statement cache per
/// row cost a sixth of the store's time).
pub struct Rows<'a> {
    event: CachedStatement<'a>,
    delivery: CachedStatement<'a>,
    undelivery: CachedStatement<'a>,
    idempotency: CachedStatement<'a>,
    receipt: CachedStatement<'a>,
}

/// A remembered response to write, borrowed from the engine's memory.
pub struct IdempotencyRef<'a> {
    pub id: i64,
    pub session: &'a str,
    pub src: &'a str,
    pub key: &'a str,
    /// JSON text.
    pub response: &'a str,
    pub created_ms: i64,
}

/// One row of remembered responses: a JSON array of `[id, session, src, key, response,
/// created_ms]`, each `response` written as the JSON it is.
fn encode_idempotency<'a>(entries: impl Iterator<Item = IdempotencyRef<'a>>) -> String {
    let mut out = Vec::with_capacity(64 * 1024);
    out.push(b'[');
    for (i, e) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing into a Vec cannot fail (and serde_json writes integers without `fmt`).
        out.push(b'[');
        let _ = serde_json::to_writer(&mut out, &e.id);
        for s in [e.session, e.src, e.key] {
            out.push(b',');
            let _ = serde_json::to_writer(&mut out, s);
        }
        out.push(b',');
        out.extend_from_slice(e.response.as_bytes());
        out.push(b',');
        let _ = serde_json::to_writer(&mut out, &e.created_ms);
        out.push(b']');
    }
    out.push(b']');
    // Strings written by serde_json and JSON text: UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

fn decode_idempotency(entries: &str) -> serde_json::Result<Vec<IdempotencyRow>> {
    type Entry = (
        i64,
        String,
        String,
        String,
        Box<serde_json::value::RawValue>,
        i64,
    );
    let rows: Vec<Entry> = serde_json::from_str(entries)?;
    Ok(rows
        .into_iter()
        .map(
            |(id, session, src, key, response, created_ms)| IdempotencyRow {
                id,
                session,
                src,
                key,
                response: response.get().to_owned(),
                created_ms,
            },
        )
        .collect())
}

impl Rows<'_> {
    pub fn insert_event(
        &mut self,
        session: i64,
        seq: u64,
        ts: &str,
        envelope: &str,
    ) -> StoreResult<()> {
        self.event
            .execute(params![session, seq as i64, ts, envelope])?;
        Ok(())
    }

    /// Writes a delivery's current state (insert or update).
    pub fn put_delivery(
        &mut self,
        id: u64,
        session: i64,
        target: &str,
        seq: u64,
        count: u32,
        addressed: Option<&str>,
    ) -> StoreResult<()> {
        self.delivery.execute(params![
            id as i64, session, target, seq as i64, count, addressed
        ])?;
        Ok(())
    }

    pub fn delete_delivery(&mut self, id: u64) -> StoreResult<()> {
        self.undelivery.execute([id as i64])?;
        Ok(())
    }

    /// Appends a batch's remembered responses (numbered by the engine in age order) as one row.
    pub fn put_idempotency<'e>(
        &mut self,
        entries: impl Iterator<Item = IdempotencyRef<'e>> + Clone,
    ) -> StoreResult<()> {
        let Some(last) = entries.clone().map(|e| e.id).max() else {
            return Ok(());
        };
        self.idempotency
            .execute(params![last, encode_idempotency(entries)])?;
        Ok(())
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating and migrating) the store at `path`.
    pub fn open(path: &Path, durability: Durability) -> StoreResult<Store> {
        // Create the file private to the user; SQLite gives its -wal and -shm files the same mode.
        {
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path);
        }
        let conn = Connection::open(path)?;
        let sync = match durability {
            Durability::Normal => "NORMAL",
            Durability::Fsync => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous={sync};
             PRAGMA wal_autocheckpoint=0;
             PRAGMA foreign_keys=OFF;
             PRAGMA temp_store=MEMORY;
             PRAGMA cache_size=-16384;"
        ))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        migrations::run(&conn)?;
        search::ensure_index(&conn)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Store {
            conn,
            in_txn: false,
        })
    }

    pub fn begin(&mut self) -> StoreResult<()> {
        if !self.in_txn {
            self.conn.execute_batch("BEGIN")?;
            self.in_txn = true;
        }
        Ok(())
    }

    pub fn commit(&mut self) -> StoreResult<()> {
        if self.in_txn {
            self.in_txn = false;
            if let Err(e) = self.conn.execute_batch("COMMIT") {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
        Ok(())
    }

    pub fn rollback(&mut self) {
        if self.in_txn {
            self.in_txn = false;
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Folds the write-ahead log into the database file and truncates it (at shutdown).
    pub fn checkpoint(&self) -> StoreResult<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
    }

    pub fn load(&self) -> StoreResult<Loaded> {
        let mut loaded = Loaded::default();
        let mut stmt = self.conn.prepare(
            "SELECT s.key, s.id, s.name, s.created_at, s.closed_at IS NOT NULL,
                    COALESCE((SELECT MAX(seq) FROM events e WHERE e.session = s.key), 0),
                    COALESCE((SELECT MIN(seq) FROM events e WHERE e.session = s.key), 1)
             FROM sessions s ORDER BY s.key",
        )?;
        loaded.sessions = stmt
            .query_map([], |r| {
                Ok(SessionRow {
                    key: r.get(0)?,
                    id: r.get(1)?,
                    name: r.get(2)?,
                    created_at: r.get(3)?,
                    closed: r.get(4)?,
                    last_seq: r.get::<_, i64>(5)? as u64,
                    first_seq: r.get::<_, i64>(6)? as u64,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = self.conn.prepare(
            "SELECT session, id, name, kind, position, instance FROM agents ORDER BY rowid",
        )?;
        loaded.agents = stmt
            .query_map([], |r| {
                Ok(AgentRow {
                    session_key: r.get(0)?,
                    id: r.get(1)?,
                    name: r.get(2)?,
                    kind: r.get(3)?,
                    position: r.get(4)?,
                    instance: r.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = self.conn.prepare(
            "SELECT d.id, d.session, d.target, d.seq, d.count, e.envelope, d.addressed
             FROM deliveries d JOIN events e ON e.session = d.session AND e.seq = d.seq
             ORDER BY d.id",
        )?;
        loaded.deliveries = stmt
            .query_map([], |r| {
                Ok(DeliveryRow {
                    id: r.get::<_, i64>(0)? as u64,
                    session_key: r.get(1)?,
                    target: r.get(2)?,
                    seq: r.get::<_, i64>(3)? as u64,
                    count: r.get(4)?,
                    envelope: r.get(5)?,
                    addressed: r.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = self.conn.prepare(
            "SELECT id, session, src, key, response, created_ms FROM idempotency ORDER BY id",
        )?;
        loaded.idempotency = stmt
            .query_map([], |r| {
                Ok(IdempotencyRow {
                    id: r.get(0)?,
                    session: r.get(1)?,
                    src: r.get(2)?,
                    key: r.get(3)?,
                    response: r.get(4)?,
                    created_ms: r.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = self
            .conn
            .prepare("SELECT entries FROM idempotency_chunks ORDER BY last_id")?;
        let chunks = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for chunk in chunks {
            match decode_idempotency(&chunk?) {
                Ok(rows) => loaded.idempotency.extend(rows),
                // Only the bus writes them; an unreadable one forgets its keys, nothing else.
                Err(e) => tracing::warn!(error = %e, "unreadable idempotency row skipped"),
            }
        }
        // Delivery ids only need to be unique among pending deliveries: dead letters keep their
        // own row ids, so the id of an acked delivery may be used again after a restart.
        let max_id: i64 =
            self.conn
                .query_row("SELECT COALESCE(MAX(id), 0) FROM deliveries", [], |r| {
                    r.get(0)
                })?;
        loaded.next_delivery_id = max_id as u64 + 1;
        Ok(loaded)
    }

    /// A new session under `key` (the engine numbers sessions: one past the highest loaded).
    pub fn insert_session(
        &self,
        key: i64,
        id: &str,
        name: Option<&str>,
        created_at: &str,
    ) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO sessions (key, id, name, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![key, id, name, created_at])?;
        Ok(())
    }

    /// The statements of the rows every message writes, prepared once for a whole batch.
    pub fn rows(&self) -> StoreResult<Rows<'_>> {
        Ok(Rows {
            event: self.conn.prepare_cached(
                "INSERT INTO events (session, seq, ts, envelope) VALUES (?1, ?2, ?3, ?4)",
            )?,
            delivery: self.conn.prepare_cached(
                "INSERT INTO deliveries (id, session, target, seq, count, addressed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET count = excluded.count, target = excluded.target,
                 addressed = excluded.addressed",
            )?,
            undelivery: self
                .conn
                .prepare_cached("DELETE FROM deliveries WHERE id = ?1")?,
            idempotency: self.conn.prepare_cached(
                "INSERT INTO idempotency_chunks (last_id, entries) VALUES (?1, ?2)",
            )?,
            receipt: self.conn.prepare_cached(receipts::PUT_RECEIPT)?,
        })
    }

    pub fn close_session(&self, key: i64, at: &str) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE sessions SET closed_at = ?2 WHERE key = ?1")?
            .execute(params![key, at])?;
        Ok(())
    }

    pub fn upsert_agent(
        &self,
        session: i64,
        id: &str,
        name: Option<&str>,
        kind: &str,
    ) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO agents (session, id, name, kind) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (session, id) DO UPDATE SET name = excluded.name, kind = excluded.kind",
            )?
            .execute(params![session, id, name, kind])?;
        Ok(())
    }

    pub fn set_agent_instance(
        &self,
        session: i64,
        id: &str,
        instance: Option<&str>,
    ) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE agents SET instance = ?3 WHERE session = ?1 AND id = ?2")?
            .execute(params![session, id, instance])?;
        Ok(())
    }

    pub fn set_agent_position(
        &self,
        session: i64,
        id: &str,
        position: Option<i64>,
    ) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE agents SET position = ?3 WHERE session = ?1 AND id = ?2")?
            .execute(params![session, id, position])?;
        Ok(())
    }

    pub fn delete_agent(&self, session: i64, id: &str) -> StoreResult<()> {
        self.conn
            .prepare_cached("DELETE FROM agents WHERE session = ?1 AND id = ?2")?
            .execute(params![session, id])?;
        Ok(())
    }

    /// Deletes the session's records with `seq <= through` (retention).
    pub fn prune_events(&self, session: i64, through: u64) -> StoreResult<()> {
        self.conn
            .prepare_cached("DELETE FROM events WHERE session = ?1 AND seq <= ?2")?
            .execute(params![session, through as i64])?;
        self.prune_receipts(session, through)?;
        self.prune_search(session, through)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn insert_dead_letter(
        &self,
        id: u64,
        session: i64,
        target: &str,
        seq: u64,
        count: u32,
        reason: &str,
        ts: &str,
        envelope: &str,
    ) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO dead_letters (delivery_id, session, target, seq, count, reason, ts, envelope)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![id as i64, session, target, seq as i64, count, reason, ts, envelope])?;
        Ok(())
    }

    pub fn dead_letters(&self, session: i64, limit: usize) -> StoreResult<Vec<DeadLetterRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.delivery_id, d.target, d.seq, d.count, d.reason, d.ts, COALESCE(d.envelope, e.envelope, 'null')
             FROM dead_letters d LEFT JOIN events e ON e.session = d.session AND e.seq = d.seq
             WHERE d.session = ?1 ORDER BY d.id LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![session, limit as i64], |r| {
                Ok(DeadLetterRow {
                    id: r.get::<_, i64>(0)? as u64,
                    target: r.get(1)?,
                    seq: r.get::<_, i64>(2)? as u64,
                    count: r.get(3)?,
                    reason: r.get(4)?,
                    ts: r.get(5)?,
                    envelope: r.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Forgets every remembered response up to row `id` (the oldest ones).
    /// Forgets remembered responses through `id`: whole rows only, so a row with keys still
    /// remembered stays (its older keys are read back at a start and expire again at once).
    pub fn delete_idempotency_through(&self, id: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached("DELETE FROM idempotency WHERE id <= ?1")?
            .execute([id])?;
        self.conn
            .prepare_cached("DELETE FROM idempotency_chunks WHERE last_id <= ?1")?
            .execute([id])?;
        Ok(())
    }

    /// Replaces the runtime's snapshot: `state` as of `through` (session key → last seq).
    pub fn put_runtime_snapshot(&self, through: &str, state: &[u8]) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO runtime_snapshot (id, through, state) VALUES (1, ?1, ?2)",
            )?
            .execute(params![through, state])?;
        Ok(())
    }

    /// The runtime's snapshot, if one was taken: (through, state).
    pub fn runtime_snapshot(&self) -> StoreResult<Option<(String, Vec<u8>)>> {
        self.conn
            .query_row(
                "SELECT through, state FROM runtime_snapshot WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
    }

    /// Records with `seq > since`, oldest first, at most `limit`.
    pub fn records_after(
        &self,
        session: i64,
        since: u64,
        limit: usize,
    ) -> StoreResult<Vec<StoredRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, ts, envelope FROM events WHERE session = ?1 AND seq > ?2
             ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![session, since as i64, limit as i64], record_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The latest `limit` records, oldest first.
    pub fn latest_records(&self, session: i64, limit: usize) -> StoreResult<Vec<StoredRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, ts, envelope FROM events WHERE session = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let mut rows: Vec<StoredRecord> = stmt
            .query_map(params![session, limit as i64], record_row)?
            .collect::<Result<_, _>>()?;
        rows.reverse();
        Ok(rows)
    }
}

fn record_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRecord> {
    Ok(StoredRecord {
        seq: r.get::<_, i64>(0)? as u64,
        ts: r.get(1)?,
        envelope: r.get(2)?,
    })
}

/// Runs passive WAL checkpoints on its own connection every `every`, until `stop` is set.
/// Passive checkpoints never block the writer.
pub fn spawn_checkpointer(
    path: &Path,
    every: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let path = path.to_owned();
    std::thread::Builder::new()
        .name("weave-checkpoint".into())
        .spawn(move || {
            let Ok(conn) = Connection::open(&path) else {
                return;
            };
            let _ = conn.busy_timeout(Duration::from_millis(100));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(every);
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "checkpoint skipped");
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(id: i64, key: &'a str, response: &'a str) -> IdempotencyRef<'a> {
        IdempotencyRef {
            id,
            session: "s\"1",
            src: "a\u{e9}",
            key,
            response,
            created_ms: 1_700_000_000_000 + id,
        }
    }

    /// Remembered responses go in one row per batch and come back as they went in; forgetting
    /// through an id drops whole rows only.
    #[test]
    fn remembered_responses_are_stored_a_row_per_batch() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut store = Store::open(&dir.path().join("t.db"), Durability::Normal).unwrap();
        let batches: [&[IdempotencyRef<'_>]; 2] = [
            &[
                entry(1, "i:m1", r#"{"id":"m1","seq":1}"#),
                entry(2, "k:\n", "null"),
            ],
            &[entry(
                3,
                "i:m3",
                r#"{"dst":"b","id":"m3","seq":[1,{"x":"\""}]}"#,
            )],
        ];
        for batch in batches {
            store.begin().unwrap();
            let mut rows = store.rows().unwrap();
            rows.put_idempotency(batch.iter().map(|e| IdempotencyRef { ..*e }))
                .unwrap();
            drop(rows);
            store.commit().unwrap();
        }
        let ids = |store: &Store| -> Vec<(i64, String, String, String, String)> {
            let rows = store.load().unwrap().idempotency;
            rows.into_iter()
                .map(|r| (r.id, r.session, r.src, r.key, r.response))
                .collect()
        };
        let all = ids(&store);
        assert_eq!(all.len(), 3);
        for (row, e) in all.iter().zip(batches.iter().flat_map(|b| b.iter())) {
            assert_eq!(
                row,
                &(
                    e.id,
                    e.session.into(),
                    e.src.into(),
                    e.key.into(),
                    e.response.into()
                )
            );
        }
        // Through 2: the first row's keys are all gone. Through 1 would have kept the row.
        store.delete_idempotency_through(1).unwrap();
        assert_eq!(ids(&store).len(), 3);
        store.delete_idempotency_through(2).unwrap();
        assert_eq!(ids(&store).iter().map(|r| r.0).collect::<Vec<_>>(), [3]);
    }
}
