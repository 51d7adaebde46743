//! Key-value state in SQLite: sessions, agents, remembered responses, the runtime's snapshot.

use rusqlite::{params, OptionalExtension};

use super::db::Store;
use super::rows::decode_idempotency;
use crate::store::backend::{
    AgentRow, DeliveryRow, IdempotencyRow, Loaded, SessionRow, State, StoreResult,
};

impl State for Store {
    fn load(&self) -> StoreResult<Loaded> {
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
            "SELECT session, id, name, kind, position, instance, secret FROM agents ORDER BY rowid",
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
                    secret: r.get(6)?,
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
    fn insert_session(
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

    fn close_session(&self, key: i64, at: &str) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE sessions SET closed_at = ?2 WHERE key = ?1")?
            .execute(params![key, at])?;
        Ok(())
    }

    fn upsert_agent(
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

    fn set_agent_instance(
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

    fn set_agent_secret(&self, session: i64, id: &str, secret: &str) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE agents SET secret = ?3 WHERE session = ?1 AND id = ?2")?
            .execute(params![session, id, secret])?;
        Ok(())
    }

    fn set_agent_position(&self, session: i64, id: &str, position: Option<i64>) -> StoreResult<()> {
        self.conn
            .prepare_cached("UPDATE agents SET position = ?3 WHERE session = ?1 AND id = ?2")?
            .execute(params![session, id, position])?;
        Ok(())
    }

    fn delete_agent(&self, session: i64, id: &str) -> StoreResult<()> {
        self.conn
            .prepare_cached("DELETE FROM agents WHERE session = ?1 AND id = ?2")?
            .execute(params![session, id])?;
        Ok(())
    }

    /// Forgets every remembered response up to row `id` (the oldest ones).
    /// Forgets remembered responses through `id`: whole rows only, so a row with keys still
    /// remembered stays (its older keys are read back at a start and expire again at once).
    fn delete_idempotency_through(&self, id: i64) -> StoreResult<()> {
        self.conn
            .prepare_cached("DELETE FROM idempotency WHERE id <= ?1")?
            .execute([id])?;
        self.conn
            .prepare_cached("DELETE FROM idempotency_chunks WHERE last_id <= ?1")?
            .execute([id])?;
        Ok(())
    }

    /// Replaces the runtime's snapshot: `state` as of `through` (session key → last seq).
    fn put_runtime_snapshot(&self, through: &str, state: &[u8]) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO runtime_snapshot (id, through, state) VALUES (1, ?1, ?2)",
            )?
            .execute(params![through, state])?;
        Ok(())
    }

    /// The runtime's snapshot, if one was taken: (through, state).
    fn runtime_snapshot(&self) -> StoreResult<Option<(String, Vec<u8>)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT through, state FROM runtime_snapshot WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }
}

impl Store {
    /// As a mirror of a replicated store: the stream sequence of the last transaction applied
    /// (0: none).
    pub fn replicated_through(&self) -> StoreResult<u64> {
        let through: Option<i64> = self
            .conn
            .query_row("SELECT through FROM replicated WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(through.unwrap_or(0) as u64)
    }

    /// Moves [`Store::replicated_through`], in the open transaction.
    pub fn set_replicated_through(&self, seq: u64) -> StoreResult<()> {
        self.conn.execute(
            "INSERT INTO replicated (id, through) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET through = excluded.through",
            [seq as i64],
        )?;
        Ok(())
    }
}
