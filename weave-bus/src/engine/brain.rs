//! Where every request meets the runtime. A state-changing request is first normalized into the
//! envelope the bus will record; `input_for` turns that envelope into the runtime's input; the
//! runtime decides; the bus stamps the record with what the runtime said (conversation, chain),
//! records it, and applies the effects (events to record and deliver, relay groups to dispatch).
//!
//! The runtime keeps its state in memory. Because it is deterministic and `input_for` reads only
//! what is recorded, replaying the log through it rebuilds exactly that state; `snapshot.rs`
//! keeps the replay short.

use std::collections::HashMap;

use codex_weave_runtime::{Envelope, Input, Message, MessageKind, Output, Stamp};
use codex_weave_transport_uds::time::now_rfc3339;
use serde_json::{json, Value};

use super::{bus_envelope, new_id, Engine};
use crate::refusal::Refusal;

/// What the runtime said about a request.
#[derive(Debug, Default)]
pub(super) struct Consulted {
    pub refusal: Option<Refusal>,
    pub stamps: Vec<Stamp>,
    pub reply: Option<Value>,
    /// Events and dispatches, applied after the request's own record.
    pub effects: Vec<Output>,
}

fn text<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a str> {
    v.and_then(|v| v.get(key)).and_then(Value::as_str)
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
        "message.send" => {
            let kind = text(p, "kind")
                .and_then(MessageKind::parse)
                .unwrap_or(MessageKind::User);
            Some(Input::Message(Message {
                session: session.to_owned(),
                id: env.id.clone(),
                from: env.src.clone(),
                to: vec![env.dst.clone()?],
                kind,
                context_id: owned(text(p, "context_id")),
                parent_message_id: owned(text(p, "parent_message_id")),
                reply_to_action_id: owned(text(p, "reply_to_action_id")),
            }))
        }
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
            terminal: matches!(text(p, "status"), Some("completed" | "rejected" | "error")),
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
        let Some(input) = input_for(sid, record) else {
            return Consulted::default();
        };
        let mut c = Consulted::default();
        for out in self.runtime.handle(input) {
            match out {
                Output::Refuse { code, message } => c.refusal = Some(Refusal::new(code, message)),
                Output::Stamp(s) => c.stamps.push(s),
                Output::Reply(v) => c.reply = Some(v),
                other => c.effects.push(other),
            }
        }
        c
    }

    /// The runtime's verdict on a request: refused (its events still recorded), or admitted
    /// with the record stamped.
    pub(super) fn admit(&mut self, sid: &str, record: &mut Envelope) -> Result<Consulted, Refusal> {
        let mut c = self.consult(sid, record);
        if let Some(refusal) = c.refusal.take() {
            let effects = std::mem::take(&mut c.effects);
            self.apply_effects(sid, effects);
            return Err(refusal);
        }
        stamp(record, &c.stamps);
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
                        if !sent.contains(&agent) && self.sessions[sid].agents.contains_key(agent) {
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
                    if self.sessions[sid].agents.contains_key(&target) {
                        self.enqueue(sid, &target, seq, env);
                    }
                }
                Output::Refuse { .. } | Output::Stamp(_) | Output::Reply(_) => {}
            }
        }
    }
}

/// Writes the runtime's answer into the record: the conversation (`context_id`, `owner_id`)
/// when the sender named none, and the causal chain in `meta.weave.chain`.
fn stamp(record: &mut Envelope, stamps: &[Stamp]) {
    let Some(first) = stamps.first() else { return };
    let group = record.kind == "action.submit";
    if let Some(payload) = record.payload.as_mut().and_then(Value::as_object_mut) {
        if group {
            if !payload.contains_key("context") {
                payload.insert(
                    "context".into(),
                    json!({ "context_id": first.context_id, "owner_id": first.owner_id }),
                );
            }
        } else if let Some(ctx) = &first.context_id {
            payload.entry("context_id").or_insert_with(|| json!(ctx));
            if let Some(owner) = &first.owner_id {
                payload.entry("owner_id").or_insert_with(|| json!(owner));
            }
        }
    }
    let meta = record.meta.get_or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({ "original": meta.clone() });
    }
    let weave = &mut meta["weave"];
    if !weave.is_object() {
        *weave = json!({});
    }
    weave["chain"] = json!({ "id": first.chain_id, "hop": first.hop });
}
