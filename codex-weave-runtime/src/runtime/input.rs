//! What the bus asks the runtime about.

use std::collections::HashMap;

use serde_json::Value;

use crate::model::{AgentId, MessageKind};

/// One message as the runtime sees it: a `message.send`, or one action of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub session: String,
    /// The message id (envelope id) or action id.
    pub id: String,
    pub from: AgentId,
    pub to: Vec<AgentId>,
    pub kind: MessageKind,
    pub context_id: Option<String>,
    pub parent_message_id: Option<String>,
    pub reply_to_action_id: Option<String>,
}

/// What the bus asks the runtime about.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A `message.send`.
    Message(Message),
    /// An `action.submit`: its actions, all admitted or none.
    Group {
        session: String,
        from: AgentId,
        sends: Vec<Message>,
    },
    /// An `action.result` from `from` about `action_id`, addressed to `to`.
    Result {
        session: String,
        from: AgentId,
        to: AgentId,
        action_id: String,
        terminal: bool,
    },
    /// A `relay.submit` from `from`. `resolve` maps every agent id or name the payload mentions
    /// to the agent id, for those that are agents of the session.
    Relay {
        session: String,
        from: AgentId,
        payload: Value,
        resolve: HashMap<String, AgentId>,
    },
    /// An agent left the session for good.
    AgentRemoved { session: String, agent: AgentId },
    /// An agent joined the session; `person`: it is a person (kind `human`).
    AgentAdded {
        session: String,
        agent: AgentId,
        person: bool,
    },
}
