//! The runtime's nouns: message kinds, conversations, relays and their per-target tasks.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::ids::Id;

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

/// What an action asks of its target: a `message`, a `control` command, or (in relays only) a
/// `wait` for targets to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionType {
    Message,
    Control,
    Wait,
}

impl ActionType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Control => "control",
            Self::Wait => "wait",
        }
    }

    /// The one check of an action, for `action.submit` groups and relay steps alike: its
    /// `type` is one of `allowed`; a message or control names its `dst`; a message has `text`,
    /// a control a `command`. The error names the action by its index `i`.
    pub fn check(i: usize, action: &Value, allowed: &[ActionType]) -> Result<Self, String> {
        let Some(obj) = action.as_object() else {
            return Err(format!("actions[{i}] must be an object"));
        };
        let named = obj.get("type").and_then(Value::as_str).unwrap_or_default();
        let Some(kind) = allowed.iter().copied().find(|t| t.as_str() == named) else {
            let names: Vec<&str> = allowed.iter().map(|t| t.as_str()).collect();
            let names = match names.split_last() {
                Some((last, [])) => last.to_string(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => String::new(),
            };
            return Err(format!("actions[{i}].type `{named}` is not {names}"));
        };
        let has = |key: &str| obj.get(key).is_some_and(Value::is_string);
        match kind {
            Self::Wait => {}
            _ if !has("dst") => return Err(format!("actions[{i}] needs a `dst`")),
            Self::Message if !has("text") => return Err(format!("actions[{i}] needs `text`")),
            Self::Control if !has("command") => {
                return Err(format!("actions[{i}] needs `command`"))
            }
            _ => {}
        }
        Ok(kind)
    }
}

/// The status an `action.result` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultStatus {
    Accepted,
    Completed,
    Blocked,
    Queued,
    Rejected,
    Error,
}

impl ResultStatus {
    pub const ALL: [ResultStatus; 6] = [
        Self::Accepted,
        Self::Completed,
        Self::Blocked,
        Self::Queued,
        Self::Rejected,
        Self::Error,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Completed => "completed",
            Self::Blocked => "blocked",
            Self::Queued => "queued",
            Self::Rejected => "rejected",
            Self::Error => "error",
        }
    }

    /// `completed`, `rejected` and `error` end the action: it is answered.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Rejected | Self::Error)
    }
}
