//! What a batch collects of receipts: the rows to write when it ends and the moves to record.
//! Kept apart from the engine's receipt requests (`receipts.rs`) so that the batch can hold them.

use codex_weave_runtime::{ReceiptState, BUS_SRC};

use super::inboxes::{Delivery, DeliveryKind};
use super::state::Map;

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

/// Receipt rows to write when the batch ends (or before the store is read): (session key,
/// message, agent) → (seq, state). A message queued and sent within one batch — nearly every
/// one under load — costs one row write, not two.
pub(super) type ReceiptRows = Map<(i64, String, String), (u64, ReceiptState)>;

/// Sets a row to write at `state`, unless it is already further.
pub(super) fn put_row(
    rows: &mut ReceiptRows,
    key: i64,
    message: String,
    agent: String,
    seq: u64,
    state: ReceiptState,
) {
    let row = rows.entry((key, message, agent)).or_insert((seq, state));
    row.1 = row.1.max(state);
}

/// A delivery first written to its agent's connection: its receipts become `delivered`.
pub(super) fn delivered(d: &Delivery, rows: &mut ReceiptRows, moved: &mut Vec<Moved>) {
    for message in receipt_ids(d) {
        put_row(
            rows,
            d.session_key,
            message.clone(),
            d.target.clone(),
            d.seq,
            ReceiptState::Delivered,
        );
        moved.push(Moved {
            sid: d.session.clone(),
            agent: d.target.clone(),
            state: ReceiptState::Delivered,
            message,
            seq: d.seq,
        });
    }
}
