//! The runtime state machine: `handle(input) -> Vec<Output>`. The bus feeds it every
//! state-changing request (already validated and with agent names resolved to ids) and applies
//! its outputs: a refusal, annotations for the message, a response payload, action groups to
//! dispatch, and events to record and deliver. No IO, no clock, no randomness: the same inputs
//! give the same outputs, which is what the property and snapshot tests rely on.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorCode;
use crate::event::{LoopSuppressed, RuntimeEvent};
use crate::guard::{Guard, Probe, Rule, Verdict};
use crate::memory::{Entry, Fresh, Map, Memory};
use crate::model::{AgentId, Conversation, MessageKind, Relay};

/// Limits of the loop guard and the relay scheduler.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// A message at hop `max_hops + 1` of its causal chain is stopped.
    pub max_hops: u32,
    /// The new-work message completing this many strict alternations between two agents in
    /// one chain is stopped.
    pub max_ping_pong: u32,
    /// Suggested wait before retrying a blocked relay.
    pub blocked_retry_ms: u64,
    /// Conversations, action references, guard nodes and runs, and relays remembered across
    /// all sessions; past it the oldest are forgotten (see [`crate::memory`]).
    pub memory_budget: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_hops: 16,
            max_ping_pong: 6,
            blocked_retry_ms: 2_000,
            memory_budget: crate::memory::DEFAULT_MEMORY_BUDGET,
        }
    }
}

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
}

/// What the bus must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Refuse the request; nothing of it is applied (events may still be emitted).
    Refuse { code: ErrorCode, message: String },
    /// Annotate the admitted message: its conversation and causal chain.
    Stamp(Stamp),
    /// The `ok` payload of the response (relays).
    Reply(Value),
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
}

/// What an action or message id refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ActionRef {
    pub context_id: Option<String>,
    pub relay_id: Option<String>,
    pub target: Option<AgentId>,
}

/// One session's state. Conversations, action references, guard nodes and runs, and relays
/// are remembered within the runtime's memory budget (see [`crate::memory`]): a follow-up in a
/// forgotten conversation starts a new one; a reply to a forgotten action is a plain reply.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Session {
    pub conversations: Map<String, Conversation>,
    /// Ordered by id: whatever walks the relays (an agent leaving) does so in one order,
    /// so a replay gives the same outputs as the live run.
    pub relays: BTreeMap<String, Relay>,
    pub guard: Guard,
    /// The conversation an agent answers into when its reply names none.
    pub pending_reply: Map<AgentId, String>,
    pub actions: Map<String, ActionRef>,
    /// What this input made the session remember, for the runtime's memory queue (always empty
    /// between two inputs).
    #[serde(skip)]
    pub fresh: Vec<Fresh>,
}

impl Session {
    pub(crate) fn add_conversation(&mut self, conv: Conversation) {
        let id = conv.context_id.clone();
        if self.conversations.insert(id.clone(), conv).is_none() {
            self.fresh.push(Fresh::Conversation(id));
        }
    }

    /// Remembers what an action or message id refers to.
    pub(crate) fn add_action(&mut self, id: String, action: ActionRef) {
        if self.actions.insert(id.clone(), action).is_none() {
            self.fresh.push(Fresh::Action(id));
        }
    }

    pub(crate) fn add_relay(&mut self, relay: Relay) {
        let id = relay.relay_id.clone();
        if self.relays.insert(id.clone(), relay).is_none() {
            self.fresh.push(Fresh::Relay(id));
        }
    }

    /// Forgets one remembered thing; `false` when it is still in use (an active relay or its
    /// conversation) and must stay.
    fn forget(&mut self, what: &Fresh) -> bool {
        let active = |relays: &BTreeMap<String, Relay>, id: Option<&String>| {
            id.is_some_and(|r| relays.get(r).is_some_and(Relay::is_active))
        };
        match what {
            Fresh::Conversation(id) => {
                let relay = self.conversations.get(id).and_then(|c| c.relay_id.as_ref());
                if active(&self.relays, relay) {
                    return false;
                }
                self.conversations.remove(id);
            }
            Fresh::Relay(id) => {
                if active(&self.relays, Some(id)) {
                    return false;
                }
                self.relays.remove(id);
            }
            Fresh::Action(id) => {
                self.actions.remove(id);
            }
            Fresh::Node(id) => self.guard.forget_node(id),
            Fresh::Run(key, number) => self.guard.forget_run(key, *number),
        }
        true
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Runtime {
    #[serde(skip)]
    pub(crate) cfg: RuntimeConfig,
    pub(crate) sessions: Map<String, Session>,
    memory: Memory,
}

/// A message the runtime has checked and may apply.
pub(crate) struct Planned {
    context_id: Option<String>,
    /// The conversation is created by this message.
    new_conversation: bool,
    owner: Option<AgentId>,
    probe_conversation: Option<String>,
    follow_up: bool,
    explicit_parent: Option<String>,
    verdict: Verdict,
}

pub(crate) fn refuse(code: ErrorCode, message: impl Into<String>) -> Output {
    Output::Refuse {
        code,
        message: message.into(),
    }
}

impl Runtime {
    pub fn new(cfg: RuntimeConfig) -> Self {
        Self {
            cfg,
            sessions: Map::default(),
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
        // One shared name per session again (decoding gave each entry its own copy).
        let mut shared: HashMap<String, Arc<str>> = HashMap::new();
        for entry in &mut runtime.memory.queue {
            let name = shared
                .entry(entry.session.to_string())
                .or_insert_with(|| entry.session.clone());
            entry.session = name.clone();
        }
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
            | Input::AgentRemoved { session, .. } => session.clone(),
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
            } => self.relay(&session, &from, &payload, &resolve),
            Input::AgentRemoved { session, agent } => self.agent_removed(&session, &agent),
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
        if st.fresh.is_empty() {
            return;
        }
        let name: Arc<str> = match self.memory.queue.back() {
            Some(e) if &*e.session == session => e.session.clone(),
            _ => Arc::from(session),
        };
        for what in st.fresh.drain(..) {
            self.memory.queue.push_back(Entry {
                session: name.clone(),
                what,
            });
        }
        self.forget_past_budget();
    }

    fn forget_past_budget(&mut self) {
        let mut spared = 0;
        while self.memory.len() > self.cfg.memory_budget && spared < self.memory.len() {
            let Some(entry) = self.memory.queue.pop_front() else {
                break;
            };
            let forgotten = self
                .sessions
                .get_mut(&*entry.session)
                .is_none_or(|st| st.forget(&entry.what));
            if !forgotten {
                self.memory.queue.push_back(entry);
                spared += 1;
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
        let session = first.session.clone();
        let st = self.sessions.entry(session.clone()).or_default();
        let mut plans = Vec::with_capacity(sends.len());
        for send in &sends {
            match plan(&self.cfg, st, send) {
                Ok(p) => plans.push(p),
                Err(outputs) => return outputs,
            }
        }
        let mut out = Vec::new();
        for (send, planned) in sends.iter().zip(plans) {
            out.extend(apply(&self.cfg, st, send, planned));
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
        let st = self.sessions.entry(session.to_owned()).or_default();
        let Some(action) = st.actions.get(action_id).cloned() else {
            return Vec::new();
        };
        if let Some(conv) = action
            .context_id
            .as_ref()
            .and_then(|c| st.conversations.get(c))
        {
            if conv.owner_id != to && conv.owner_id != from {
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
                out.extend(crate::relay::answered(
                    &self.cfg, st, relay_id, from, action_id,
                ));
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
            out.extend(crate::relay::advance(st, &relay_id));
        }
        out
    }
}

/// Checks ownership and the loop guard for one message, without changing anything.
fn plan(cfg: &RuntimeConfig, st: &Session, send: &Message) -> Result<Planned, Vec<Output>> {
    let referenced = send
        .reply_to_action_id
        .as_ref()
        .and_then(|a| st.actions.get(a));
    let (context_id, new_conversation, owner) = match send.kind {
        MessageKind::System => {
            return Err(vec![refuse(
                ErrorCode::Forbidden,
                "system messages come from the bus only",
            )]);
        }
        MessageKind::User | MessageKind::Control => match &send.context_id {
            Some(ctx) => match st.conversations.get(ctx) {
                Some(conv) if conv.owner_id != send.from => {
                    return Err(vec![refuse(
                        ErrorCode::NotOwner,
                        format!(
                            "only {} (the owner of conversation {ctx}) may send follow-ups in it",
                            conv.owner_id
                        ),
                    )]);
                }
                Some(conv) => (Some(ctx.clone()), false, Some(conv.owner_id.clone())),
                None => (Some(ctx.clone()), true, Some(send.from.clone())),
            },
            None => (Some(send.id.clone()), true, Some(send.from.clone())),
        },
        MessageKind::Reply => {
            let ctx = send
                .context_id
                .clone()
                .or_else(|| referenced.and_then(|r| r.context_id.clone()))
                .or_else(|| st.pending_reply.get(&send.from).cloned());
            match ctx.as_ref().and_then(|c| st.conversations.get(c)) {
                Some(conv) => {
                    if conv.owner_id == send.from || send.to.iter().any(|t| *t != conv.owner_id) {
                        return Err(vec![refuse(
                            ErrorCode::Forbidden,
                            format!(
                                "a reply in conversation {} goes to its owner {} only",
                                conv.context_id, conv.owner_id
                            ),
                        )]);
                    }
                    (ctx, false, Some(conv.owner_id.clone()))
                }
                None => (None, false, None),
            }
        }
    };
    let explicit_parent = send
        .parent_message_id
        .clone()
        .or_else(|| send.reply_to_action_id.clone());
    let follow_up = !new_conversation && context_id.is_some();
    let tip = context_id
        .as_ref()
        .and_then(|c| st.conversations.get(c))
        .and_then(|c| c.last_to.get(&send.from))
        .map(String::as_str);
    let probe = Probe {
        id: &send.id,
        from: &send.from,
        to: &send.to,
        new_work: send.kind == MessageKind::User,
        conversation: context_id.as_deref(),
        follow_up,
        explicit_parent: explicit_parent.as_deref(),
    };
    let verdict = st
        .guard
        .evaluate(&probe, tip, cfg.max_hops, cfg.max_ping_pong);
    if let Some(rule) = verdict.stop {
        let owner = owner.clone().unwrap_or_else(|| send.from.clone());
        let limit = match rule {
            Rule::MaxHops => cfg.max_hops,
            Rule::PingPong => cfg.max_ping_pong,
        };
        let event = LoopSuppressed {
            message_id: send.id.clone(),
            from: send.from.clone(),
            to: send.to.clone(),
            owner_id: owner.clone(),
            context_id: context_id.clone(),
            chain_id: verdict.chain.clone(),
            hop: verdict.hop,
            rule: rule.as_str().to_owned(),
            limit,
        };
        return Err(vec![
            refuse(
                ErrorCode::LoopSuppressed,
                format!(
                    "stopped by the loop guard ({}: hop {} of chain {}, limit {limit}); not delivered",
                    rule.as_str(),
                    verdict.hop,
                    verdict.chain
                ),
            ),
            Output::Emit { event: RuntimeEvent::LoopSuppressed(event), to: vec![owner] },
        ]);
    }
    Ok(Planned {
        probe_conversation: context_id.clone(),
        context_id,
        new_conversation,
        owner,
        follow_up,
        explicit_parent,
        verdict,
    })
}

/// Applies a checked send: conversation, chain, pending reply targets, relay progress.
pub(crate) fn apply(
    cfg: &RuntimeConfig,
    st: &mut Session,
    send: &Message,
    p: Planned,
) -> Vec<Output> {
    if p.new_conversation {
        // A relay creates its targets' conversations itself (with the relay id).
        if let (Some(ctx), Some(owner)) = (
            p.context_id
                .as_ref()
                .filter(|c| !st.conversations.contains_key(*c)),
            &p.owner,
        ) {
            st.add_conversation(Conversation {
                context_id: ctx.clone(),
                owner_id: owner.clone(),
                task_id: None,
                relay_id: None,
                last_to: HashMap::new(),
            });
        }
    }
    let probe = Probe {
        id: &send.id,
        from: &send.from,
        to: &send.to,
        new_work: send.kind == MessageKind::User,
        conversation: p.probe_conversation.as_deref(),
        follow_up: p.follow_up,
        explicit_parent: p.explicit_parent.as_deref(),
    };
    st.guard.commit(&probe, &p.verdict, &mut st.fresh);
    let relay_id = p
        .context_id
        .as_ref()
        .and_then(|c| st.conversations.get(c))
        .and_then(|c| c.relay_id.clone());
    if let Some(conv) = p
        .context_id
        .as_ref()
        .and_then(|c| st.conversations.get_mut(c))
    {
        for to in &send.to {
            conv.last_to.insert(to.clone(), send.id.clone());
        }
    }
    if send.kind == MessageKind::User {
        // Work given in a conversation: that is where the receiver's replies go now, not to
        // whoever gave it work before.
        if let Some(ctx) = &p.context_id {
            for to in &send.to {
                st.pending_reply.insert(to.clone(), ctx.clone());
            }
        }
    }
    st.add_action(
        send.id.clone(),
        ActionRef {
            context_id: p.context_id.clone(),
            relay_id: relay_id.clone(),
            target: send.to.first().cloned(),
        },
    );
    let mut out = vec![Output::Stamp(Stamp {
        message_id: send.id.clone(),
        context_id: p.context_id.clone(),
        owner_id: p.owner.clone(),
        chain_id: p.verdict.chain.clone(),
        hop: p.verdict.hop,
    })];
    if send.kind == MessageKind::Reply {
        if let Some(action_id) = &send.reply_to_action_id {
            let relay = st.actions.get(action_id).and_then(|a| a.relay_id.clone());
            if let Some(relay_id) = relay {
                out.extend(crate::relay::answered(
                    cfg, st, &relay_id, &send.from, action_id,
                ));
            }
        }
    }
    out
}

/// Checks one relay action as a message from the owner (used by the relay module).
pub(crate) fn relay_send(
    cfg: &RuntimeConfig,
    st: &Session,
    send: &Message,
) -> Result<Planned, Vec<Output>> {
    plan(cfg, st, send)
}
