//! The runtime's nouns: message kinds, conversations, relays and their per-target tasks.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::memory::Id;

pub type AgentId = String;

/// What a message is for. Only `user` messages (and relay actions) are new work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    User,
    Reply,
    Control,
    System,
}

impl MessageKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "reply" => Some(Self::Reply),
            "control" => Some(Self::Control),
            "system" => Some(Self::System),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Reply => "reply",
            Self::Control => "control",
            Self::System => "system",
        }
    }
}

/// A conversation: started by one agent, its single owner, who alone issues follow-ups in it.
/// Ownership is fixed today; `owner_id` is a field (not derived) so a later transfer command
/// only has to change it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub context_id: Id,
    pub owner_id: Id,
    /// The relay whose target task this conversation carries (its task is in the relay).
    pub relay_id: Option<Id>,
    /// Latest message of this conversation delivered to each agent (for follow-up chains):
    /// (agent, message). A list: a conversation involves a few agents.
    pub last_to: Vec<(Id, Id)>,
}

impl Conversation {
    /// The latest message of this conversation delivered to `agent`.
    pub fn last_to(&self, agent: &str) -> Option<&Id> {
        self.last_to
            .iter()
            .find(|(a, _)| **a == *agent)
            .map(|(_, m)| m)
    }

    pub(crate) fn set_last_to(&mut self, agent: &Id, message: &Id) {
        match self.last_to.iter_mut().find(|(a, _)| a == agent) {
            Some((_, m)) => *m = message.clone(),
            None => self.last_to.push((agent.clone(), message.clone())),
        }
    }
}

/// State of a relay target's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Created, nothing dispatched yet.
    Pending,
    Running,
    Blocked,
    Ready,
    Done,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Blocked => "blocked",
            Self::Ready => "ready",
            Self::Done => "done",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayStatus {
    Active,
    Done,
    Cancelled,
}

/// One action of a relay, as accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub action_id: String,
    pub action_index: u32,
    /// `message` or `control`.
    #[serde(rename = "type")]
    pub kind: String,
    pub plan_step_id: String,
    pub target: AgentId,
    /// The action as dispatched to the target (the wire form).
    pub wire: Value,
    pub expects_reply: bool,
    /// Delivered to the target (false while held behind a wait).
    pub dispatched: bool,
    /// The target replied to it (or sent a terminal result).
    pub answered: bool,
}

/// A step waiting in a relay's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Step {
    /// Index into `Relay::actions`.
    Act(usize),
    /// Hold what follows until these targets have answered what they were sent.
    Wait {
        plan_step_id: String,
        targets: Vec<AgentId>,
    },
}

/// A relay target: its conversation and task with the relay's owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub context_id: String,
    pub task_id: String,
    pub status: TaskStatus,
    /// Sent something it has not answered yet.
    pub outstanding: bool,
    /// Groups dispatched so far (for group ids).
    pub groups: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relay {
    pub relay_id: String,
    pub owner: AgentId,
    pub status: RelayStatus,
    /// Known targets in the order first named.
    pub targets: BTreeMap<AgentId, Task>,
    pub target_order: Vec<AgentId>,
    pub actions: Vec<Action>,
    /// Steps not yet dispatched, in plan order.
    pub queue: VecDeque<Step>,
    /// `relay.submit`s accepted so far (for action ids).
    pub submits: u32,
    /// Steps accepted so far, waits included: the next step's `action_index`.
    #[serde(default)]
    pub steps: u32,
    pub summary: Option<String>,
}

impl Relay {
    pub fn is_active(&self) -> bool {
        self.status == RelayStatus::Active
    }
}
