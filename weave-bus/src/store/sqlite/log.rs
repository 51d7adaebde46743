//! The event log and the delivery queue's dead letters in SQLite.

use rusqlite::params;

use super::db::{record_row, Store};
use crate::store::backend::{
    DeadLetter, DeadLetterRow, DeliveryQueue, EventLog, StoreResult, StoredRecord,
};

impl EventLog for Store {
    /// Records with `seq > since`, oldest first, at most `limit`.
    fn records_after(
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
    fn latest_records(&self, session: i64, limit: usize) -> StoreResult<Vec<StoredRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, ts, envelope FROM events WHERE session = ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let mut rows: Vec<StoredRecord> = stmt
            .query_map(params![session, limit as i64], record_row)?
            .collect::<Result<_, _>>()?;
        rows.reverse();
        Ok(rows)
    }

    /// Deletes the session's records with `seq <= through` (retention).
    fn prune_events(&self, session: i64, through: u64) -> StoreResult<()> {
        self.conn
            .prepare_cached("DELETE FROM events WHERE session = ?1 AND seq <= ?2")?
            .execute(params![session, through as i64])?;
        self.prune_receipts(session, through)?;
        self.prune_search(session, through)
    }
}

impl DeliveryQueue for Store {
    fn insert_dead_letter(&self, d: DeadLetter<'_>) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO dead_letters (delivery_id, session, target, seq, count, reason, ts, envelope)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                d.id as i64,
                d.session,
                d.target,
                d.seq as i64,
                d.count,
                d.reason,
                d.ts,
                d.envelope
            ])?;
        Ok(())
    }

    fn dead_letters(&self, session: i64, limit: usize) -> StoreResult<Vec<DeadLetterRow>> {
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
}
