//! Receipts: for every message and recipient, how far it got — `queued` when it is queued for
//! the agent, `delivered` when first written to a live connection of the agent, `read` when the
//! agent itself took it (an inbox read, a hook, a manual ack, a result), `answered` when a reply
//! or a terminal result refers to it (the runtime says which message a reply answers).
//!
//! Receipts are kept per message id — for an action group, per action id — in the store's
//! `receipts` table, written in the batch's transaction like everything else. Each move forward is
//! also recorded: at the end of a batch, one `receipt.updated` record per session, agent and
//! state lists the messages that moved. A receipt never produces a message to anyone.

use codex_weave_runtime::{Envelope, ReceiptState, Stamp, BUS_SRC};
use serde_json::json;

use super::state::{Delivery, DeliveryKind, Map};
use super::writer::Write;
use super::{bus_envelope, Engine};
use crate::store::{ReceiptRow, StoreResult};

/// A receipt that moved in this batch, recorded when the batch ends.
#[derive(Debug)]
pub(super) struct Moved {
    pub sid: String,
    pub agent: String,
    pub state: ReceiptState,
    pub message: String,
    pub seq: u64,
}

/// The ids a delivery's receipts are kept under — the message's id, or the target's action ids
/// of a group — or none for what is not a message from someone (results, the bus's notices).
pub(super) fn receipt_ids(d: &Delivery) -> Vec<String> {
    if d.envelope.env.src == BUS_SRC {
        return Vec::new();
    }
    match d.kind {
        DeliveryKind::Message => vec![d.envelope.env.id.clone()],
        DeliveryKind::Action => d.action_ids(),
        DeliveryKind::Notice => Vec::new(),
    }
}

/// The write and the note of one receipt moving to `state`.
pub(super) fn moved(d: &Delivery, ids: Vec<String>, state: ReceiptState) -> Vec<(Write, Moved)> {
    ids.into_iter()
        .map(|message| {
            (
                Write::Receipt {
                    session: d.session_key,
                    message: message.clone(),
                    agent: d.target.clone(),
                    seq: d.seq,
                    state: state.code(),
                },
                Moved {
                    sid: d.session.clone(),
                    agent: d.target.clone(),
                    state,
                    message,
                    seq: d.seq,
                },
            )
        })
        .collect()
}

impl Engine {
    /// Receipts of a delivery just queued: `queued`, not recorded (its record says so).
    pub(super) fn receipts_queued(&mut self, d: &Delivery) {
        for message in receipt_ids(d) {
            self.write_row(Write::Receipt {
                session: d.session_key,
                message,
                agent: d.target.clone(),
                seq: d.seq,
                state: ReceiptState::Queued.code(),
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
        let Some(key) = self.sessions.get(sid).map(|s| s.key) else {
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
            self.write_row(Write::Receipt {
                session: key,
                message: r.message.clone(),
                agent: r.agent.clone(),
                seq: r.seq,
                state: state.code(),
            });
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
            if !self.sessions.contains_key(&sid) {
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
