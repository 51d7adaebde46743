//! Receipts: for every message and recipient, how far it got — `queued` when it is queued for
//! the agent, `delivered` when first written to a live connection of the agent, `read` when the
//! agent itself took it (an inbox read, a hook, a manual ack, a result), `answered` when a reply
//! or a terminal result refers to it (the runtime says which message a reply answers).
//!
//! Receipts are kept per message id — for an action group, per action id — in the store's
//! `receipts` table, written in the batch's transaction like everything else. Each move forward is
//! also recorded: at the end of a batch, one `receipt.updated` record per session, agent and
//! state lists the messages that moved. A receipt never produces a message to anyone.

use codex_weave_runtime::{Envelope, ReceiptState, Stamp};
use serde_json::json;

use super::inboxes::Delivery;
use super::receipt_rows::{put_row, receipt_ids, Moved};
use super::state::Map;
use super::writer::Write;
use super::{bus_envelope, Engine};
use crate::store::{ReceiptRow, StoreResult};

impl Engine {
    /// Receipts of a delivery just queued: `queued`, not recorded (its record says so).
    pub(super) fn receipts_queued(&mut self, d: &Delivery) {
        for message in receipt_ids(d) {
            let agent = d.target.clone();
            put_row(
                &mut self.batch.receipt_rows,
                d.session_key,
                message,
                agent,
                d.seq,
                ReceiptState::Queued,
            );
        }
    }

    /// Hands the batch's receipt rows to its writes.
    pub(super) fn flush_receipts(&mut self) {
        for ((session, message, agent), (seq, state)) in
            std::mem::take(&mut self.batch.receipt_rows)
        {
            self.batch.writes.push(Write::Receipt {
                session,
                message,
                agent,
                seq,
                state: state.code(),
            });
        }
    }

    /// Moves `agent`'s receipts of `messages` to `state` where they are behind it; returns the
    /// receipts that moved (as they were before). Ids the agent has no receipt for are skipped.
    pub(super) fn advance_receipts(
        &mut self,
        sid: &str,
        agent: &str,
        messages: Vec<String>,
        state: ReceiptState,
    ) -> StoreResult<Vec<ReceiptRow>> {
        let Some(key) = self.registry.sessions.get(sid).map(|s| s.key) else {
            return Ok(Vec::new());
        };
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let who = agent.to_owned();
        let rows = self.read(move |s| s.receipts_for(key, &who, &messages))?;
        let behind: Vec<ReceiptRow> = rows
            .into_iter()
            .filter(|r| r.state < state.code())
            .collect();
        for r in &behind {
            let (message, agent) = (r.message.clone(), r.agent.clone());
            put_row(
                &mut self.batch.receipt_rows,
                key,
                message,
                agent,
                r.seq,
                state,
            );
            self.batch.receipts.push(Moved {
                sid: sid.to_owned(),
                agent: r.agent.clone(),
                state,
                message: r.message.clone(),
                seq: r.seq,
            });
        }
        Ok(behind)
    }

    /// [`Engine::advance_receipts`] where a failure to read only costs the receipt (the request
    /// that moved it stands): logged.
    pub(super) fn advance_receipts_logged(
        &mut self,
        sid: &str,
        agent: &str,
        messages: Vec<String>,
        state: ReceiptState,
    ) {
        if let Err(e) = self.advance_receipts(sid, agent, messages, state) {
            tracing::warn!(error = %e, agent, %state, "receipt not moved: store read failed");
        }
    }

    /// What the runtime said the admitted messages of `from` answer: those receipts move to
    /// `answered`.
    pub(super) fn receipts_answered(&mut self, sid: &str, from: &str, stamps: &[Stamp]) {
        let answered: Vec<String> = stamps.iter().filter_map(|s| s.answers.clone()).collect();
        if !answered.is_empty() {
            self.advance_receipts_logged(sid, from, answered, ReceiptState::Answered);
        }
    }

    /// Records the batch's moved receipts: one `receipt.updated` per session, agent and state,
    /// in the order they first moved.
    pub(super) fn record_receipts(&mut self) {
        let moved = std::mem::take(&mut self.batch.receipts);
        let mut index: Map<(String, String, ReceiptState), usize> = Map::default();
        let mut groups: Vec<(String, String, ReceiptState, Vec<serde_json::Value>)> = Vec::new();
        for m in moved {
            let entry = json!({ "id": m.message, "seq": m.seq });
            let key = (m.sid, m.agent, m.state);
            match index.get(&key) {
                Some(&i) => groups[i].3.push(entry),
                None => {
                    index.insert(key.clone(), groups.len());
                    groups.push((key.0, key.1, key.2, vec![entry]));
                }
            }
        }
        for (sid, agent, state, messages) in groups {
            if !self.registry.sessions.contains_key(&sid) {
                continue;
            }
            let mut env: Envelope = bus_envelope("receipt.updated", Some(&sid));
            env.payload = Some(json!({
                "agent": agent,
                "state": state.as_str(),
                "messages": messages,
            }));
            self.record(&sid, env);
        }
    }
}
