//! What the runtime tells the bus to do.

use serde_json::Value;

use super::relay::reply::RelayReply;
use crate::error::ErrorCode;
use crate::event::RuntimeEvent;
use crate::model::AgentId;

/// What the bus must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Refuse the request; nothing of it is applied (events may still be emitted).
    Refuse { code: ErrorCode, message: String },
    /// Annotate the admitted message: its conversation and causal chain.
    Stamp(Stamp),
    /// The answer to a `relay.submit` (the `ok` payload of its response).
    Relay(RelayReply),
    /// Record and deliver an `action.submit` from `from` to `target` with this payload.
    Dispatch {
        from: AgentId,
        target: AgentId,
        group: Value,
    },
    /// Record this event and deliver it to `to`.
    Emit {
        event: RuntimeEvent,
        to: Vec<AgentId>,
    },
}

/// Where an admitted message belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub message_id: String,
    pub context_id: Option<String>,
    pub owner_id: Option<AgentId>,
    pub chain_id: String,
    pub hop: u32,
    /// The message (or action) this one answers, for its receipt: the one it names
    /// (`parent_message_id`, else `reply_to_action_id`), else — for a reply — the newest work
    /// given to the sender that it had not answered yet.
    pub answers: Option<String>,
}

pub(crate) fn refuse(code: ErrorCode, message: impl Into<String>) -> Output {
    Output::Refuse {
        code,
        message: message.into(),
    }
}
