//! The runtime state machine: `handle(input) -> Vec<Output>`. The bus feeds it every
//! state-changing request (already validated and with agent names resolved to ids) and applies
//! its outputs: a refusal, annotations for the message, a response payload, action groups to
//! dispatch, and events to record and deliver. No IO, no clock, no randomness: the same inputs
//! give the same outputs, which is what the property and snapshot tests rely on.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorCode;
use crate::event::{LoopSuppressed, RuntimeEvent};
use crate::guard::{Admitted, Guard, Probe, Rule, Verdict};
use crate::memory::{Entry, Fresh, Id, Map, Memory};
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
    /// Conversations, message nodes (guard and reference), pair runs, and relays remembered across
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
    /// An agent joined the session; `person`: it is a person (kind `human`).
    AgentAdded {
        session: String,
        agent: AgentId,
        person: bool,
    },
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
    /// The message (or action) this one answers, for its receipt: the one it names
    /// (`parent_message_id`, else `reply_to_action_id`), else — for a reply — the newest work
    /// given to the sender that it had not answered yet.
    pub answers: Option<String>,
}

/// One session's state. Conversations, message nodes (guard and reference), pair runs, and relays
/// are remembered within the runtime's memory budget (see [`crate::memory`]): a follow-up in a
/// forgotten conversation starts a new one; a reply to a forgotten action is a plain reply.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Session {
    /// Where the runtime's memory queue finds this session (`Runtime::slots`).
    pub slot: u32,
    pub conversations: Map<Id, Conversation>,
    /// Ordered by id: whatever walks the relays (an agent leaving) does so in one order,
    /// so a replay gives the same outputs as the live run.
    pub relays: BTreeMap<String, Relay>,
    pub guard: Guard,
    /// The conversation an agent answers into when its reply names none.
    pub pending_reply: Map<Id, Id>,
    /// Agents that are people (kind `human`): their messages never count toward the loop
    /// guard, and each starts a fresh chain for the agents it answers.
    #[serde(default)]
    pub persons: std::collections::BTreeSet<String>,
    /// One shared [`Id`] per agent id seen (rebuilt as agents are seen again after a restart).
    #[serde(skip)]
    pub agents: hashbrown::HashSet<Id, foldhash::fast::RandomState>,
    /// What this input made the session remember, for the runtime's memory queue (always empty
    /// between two inputs).
    #[serde(skip)]
    pub fresh: Vec<Fresh>,
}

impl Session {
    /// The shared id of agent `agent`.
    pub(crate) fn intern(&mut self, agent: &str) -> Id {
        if let Some(id) = self.agents.get(agent) {
            return id.clone();
        }
        let id: Id = agent.into();
        self.agents.insert(id.clone());
        id
    }

    pub(crate) fn add_conversation(&mut self, conv: Conversation) {
        let id = conv.context_id.clone();
        if self.conversations.insert(id.clone(), conv).is_none() {
            self.fresh.push(Fresh::Conversation(id));
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
        let active = |relays: &BTreeMap<String, Relay>, id: Option<&str>| {
            id.is_some_and(|r| relays.get(r).is_some_and(Relay::is_active))
        };
        match what {
            Fresh::Conversation(id) => {
                let relay = self
                    .conversations
                    .get(id)
                    .and_then(|c| c.relay_id.as_deref());
                if active(&self.relays, relay) {
                    return false;
                }
                self.conversations.remove(id);
            }
            Fresh::Relay(id) => {
                if active(&self.relays, Some(id.as_str())) {
                    return false;
                }
                self.relays.remove(id);
            }
            Fresh::Node(id) => self.guard.forget_node(id),
            Fresh::Run(key, number) => self.guard.forget_run(key, *number),
        }
        true
    }
}

/// The state machine. Not `Send` (see [`crate::memory::Id`]): build it, or take it back from a
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

/// A message the runtime has checked and may apply.
pub(crate) struct Planned {
    context_id: Option<String>,
    /// The conversation is created by this message.
    new_conversation: bool,
    owner: Option<AgentId>,
    verdict: Verdict,
    answers: Option<String>,
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
            } => self.relay(&session, &from, &payload, &resolve),
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
            out.extend(crate::relay::advance(st, &relay_id));
        }
        out
    }
}

/// Checks ownership and the loop guard for one message, without changing anything.
fn plan(cfg: &RuntimeConfig, st: &Session, send: &Message) -> Result<Planned, Vec<Output>> {
    let referenced = send
        .reply_to_action_id
        .as_deref()
        .and_then(|a| st.guard.node(a));
    let (context_id, new_conversation, owner) = match send.kind {
        MessageKind::System => {
            return Err(vec![refuse(
                ErrorCode::Forbidden,
                "system messages come from the bus only",
            )]);
        }
        MessageKind::User | MessageKind::Control => match &send.context_id {
            Some(ctx) => match st.conversations.get(ctx.as_str()) {
                Some(conv) if *conv.owner_id != *send.from => {
                    return Err(vec![refuse(
                        ErrorCode::NotOwner,
                        format!(
                            "only {} (the owner of conversation {ctx}) may send follow-ups in it",
                            conv.owner_id
                        ),
                    )]);
                }
                Some(conv) => (Some(ctx.clone()), false, Some(conv.owner_id.to_string())),
                None => (Some(ctx.clone()), true, Some(send.from.clone())),
            },
            None => (Some(send.id.clone()), true, Some(send.from.clone())),
        },
        MessageKind::Reply => {
            let ctx = send
                .context_id
                .clone()
                .or_else(|| referenced.and_then(|r| r.conversation.as_deref().map(str::to_owned)))
                .or_else(|| {
                    st.pending_reply
                        .get(send.from.as_str())
                        .map(|c| c.to_string())
                });
            match ctx.as_ref().and_then(|c| st.conversations.get(c.as_str())) {
                Some(conv) => {
                    if *conv.owner_id == *send.from || send.to.iter().any(|t| **t != *conv.owner_id)
                    {
                        return Err(vec![refuse(
                            ErrorCode::Forbidden,
                            format!(
                                "a reply in conversation {} goes to its owner {} only",
                                conv.context_id, conv.owner_id
                            ),
                        )]);
                    }
                    (ctx, false, Some(conv.owner_id.to_string()))
                }
                None => (None, false, None),
            }
        }
    };
    let explicit_parent = send
        .parent_message_id
        .as_deref()
        .or(send.reply_to_action_id.as_deref());
    let follow_up = !new_conversation && context_id.is_some();
    let tip = context_id
        .as_ref()
        .and_then(|c| st.conversations.get(c.as_str()))
        .and_then(|c| c.last_to(&send.from))
        .map(|m| &**m);
    let probe = Probe {
        id: &send.id,
        from: &send.from,
        to: &send.to,
        new_work: send.kind == MessageKind::User,
        conversation: context_id.as_deref(),
        follow_up,
        explicit_parent,
        person: st.persons.contains(&send.from),
    };
    let verdict = st
        .guard
        .evaluate(&probe, tip, cfg.max_hops, cfg.max_ping_pong);
    let answers = explicit_parent
        .or_else(|| {
            (send.kind == MessageKind::Reply)
                .then(|| st.guard.unanswered_by(&send.from))
                .flatten()
        })
        .map(str::to_owned);
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
            chain_id: verdict.chain_id(&send.id).to_owned(),
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
                    verdict.chain_id(&send.id)
                ),
            ),
            Output::Emit { event: RuntimeEvent::LoopSuppressed(event), to: vec![owner] },
        ]);
    }
    Ok(Planned {
        context_id,
        new_conversation,
        owner,
        verdict,
        answers,
    })
}

/// Applies a checked send: conversation, chain, pending reply targets, relay progress.
pub(crate) fn apply(
    cfg: &RuntimeConfig,
    st: &mut Session,
    send: &Message,
    p: Planned,
) -> Vec<Output> {
    let id: Id = send.id.as_str().into();
    let from = st.intern(&send.from);
    let to: Vec<Id> = send.to.iter().map(|t| st.intern(t)).collect();
    // The conversation's shared id: the message's own for a conversation it starts.
    let ctx: Option<Id> = p.context_id.as_deref().map(|c| {
        if c == send.id {
            id.clone()
        } else {
            st.conversations
                .get_key_value(c)
                .map_or_else(|| c.into(), |(k, _)| k.clone())
        }
    });
    // A message starting a conversation creates it (a relay creates its targets' conversations
    // itself, with the relay id). One lookup finds or creates it.
    let owner_id = p
        .owner
        .as_deref()
        .filter(|_| p.new_conversation)
        .map(|o| st.intern(o));
    let conv = match &ctx {
        None => None,
        Some(ctx) => match st.conversations.entry(ctx.clone()) {
            hashbrown::hash_map::Entry::Occupied(e) => Some(e.into_mut()),
            hashbrown::hash_map::Entry::Vacant(e) => owner_id.map(|owner_id| {
                st.fresh.push(Fresh::Conversation(ctx.clone()));
                e.insert(Conversation {
                    context_id: ctx.clone(),
                    owner_id,
                    relay_id: None,
                    last_to: Vec::new(),
                })
            }),
        },
    };
    let new_work = send.kind == MessageKind::User;
    let mut relay_id = None;
    if let Some(conv) = conv {
        relay_id = conv.relay_id.clone();
        for t in &to {
            conv.set_last_to(t, &id);
        }
    }
    let admitted = Admitted {
        id: &id,
        from: &from,
        to: &to,
        new_work,
        person: st.persons.contains(&send.from),
        conversation: ctx.as_ref(),
        relay_id,
    };
    st.guard.commit(&admitted, &p.verdict, &mut st.fresh);
    if new_work {
        // Work given in a conversation: that is where the receiver's replies go now, not to
        // whoever gave it work before.
        if let Some(ctx) = &ctx {
            for t in &to {
                st.pending_reply.insert(t.clone(), ctx.clone());
            }
        }
    }
    let mut out = vec![Output::Stamp(Stamp {
        message_id: send.id.clone(),
        chain_id: p.verdict.chain_id(&send.id).to_owned(),
        context_id: p.context_id,
        owner_id: p.owner,
        hop: p.verdict.hop,
        answers: p.answers,
    })];
    if send.kind == MessageKind::Reply {
        if let Some(action_id) = &send.reply_to_action_id {
            let relay = st
                .guard
                .node(action_id)
                .and_then(|a| a.relay_id.as_deref().map(str::to_owned));
            if let Some(relay_id) = relay {
                out.extend(crate::relay::answered(
                    cfg, st, &relay_id, &send.from, action_id,
                ));
            }
        }
    }
    out
}

/// The state of session `name`, created (with the next slot) on first use.
pub(crate) fn open<'a>(
    sessions: &'a mut Map<String, Session>,
    slots: &mut Vec<String>,
    name: &str,
) -> &'a mut Session {
    sessions.entry_ref(name).or_insert_with(|| {
        slots.push(name.to_owned());
        Session {
            slot: (slots.len() - 1) as u32,
            ..Session::default()
        }
    })
}

/// Checks one relay action as a message from the owner (used by the relay module).
pub(crate) fn relay_send(
    cfg: &RuntimeConfig,
    st: &Session,
    send: &Message,
) -> Result<Planned, Vec<Output>> {
    plan(cfg, st, send)
}
