//! The engine's memory: sessions, their agents, and every pending delivery. The store holds
//! the same facts durably; this is what requests are decided against.

use std::collections::{BTreeSet, VecDeque};

/// The engine's hash map: foldhash (fast, seeded per process) instead of SipHash, which showed
/// up at 5% of the engine's time hashing ids.
pub type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Arc;

use codex_weave_runtime::AckMode;

use super::recorded::Recorded;
use crate::conn::ConnId;

#[derive(Debug)]
pub struct Session {
    /// The store's integer key for this session.
    pub key: i64,
    pub id: String,
    pub name: Option<String>,
    pub created_at: String,
    pub closed: bool,
    /// Sequence number of the last record written.
    pub last_seq: u64,
    /// Sequence number of the oldest record still kept (older ones were pruned).
    pub first_seq: u64,
    pub agents: Map<String, Agent>,
    /// Lower-cased name → agent id; names are unique per session, case-insensitively.
    pub names: Map<String, String>,
    /// Connections following this session's records: (connection, stream request id).
    pub watchers: Vec<(ConnId, String)>,
    /// Records were written that the search index has not taken in yet (it catches up when
    /// the bus is quiet, and before every search).
    pub unindexed: bool,
}

impl Session {
    /// Resolves an agent by id, else by name (case-insensitive).
    pub fn resolve(&self, id_or_name: &str) -> Option<&str> {
        if let Some(a) = self.agents.get(id_or_name) {
            return Some(&a.id);
        }
        self.names
            .get(&id_or_name.to_lowercase())
            .map(String::as_str)
    }

    pub fn summary(&self) -> serde_json::Value {
        let online = self.agents.values().filter(|a| a.conn.is_some()).count();
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "status": if self.closed { "closed" } else { "open" },
            "created_at": self.created_at,
            "agent_count": self.agents.len(),
            "online_count": online,
            "last_seq": self.last_seq,
            "first_seq": self.first_seq,
        })
    }
}

#[derive(Debug)]
pub struct Agent {
    pub id: String,
    pub name: Option<String>,
    /// `agent` (terminal), `human` (browser) or `sdk`.
    pub kind: String,
    /// Place in the operator\'s order (`None`: after the ordered ones).
    pub position: Option<i64>,
    /// The connection that added the agent, while it is connected.
    pub conn: Option<ConnId>,
    /// Deliveries waiting to be sent, oldest first (redeliveries keep their original place).
    pub queue: VecDeque<u64>,
    /// Deliveries sent on the current connection and not yet acked.
    pub inflight: BTreeSet<u64>,
    /// Ack id (the record's id — what a `message.ack` names as `corr` — or an action id of an
    /// action group) → delivery id.
    pub ack_ids: Map<String, u64>,
    /// What the agent said it is doing (`agent.activity`): busy with what, or idle. Reset to
    /// idle when its connection goes.
    pub busy: Option<String>,
    /// The client's instance key (`agent.add` `payload.instance`): the same agent, should it
    /// come back under a new id.
    pub instance: Option<String>,
}

impl Agent {
    pub fn new(id: String, name: Option<String>, kind: String) -> Self {
        Self {
            id,
            name,
            kind,
            position: None,
            conn: None,
            queue: VecDeque::new(),
            inflight: BTreeSet::new(),
            ack_ids: Map::default(),
            busy: None,
            instance: None,
        }
    }

    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    pub fn pending(&self) -> usize {
        self.queue.len() + self.inflight.len()
    }

    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "status": if self.conn.is_some() { "online" } else { "offline" },
            "queued": self.queue.len(),
            "unacked": self.inflight.len(),
            "activity": if self.busy.is_some() { "busy" } else { "idle" },
            "doing": self.busy,
        })
    }
}

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

/// Who a connection speaks for.
#[derive(Debug)]
pub struct Conn {
    pub out: crate::conn::ConnOut,
    /// (session id, agent id) of agents this connection added.
    pub agents: Vec<(String, String)>,
    /// Sessions this connection follows with `events.stream`.
    pub watching: Vec<String>,
    /// The HTTP facade acting for the operator: may rename or remove any agent.
    pub operator: bool,
}
