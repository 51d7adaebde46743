//! Receipts in the store: one row per message (or action of a group) and recipient, whose state
//! only moves forward, keyed by the record that carried the message (so rows are appended), and
//! the reads served from them (an agent's unread messages, a message's receipts, found by id
//! through `message_index.rs`).

use rusqlite::params;

use super::db::Store;
use super::message_index::id_hash;
use crate::store::backend::{ReceiptRow, Receipts, StoreResult, UnreadRow};

/// The upsert `RowWriter::put_receipt` runs.
pub(super) const PUT_RECEIPT: &str =
    "INSERT INTO receipts (session, seq, message, agent, state) VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (session, seq, message, agent) DO UPDATE SET state = excluded.state
     WHERE excluded.state > receipts.state";

fn receipt_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReceiptRow> {
    Ok(ReceiptRow {
        message: r.get(0)?,
        agent: r.get(1)?,
        seq: r.get::<_, i64>(2)? as u64,
        state: r.get(3)?,
    })
}

impl Receipts for Store {
    /// The receipts of `messages` (every recipient's), in the order of the ids, then by agent.
    fn receipts_of(&self, session: i64, messages: &[String]) -> StoreResult<Vec<ReceiptRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT message, agent, seq, state FROM receipts
             WHERE session = ?1 AND seq = ?2 AND message = ?3 ORDER BY agent",
        )?;
        let mut out = Vec::new();
        for m in messages {
            for seq in self.seqs_of(session, m)? {
                for row in stmt.query_map(params![session, seq as i64, m], receipt_row)? {
                    out.push(row?);
                }
            }
        }
        Ok(out)
    }

    /// `agent`'s receipts of `messages` that exist.
    fn receipts_for(
        &self,
        session: i64,
        agent: &str,
        messages: &[String],
    ) -> StoreResult<Vec<ReceiptRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT message, agent, seq, state FROM receipts
             WHERE session = ?1 AND seq = ?2 AND message = ?3 AND agent = ?4",
        )?;
        let mut out = Vec::new();
        for m in messages {
            for seq in self.seqs_of(session, m)? {
                if let Some(row) = stmt
                    .query_map(params![session, seq as i64, m, agent], receipt_row)?
                    .next()
                {
                    out.push(row?);
                }
            }
        }
        Ok(out)
    }

    /// `agent`'s messages whose receipt is still below `below` (2: not read yet, queued or
    /// delivered; 3: not answered yet), oldest first, at most `limit`, with the records that
    /// carried them; and how many there are in all.
    fn unread(
        &self,
        session: i64,
        agent: &str,
        below: i64,
        limit: usize,
    ) -> StoreResult<(Vec<UnreadRow>, u64)> {
        let total: i64 = self
            .conn
            .prepare_cached(
                "SELECT COUNT(*) FROM receipts WHERE session = ?1 AND agent = ?2 AND state < ?3",
            )?
            .query_row(params![session, agent, below], |r| r.get(0))?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.message, r.seq, r.state, e.ts, e.envelope
             FROM receipts r JOIN events e ON e.session = r.session AND e.seq = r.seq
             WHERE r.session = ?1 AND r.agent = ?2 AND r.state < ?3
             ORDER BY r.seq, r.message LIMIT ?4",
        )?;
        let rows = stmt
            .query_map(params![session, agent, below, limit as i64], |r| {
                Ok(UnreadRow {
                    message: r.get(0)?,
                    seq: r.get::<_, i64>(1)? as u64,
                    state: r.get(2)?,
                    ts: r.get(3)?,
                    envelope: r.get(4)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok((rows, total as u64))
    }
}

impl Store {
    /// The records that may have carried a message with id `message` (one, unless two senders
    /// used the same id or two ids share a hash), oldest first: those in `message_seqs` and the
    /// one waiting to be written there. The receipts' own key says which did.
    fn seqs_of(&self, session: i64, message: &str) -> StoreResult<Vec<u64>> {
        let hash = id_hash(message);
        let mut seqs: Vec<u64> = self
            .conn
            .prepare_cached("SELECT seq FROM message_seqs WHERE session = ?1 AND hash = ?2")?
            .query_map(params![session, hash], |r| Ok(r.get::<_, i64>(0)? as u64))?
            .collect::<Result<_, _>>()?;
        if let Some(seq) = self.messages.borrow().waiting(session, hash) {
            if !seqs.contains(&seq) {
                seqs.push(seq);
                seqs.sort_unstable();
            }
        }
        Ok(seqs)
    }

    /// Receipts of records with `seq <= through`, and their ids' index rows (pruned with the
    /// log).
    pub(super) fn prune_receipts(&self, session: i64, through: u64) -> StoreResult<()> {
        for table in ["receipts", "message_seqs"] {
            self.conn
                .prepare_cached(&format!(
                    "DELETE FROM {table} WHERE session = ?1 AND seq <= ?2"
                ))?
                .execute(params![session, through as i64])?;
        }
        self.messages.borrow_mut().prune(session, through);
        Ok(())
    }
}
