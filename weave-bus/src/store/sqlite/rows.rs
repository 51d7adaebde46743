//! The rows every message writes, with their statements prepared once per batch.

use std::cell::RefCell;

use rusqlite::{params, CachedStatement, Connection};

use super::message_index::{self, MessageIndex};
use super::receipts::PUT_RECEIPT;
use crate::json_text::rows::idempotency_row;
use crate::store::backend::{IdempotencyRef, IdempotencyRow, RowWriter, StoreResult};

/// The rows every message writes — its record, its delivery's state, its remembered response —
/// with their statements prepared once per batch (looking each up in the statement cache per
/// row cost a sixth of the store's time).
pub struct Rows<'a> {
    event: CachedStatement<'a>,
    delivery: CachedStatement<'a>,
    undelivery: CachedStatement<'a>,
    idempotency: CachedStatement<'a>,
    receipt: CachedStatement<'a>,
    conn: &'a Connection,
    messages: &'a RefCell<MessageIndex>,
}

impl<'a> Rows<'a> {
    /// The statements of the rows every message writes, prepared once for a whole batch.
    pub(super) fn prepare(
        conn: &'a Connection,
        messages: &'a RefCell<MessageIndex>,
    ) -> rusqlite::Result<Rows<'a>> {
        Ok(Rows {
            event: conn.prepare_cached(
                "INSERT INTO events (session, seq, ts, envelope) VALUES (?1, ?2, ?3, ?4)",
            )?,
            delivery: conn.prepare_cached(
                "INSERT INTO deliveries (id, session, target, seq, count, addressed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET count = excluded.count, target = excluded.target,
                 addressed = excluded.addressed",
            )?,
            undelivery: conn.prepare_cached("DELETE FROM deliveries WHERE id = ?1")?,
            idempotency: conn.prepare_cached(
                "INSERT INTO idempotency_chunks (last_id, entries) VALUES (?1, ?2)",
            )?,
            receipt: conn.prepare_cached(PUT_RECEIPT)?,
            conn,
            messages,
        })
    }
}

/// Reads back a row of remembered responses (written by `json_text::rows`).
pub(super) fn decode_idempotency(entries: &str) -> serde_json::Result<Vec<IdempotencyRow>> {
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

impl RowWriter for Rows<'_> {
    fn insert_event(
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
    fn put_delivery(
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

    fn delete_delivery(&mut self, id: u64) -> StoreResult<()> {
        self.undelivery.execute([id as i64])?;
        Ok(())
    }

    /// Appends a batch's remembered responses (numbered by the engine in age order) as one row.
    fn put_idempotency(&mut self, entries: &[IdempotencyRef<'_>]) -> StoreResult<()> {
        let Some(last) = entries.iter().map(|e| e.id).max() else {
            return Ok(());
        };
        self.idempotency
            .execute(params![last, idempotency_row(entries.iter().copied())])?;
        Ok(())
    }

    fn put_receipt(
        &mut self,
        session: i64,
        message: &str,
        agent: &str,
        seq: u64,
        state: i64,
    ) -> StoreResult<()> {
        self.receipt
            .execute(params![session, seq as i64, message, agent, state])?;
        if let Some(hash) = self.messages.borrow_mut().note(session, message, seq) {
            message_index::insert(self.conn, session, hash, seq)?;
        }
        Ok(())
    }
}
