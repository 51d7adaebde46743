//! One record to be delivered to one agent, and what decides how it is acknowledged.

use std::sync::Arc;

use codex_weave_runtime::AckMode;

use crate::engine::recorded::Recorded;

/// What a delivery carries, which decides how it is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    /// A `message.send`: acked by `message.ack` (unless `ack.mode` is `none`).
    Message,
    /// An `action.submit` group: done when each of its actions for the target is completed (an
    /// `action.result` for it, or a reply naming it in `reply_to_action_id`), or by a
    /// `message.ack`; redelivered only after a reconnect, never on a timer.
    Action,
    /// Results and notices (`action.result`, `delivery.failed`): sent once the target is
    /// connected; kept durably until then.
    Notice,
}

impl DeliveryKind {
    pub fn of(envelope_type: &str) -> DeliveryKind {
        match envelope_type {
            "message.send" => DeliveryKind::Message,
            "action.submit" => DeliveryKind::Action,
            _ => DeliveryKind::Notice,
        }
    }
}

/// One record to be delivered to one agent.
#[derive(Debug)]
pub struct Delivery {
    pub id: u64,
    pub session: String,
    pub session_key: i64,
    pub target: String,
    /// The record delivered (its `seq` in the session's log, and its envelope).
    pub seq: u64,
    pub envelope: Arc<Recorded>,
    pub kind: DeliveryKind,
    pub ack_mode: AckMode,
    pub timeout_ms: Option<u64>,
    /// Times sent so far (first delivery included).
    pub count: u32,
    /// An action group's actions for the target not completed yet, in the group's order
    /// (actions sent with `reply_policy: "none"` want no answer and are not listed).
    pub open: Vec<String>,
    /// The agent the record was addressed to, when the delivery moved since to the same agent
    /// under a new id (an action group's actions are picked by it).
    pub addressed: Option<String>,
    /// Bytes of the record's payload and meta (counted against the agent's byte limit and,
    /// while `hot`, the memory budget).
    pub size: usize,
    /// The record's payload is in memory (else `envelope` is a stub: read from the store when
    /// sent).
    pub hot: bool,
}

impl Delivery {
    /// Whose actions of a group this delivery carries.
    pub fn addressed(&self) -> &str {
        self.addressed.as_deref().unwrap_or(&self.target)
    }

    /// The action ids an `action.result` may use to ack it (an action group's).
    pub fn action_ids(&self) -> Vec<String> {
        if self.kind != DeliveryKind::Action {
            return Vec::new();
        }
        let payload = self.envelope.payload_value().unwrap_or_default();
        actions_for(&payload, self.addressed())
            .filter_map(|a| {
                a.get("action_id")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .collect()
    }
}

/// The ids of a group's actions for `target` that want an answer: all but those sent with
/// `reply_policy: "none"` (what clients send their replies with).
pub fn open_actions(payload: &serde_json::Value, target: &str) -> Vec<String> {
    actions_for(payload, target)
        .filter(|a| a.get("reply_policy").and_then(|v| v.as_str()) != Some("none"))
        .filter_map(|a| {
            a.get("action_id")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .collect()
}

/// The actions of a group addressed to `target` (each `dst` was resolved to an agent id when the
/// group was recorded).
pub fn actions_for<'a>(
    payload: &'a serde_json::Value,
    target: &'a str,
) -> impl Iterator<Item = &'a serde_json::Value> + 'a {
    payload
        .get("actions")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
        .filter(move |a| a.get("dst").and_then(|v| v.as_str()) == Some(target))
}

pub fn new_delivery(
    id: u64,
    session: String,
    session_key: i64,
    target: String,
    seq: u64,
    envelope: Arc<Recorded>,
) -> Delivery {
    moved_delivery(id, session, session_key, target, None, seq, envelope)
}

/// A delivery to `target` of a record addressed to `addressed` (`None`: to the target).
pub fn moved_delivery(
    id: u64,
    session: String,
    session_key: i64,
    target: String,
    addressed: Option<String>,
    seq: u64,
    envelope: Arc<Recorded>,
) -> Delivery {
    let kind = DeliveryKind::of(&envelope.env.kind);
    let size = envelope.heavy_bytes();
    let mut open = Vec::new();
    let (ack_mode, timeout_ms) = match kind {
        DeliveryKind::Message => {
            let ack = envelope.env.ack.clone().unwrap_or_default();
            (ack.mode.unwrap_or_default(), ack.timeout_ms)
        }
        DeliveryKind::Action => {
            let to = addressed.as_deref().unwrap_or(&target);
            open = open_actions(&envelope.payload_value().unwrap_or_default(), to);
            // A group whose every action wants no answer (`reply_policy: "none"`, as
            // clients send replies) is done once written.
            match open.is_empty() {
                true => (AckMode::None, None),
                false => (AckMode::Manual, None),
            }
        }
        DeliveryKind::Notice => (AckMode::None, None),
    };
    Delivery {
        id,
        session,
        session_key,
        target,
        seq,
        envelope,
        kind,
        ack_mode,
        timeout_ms,
        count: 0,
        open,
        addressed,
        size,
        hot: true,
    }
}
