//! The answer to a `relay.submit`, typed: what was accepted and dispatched, why nothing was
//! (`blocked`), or how the relay ended. Serialized it is the `ok` payload the owner receives
//! (see `docs/weave/protocol.md`, relay.submit).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::model::AgentId;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum RelayReply {
    /// The steps were accepted; what no wait holds was dispatched.
    Accepted(Accepted),
    /// A target is busy in another owner's active relay: nothing was applied; retry later.
    Blocked(Blocked),
    /// The relay was finished (`done`) or cancelled now, or had ended before.
    Done(Ended),
    Cancelled(Ended),
}

impl RelayReply {
    pub fn is_blocked(&self) -> bool {
        matches!(self, Self::Blocked(_))
    }

    /// The reply as its JSON payload.
    pub fn to_value(&self) -> Value {
        // Strings, numbers and maps with string keys only: encoding cannot fail.
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Accepted {
    pub relay_id: String,
    /// Actions accepted by this submit (waits not counted).
    pub action_count: usize,
    pub target_count: usize,
    pub failures: Vec<Failure>,
    /// Per target, in the order first named: its task, the steps of this submit it takes part
    /// in (its actions, and the waits that await it), and the group dispatched now if any.
    pub targets: BTreeMap<AgentId, TargetPlan>,
    /// Waits still holding steps back.
    pub waits: Vec<WaitRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blocked {
    pub relay_id: String,
    pub retry_after_ms: u64,
    /// The targets busy in another owner's relay.
    pub busy: Vec<AgentId>,
    pub action_count: usize,
    pub target_count: usize,
    pub failures: Vec<Failure>,
    /// Always empty: nothing was dispatched.
    pub targets: BTreeMap<AgentId, TargetPlan>,
    /// Said on a relay's first submit only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ended {
    pub relay_id: String,
    /// Held steps dropped by this finish; absent when the relay had ended before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped_actions: Option<usize>,
}

/// An agent a relay named that is not in the session: reported, never failing the relay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub dst: String,
    /// Always `unknown_agent`.
    pub code: &'static str,
    pub message: String,
}

impl Failure {
    pub fn unknown(name: &str) -> Self {
        Self {
            dst: name.to_owned(),
            code: "unknown_agent",
            message: format!("no agent `{name}` in this session"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetPlan {
    pub context_id: String,
    pub task_id: String,
    pub actions: Vec<StepRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
}

/// One step as the owner's answer lists it (a `wait` appears among each awaited target's
/// actions, as unchanged clients look for it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRef {
    pub action_id: String,
    pub action_index: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub plan_step_id: String,
    /// Messages only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expects_reply: Option<bool>,
    /// Controls only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Value>,
    /// Waits only: the targets awaited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<AgentId>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitRef {
    pub plan_step_id: String,
    pub targets: Vec<AgentId>,
}
