//! `RuntimeEvent`: the one event model. Every record of the log — whatever produced it — maps
//! to a `RuntimeEvent` (with the record's seq and the envelope's stable id) and back, so the
//! socket, HTTP and SSE serve the same facts. Events the runtime originates are typed; the
//! others keep their payload as sent, so the mapping loses nothing.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::wire::{Envelope, Record};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayAccepted {
    pub relay_id: String,
    pub owner_id: String,
    /// The relay-accepted payload the owner received.
    pub accepted: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayDone {
    pub relay_id: String,
    pub owner_id: String,
    /// `done` or `cancelled`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskUpdated {
    pub task_id: String,
    pub relay_id: String,
    pub agent_id: String,
    pub owner_id: String,
    pub context_id: String,
    /// `running`, `blocked`, `ready` or `done`.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDone {
    pub task_id: String,
    pub relay_id: String,
    pub agent_id: String,
    pub owner_id: String,
    pub context_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopSuppressed {
    /// The stopped message (or action) id.
    pub message_id: String,
    pub from: String,
    pub to: Vec<String>,
    /// The conversation's owner, who is told.
    pub owner_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    pub chain_id: String,
    pub hop: u32,
    /// `max_hops` or `ping_pong`.
    pub rule: String,
    /// The limit of that rule.
    pub limit: u32,
}

/// Every observable change. `type` and `payload` of the record's envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeEvent {
    RelayAccepted(RelayAccepted),
    RelayDone(RelayDone),
    TaskUpdated(TaskUpdated),
    TaskDone(TaskDone),
    LoopSuppressed(LoopSuppressed),
    /// Bus events and agent traffic (`session.*`, `agent.*`, `message.send`, `action.*`,
    /// `delivery.failed`, …): type and payload as recorded.
    Bus {
        kind: String,
        payload: Option<Value>,
    },
}

impl RuntimeEvent {
    /// The envelope `type`.
    pub fn kind(&self) -> &str {
        match self {
            Self::RelayAccepted(_) => "relay.accepted",
            Self::RelayDone(_) => "relay.done",
            Self::TaskUpdated(_) => "task.updated",
            Self::TaskDone(_) => "task.done",
            Self::LoopSuppressed(_) => "loop.suppressed",
            Self::Bus { kind, .. } => kind,
        }
    }

    /// The envelope `payload`.
    pub fn payload(&self) -> Option<Value> {
        let typed = match self {
            Self::RelayAccepted(p) => serde_json::to_value(p),
            Self::RelayDone(p) => serde_json::to_value(p),
            Self::TaskUpdated(p) => serde_json::to_value(p),
            Self::TaskDone(p) => serde_json::to_value(p),
            Self::LoopSuppressed(p) => serde_json::to_value(p),
            Self::Bus { payload, .. } => return payload.clone(),
        };
        typed.ok()
    }

    /// Reads an envelope's type and payload. A runtime type whose payload does not parse is
    /// kept as a bus event, never dropped.
    pub fn from_parts(kind: &str, payload: Option<&Value>) -> RuntimeEvent {
        fn typed<T: for<'de> Deserialize<'de>>(p: Option<&Value>) -> Option<T> {
            p.and_then(|v| serde_json::from_value(v.clone()).ok())
        }
        let parsed = match kind {
            "relay.accepted" => typed(payload).map(Self::RelayAccepted),
            "relay.done" => typed(payload).map(Self::RelayDone),
            "task.updated" => typed(payload).map(Self::TaskUpdated),
            "task.done" => typed(payload).map(Self::TaskDone),
            "loop.suppressed" => typed(payload).map(Self::LoopSuppressed),
            _ => None,
        };
        parsed.unwrap_or_else(|| Self::Bus {
            kind: kind.to_owned(),
            payload: payload.cloned(),
        })
    }
}

/// A record as a `RuntimeEvent`: the session sequence number, the envelope's stable id and
/// time, who it is from and to, and the event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub seq: u64,
    pub ts: String,
    pub id: String,
    pub src: String,
    pub dst: Option<String>,
    pub session: Option<String>,
    pub event: RuntimeEvent,
    /// The rest of the envelope, kept so that `to_record` gives back the record exactly.
    pub envelope: Envelope,
}

impl EventRecord {
    pub fn from_record(record: &Record) -> EventRecord {
        let env = &record.envelope;
        EventRecord {
            seq: record.seq,
            ts: record.ts.clone(),
            id: env.id.clone(),
            src: env.src.clone(),
            dst: env.dst.clone(),
            session: env.session.clone(),
            event: RuntimeEvent::from_parts(&env.kind, env.payload.as_ref()),
            envelope: env.clone(),
        }
    }

    pub fn to_record(&self) -> Record {
        let mut envelope = self.envelope.clone();
        envelope.id = self.id.clone();
        envelope.src = self.src.clone();
        envelope.dst = self.dst.clone();
        envelope.session = self.session.clone();
        envelope.kind = self.event.kind().to_owned();
        envelope.payload = self.event.payload();
        Record {
            seq: self.seq,
            ts: self.ts.clone(),
            envelope,
        }
    }
}
