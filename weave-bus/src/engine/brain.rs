//! Where every request meets the runtime. A state-changing request is first normalized into the
//! envelope the bus will record; `input_for` turns that envelope into the runtime's input; the
//! runtime decides; the bus stamps the record with what the runtime said (conversation, chain),
//! records it, and applies the effects (events to record and deliver, relay groups to dispatch).
//!
//! The runtime keeps its state in memory. Because it is deterministic and `input_for` reads only
//! what is recorded, replaying the log through it rebuilds exactly that state; `snapshot.rs`
//! keeps the replay short.

use std::collections::HashMap;

use codex_weave_runtime::{
    Envelope, Input, Message, MessageKind, Output, RelayReply, ResultStatus, Stamp,
};
use codex_weave_transport_uds::time::now_rfc3339;
use serde_json::{json, Value};

use super::stamp::{message_input, stamp_chain, stamp_payload, text, MessageFields};
use super::{bus_envelope, new_id, Engine};
use crate::refusal::Refusal;

/// What the runtime said about a request.
#[derive(Debug, Default)]
pub(super) struct Consulted {
    pub refusal: Option<Refusal>,
    pub stamps: Vec<Stamp>,
    pub reply: Option<RelayReply>,
    /// Events and dispatches, applied after the request's own record.
    pub effects: Vec<Output>,
}

/// Dispatches of a relay are recorded as `action.submit` with `meta.weave.relay_id`; they are
/// the runtime's outputs, not inputs.
fn is_relay_dispatch(env: &Envelope) -> bool {
    env.meta
        .as_ref()
        .and_then(|m| m.pointer("/weave/relay_id"))
        .is_some()
}

/// The runtime input a recorded request stands for (the same live and at replay).
pub(super) fn input_for(session: &str, env: &Envelope) -> Option<Input> {
    let p = env.payload.as_ref();
    let owned = |s: Option<&str>| s.map(str::to_owned);
    match env.kind.as_str() {
        "message.send" => message_input(
            session,
            &env.id,
            &env.src,
            env.dst.as_deref(),
            &MessageFields::of_value(p),
        ),
        "action.submit" if !is_relay_dispatch(env) => {
            let context = p.and_then(|p| p.get("context"));
            let context_id = text(context, "context_id")
                .or_else(|| text(p, "group_id"))
                .unwrap_or(&env.id)
                .to_owned();
            let parent = owned(text(context, "parent_message_id"));
            let sends = p?
                .get("actions")?
                .as_array()?
                .iter()
                .map(|a| {
                    let kind = match text(Some(a), "type") {
                        Some("control") => MessageKind::Control,
                        _ => text(Some(a), "kind")
                            .and_then(MessageKind::parse)
                            .unwrap_or(MessageKind::User),
                    };
                    Message {
                        session: session.to_owned(),
                        id: text(Some(a), "action_id").unwrap_or_default().to_owned(),
                        from: env.src.clone(),
                        to: text(Some(a), "dst")
                            .map(|d| vec![d.to_owned()])
                            .unwrap_or_default(),
                        kind,
                        context_id: Some(context_id.clone()),
                        parent_message_id: parent.clone(),
                        reply_to_action_id: owned(text(Some(a), "reply_to_action_id")),
                    }
                })
                .collect();
            Some(Input::Group {
                session: session.to_owned(),
                from: env.src.clone(),
                sends,
            })
        }
        "action.result" => Some(Input::Result {
            session: session.to_owned(),
            from: env.src.clone(),
            to: env.dst.clone()?,
            action_id: text(p, "action_id")?.to_owned(),
            terminal: text(p, "status")
                .and_then(ResultStatus::parse)
                .is_some_and(ResultStatus::is_terminal),
        }),
        "relay.submit" => {
            // Recorded with names resolved to ids; `meta.weave.resolved` lists the known ones.
            let resolved = env
                .meta
                .as_ref()
                .and_then(|m| m.pointer("/weave/resolved"))
                .and_then(Value::as_array);
            let resolve: HashMap<String, String> = resolved
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|id| (id.to_owned(), id.to_owned()))
                .collect();
            Some(Input::Relay {
                session: session.to_owned(),
                from: env.src.clone(),
                payload: p?.clone(),
                resolve,
            })
        }
        // The runtime keeps people apart from agents (the loop guard does not count them).
        "agent.added" if text(p, "kind") == Some("human") => Some(Input::AgentAdded {
            session: session.to_owned(),
            agent: text(p, "id")?.to_owned(),
            person: true,
        }),
        "agent.removed" => Some(Input::AgentRemoved {
            session: session.to_owned(),
            agent: text(p, "id")?.to_owned(),
        }),
        _ => None,
    }
}

impl Engine {
    /// Asks the runtime about a request (already normalized into its record envelope).
    pub(super) fn consult(&mut self, sid: &str, record: &Envelope) -> Consulted {
        self.consult_input(input_for(sid, record))
    }

    fn consult_input(&mut self, input: Option<Input>) -> Consulted {
        let Some(input) = input else {
            return Consulted::default();
        };
        let mut c = Consulted::default();
        for out in self.runtime.handle(input) {
            match out {
                Output::Refuse { code, message } => c.refusal = Some(Refusal::new(code, message)),
                Output::Stamp(s) => c.stamps.push(s),
                Output::Relay(r) => c.reply = Some(r),
                other => c.effects.push(other),
            }
        }
        c
    }

    /// The runtime's verdict on a request: refused (its events still recorded), or admitted
    /// with the record stamped.
    pub(super) fn admit(&mut self, sid: &str, record: &mut Envelope) -> Result<Consulted, Refusal> {
        let c = self.admit_input(sid, input_for(sid, record))?;
        if let Some(first) = c.stamps.first() {
            stamp_payload(record, first);
            stamp_chain(&mut record.meta, first);
        }
        Ok(c)
    }

    /// The runtime's verdict on `input` (the caller stamps the record).
    pub(super) fn admit_input(
        &mut self,
        sid: &str,
        input: Option<Input>,
    ) -> Result<Consulted, Refusal> {
        let mut c = self.consult_input(input);
        if let Some(refusal) = c.refusal.take() {
            let effects = std::mem::take(&mut c.effects);
            self.apply_effects(sid, effects);
            return Err(refusal);
        }
        Ok(c)
    }

    /// Records the runtime's events (delivering each to its agents) and relay dispatches.
    pub(super) fn apply_effects(&mut self, sid: &str, effects: Vec<Output>) {
        for effect in effects {
            match effect {
                Output::Emit { event, to } => {
                    let mut env: Envelope = bus_envelope(event.kind(), Some(sid));
                    if let [only] = to.as_slice() {
                        env.dst = Some(only.clone());
                    }
                    env.payload = event.payload();
                    let (seq, env) = self.record(sid, env);
                    let mut sent: Vec<&String> = Vec::new();
                    for agent in &to {
                        if !sent.contains(&agent)
                            && self.registry.sessions[sid].agents.contains_key(agent)
                        {
                            sent.push(agent);
                            self.enqueue(sid, agent, seq, env.clone());
                        }
                    }
                }
                Output::Dispatch {
                    from,
                    target,
                    group,
                } => {
                    let mut env = Envelope::new("action.submit", new_id(), now_rfc3339(), from);
                    env.session = Some(sid.to_owned());
                    env.dst = Some(target.clone());
                    env.idempotency_key = group
                        .get("group_id")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    env.meta = Some(json!({ "weave": { "relay_id": group.get("relay_id") } }));
                    env.payload = Some(group);
                    self.stamp_origin(sid, &mut env);
                    let (seq, env) = self.record(sid, env);
                    if self.registry.sessions[sid].agents.contains_key(&target) {
                        self.enqueue(sid, &target, seq, env);
                    }
                }
                Output::Refuse { .. } | Output::Stamp(_) | Output::Relay(_) => {}
            }
        }
    }
}
