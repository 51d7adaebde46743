//! The runtime state machine: `handle(input) -> Vec<Output>`. The bus feeds it every
//! state-changing request (already validated and with agent names resolved to ids) and applies
//! its outputs: a refusal, annotations for the message, a response payload, action groups to
//! dispatch, and events to record and deliver. No IO, no clock, no randomness: the same inputs
//! give the same outputs, which is what the property and snapshot tests rely on.

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::ids::Map;
use crate::memory::{Entry, Memory};
use crate::model::{Conversation, Relay};

mod config;
mod input;
mod message;
mod output;
pub mod relay;
mod session;

pub use config::RuntimeConfig;
pub use input::{Input, Message};
pub(crate) use output::refuse;
pub use output::{Output, Stamp};
use session::{open, Session};

/// The state machine. Not `Send` (see [`crate::ids::Id`]): build it, or take it back from a
/// snapshot, on the thread that runs it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Runtime {
    #[serde(skip)]
    pub(crate) cfg: RuntimeConfig,
    pub(crate) sessions: Map<String, Session>,
    /// Session ids by slot: memory entries name their session by slot, not by a copy of its id.
    pub(crate) slots: Vec<String>,
    memory: Memory,
}

impl Runtime {
    pub fn new(cfg: RuntimeConfig) -> Self {
        Self {
            cfg,
            sessions: Map::default(),
            slots: Vec::new(),
            memory: Memory::default(),
        }
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.cfg
    }

    /// The whole state, encoded: what [`Runtime::from_snapshot`] takes back. A host stores it
    /// beside its log so that a restart replays only what followed instead of the whole log.
    pub fn snapshot(&self) -> Vec<u8> {
        // Only strings, numbers and maps with string keys: encoding cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A runtime in the state a [`Runtime::snapshot`] captured, with `cfg` (limits are
    /// configuration, not state).
    pub fn from_snapshot(cfg: RuntimeConfig, bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let mut runtime: Runtime = serde_json::from_slice(bytes)?;
        runtime.cfg = cfg;
        runtime.forget_past_budget();
        Ok(runtime)
    }

    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let session = match &input {
            Input::Message(send) => send.session.clone(),
            Input::Group { sends, .. } => {
                sends.first().map(|s| s.session.clone()).unwrap_or_default()
            }
            Input::Result { session, .. }
            | Input::Relay { session, .. }
            | Input::AgentRemoved { session, .. }
            | Input::AgentAdded { session, .. } => session.clone(),
        };
        let out = self.dispatch(input);
        self.remember(&session);
        out
    }

    fn dispatch(&mut self, input: Input) -> Vec<Output> {
        match input {
            Input::Message(send) => self.group(vec![send]),
            Input::Group { sends, .. } => self.group(sends),
            Input::Result {
                session,
                from,
                to,
                action_id,
                terminal,
            } => self.result(&session, &from, &to, &action_id, terminal),
            Input::Relay {
                session,
                from,
                payload,
                resolve,
            } => {
                let st = open(&mut self.sessions, &mut self.slots, &session);
                relay::submit(&self.cfg, st, &session, &from, &payload, &resolve)
            }
            Input::AgentRemoved { session, agent } => self.agent_removed(&session, &agent),
            Input::AgentAdded {
                session,
                agent,
                person,
            } => {
                let st = open(&mut self.sessions, &mut self.slots, &session);
                match person {
                    true => st.persons.insert(agent),
                    false => st.persons.remove(&agent),
                };
                Vec::new()
            }
        }
    }

    /// The conversation `context_id` of `session`, if known.
    pub fn conversation(&self, session: &str, context_id: &str) -> Option<&Conversation> {
        self.sessions.get(session)?.conversations.get(context_id)
    }

    /// The relay `relay_id` of `session`, if known.
    pub fn relay_state(&self, session: &str, relay_id: &str) -> Option<&Relay> {
        self.sessions.get(session)?.relays.get(relay_id)
    }

    /// How many conversations of `session` are remembered.
    pub fn conversation_count(&self, session: &str) -> usize {
        self.sessions
            .get(session)
            .map_or(0, |s| s.conversations.len())
    }

    /// How many ping-pong pair runs the loop guard of `session` remembers.
    pub fn guard_run_count(&self, session: &str) -> usize {
        self.sessions
            .get(session)
            .map_or(0, |s| s.guard.run_count())
    }

    /// How many message nodes the loop guard of `session` remembers.
    pub fn guard_node_count(&self, session: &str) -> usize {
        self.sessions
            .get(session)
            .map_or(0, |s| s.guard.node_count())
    }

    /// Entries remembered across all sessions (bounded by `memory_budget`).
    pub fn remembered(&self) -> usize {
        self.memory.len()
    }

    /// Moves what the last input made `session` remember into the memory queue, then forgets
    /// the oldest entries past the budget.
    fn remember(&mut self, session: &str) {
        let Some(st) = self.sessions.get_mut(session) else {
            return;
        };
        for what in st.fresh.drain(..) {
            self.memory.queue.push_back(Entry {
                session: st.slot,
                what,
            });
        }
        self.forget_past_budget();
    }

    fn forget_past_budget(&mut self) {
        let Runtime {
            cfg,
            sessions,
            slots,
            memory,
        } = self;
        let mut spared = 0;
        let over = |memory: &Memory, spared: usize| {
            memory.len() > cfg.memory_budget && spared < memory.len()
        };
        while over(memory, spared) {
            // A run of entries of one session (a message's entries sit side by side): its
            // session is looked up once for the run, not once per entry.
            let Some(slot) = memory.queue.front().map(|e| e.session) else {
                break;
            };
            let mut st = slots
                .get(slot as usize)
                .and_then(|name| sessions.get_mut(name.as_str()));
            while over(memory, spared) && memory.queue.front().is_some_and(|e| e.session == slot) {
                let Some(entry) = memory.queue.pop_front() else {
                    break;
                };
                if !st.as_mut().is_none_or(|st| st.forget(&entry.what)) {
                    memory.queue.push_back(entry);
                    spared += 1;
                }
            }
        }
    }

    /// Relays of a session, for listings.
    pub fn relays(&self, session: &str) -> impl Iterator<Item = &Relay> {
        self.sessions
            .get(session)
            .into_iter()
            .flat_map(|s| s.relays.values())
    }

    /// All admitted or none: each send is checked against the current state, then all apply.
    fn group(&mut self, sends: Vec<Message>) -> Vec<Output> {
        let Some(first) = sends.first() else {
            return Vec::new();
        };
        let st = open(&mut self.sessions, &mut self.slots, &first.session);
        let mut plans = Vec::with_capacity(sends.len());
        for send in &sends {
            match message::plan(&self.cfg, st, send) {
                Ok(p) => plans.push(p),
                Err(outputs) => return outputs,
            }
        }
        let mut out = Vec::new();
        for (send, planned) in sends.iter().zip(plans) {
            out.extend(message::apply(st, send, planned));
        }
        out
    }

    fn result(
        &mut self,
        session: &str,
        from: &str,
        to: &str,
        action_id: &str,
        terminal: bool,
    ) -> Vec<Output> {
        let st = open(&mut self.sessions, &mut self.slots, session);
        let Some(action) = st.guard.node(action_id).cloned() else {
            return Vec::new();
        };
        if let Some(conv) = action
            .conversation
            .as_ref()
            .and_then(|c| st.conversations.get(c))
        {
            if *conv.owner_id != *to && *conv.owner_id != *from {
                return vec![refuse(
                    ErrorCode::Forbidden,
                    format!(
                        "a result in conversation {} goes to its owner {}",
                        conv.context_id, conv.owner_id
                    ),
                )];
            }
        }
        let mut out = Vec::new();
        if terminal && action.target.as_deref() == Some(from) {
            if let Some(relay_id) = &action.relay_id {
                out.extend(relay::progress::answered(st, relay_id, from, action_id));
            }
        }
        out
    }

    fn agent_removed(&mut self, session: &str, agent: &str) -> Vec<Output> {
        let Some(st) = self.sessions.get_mut(session) else {
            return Vec::new();
        };
        st.guard.forget_agent(agent);
        st.pending_reply.remove(agent);
        st.persons.remove(agent);
        // Nobody waits for an agent that is gone.
        let relays: Vec<String> = st
            .relays
            .values()
            .filter(|r| r.is_active() && r.targets.get(agent).is_some_and(|t| t.outstanding))
            .map(|r| r.relay_id.clone())
            .collect();
        let mut out = Vec::new();
        for relay_id in relays {
            if let Some(t) = st
                .relays
                .get_mut(&relay_id)
                .and_then(|r| r.targets.get_mut(agent))
            {
                t.outstanding = false;
            }
            out.extend(relay::progress::advance(st, &relay_id));
        }
        out
    }
}
