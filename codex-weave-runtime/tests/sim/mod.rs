//! A small driver for the runtime in tests: builds inputs, applies them, and renders what came
//! out as plain JSON for assertions and snapshots.
#![allow(dead_code)]

use std::collections::HashMap;

use codex_weave_runtime::{Input, Message, MessageKind, Output, Runtime, RuntimeConfig};
use serde_json::{json, Value};

pub const S: &str = "session";

pub struct Sim {
    pub rt: Runtime,
    pub agents: Vec<String>,
    next: u64,
    /// Everything emitted or dispatched so far, rendered.
    pub log: Vec<Value>,
}

pub struct Msg<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub kind: MessageKind,
    pub ctx: Option<&'a str>,
    pub parent: Option<&'a str>,
    pub reply_to: Option<&'a str>,
}

impl<'a> Msg<'a> {
    pub fn user(from: &'a str, to: &'a str) -> Self {
        Self {
            from,
            to,
            kind: MessageKind::User,
            ctx: None,
            parent: None,
            reply_to: None,
        }
    }
    pub fn reply(from: &'a str, to: &'a str) -> Self {
        Self {
            kind: MessageKind::Reply,
            ..Self::user(from, to)
        }
    }
    pub fn control(from: &'a str, to: &'a str) -> Self {
        Self {
            kind: MessageKind::Control,
            ..Self::user(from, to)
        }
    }
    pub fn ctx(mut self, ctx: &'a str) -> Self {
        self.ctx = Some(ctx);
        self
    }
    pub fn parent(mut self, p: &'a str) -> Self {
        self.parent = Some(p);
        self
    }
    pub fn reply_to(mut self, a: &'a str) -> Self {
        self.reply_to = Some(a);
        self
    }
}

/// The outcome of one input.
#[derive(Debug)]
pub struct Outcome {
    pub id: String,
    pub outputs: Vec<Output>,
}

impl Outcome {
    pub fn refused(&self) -> Option<&str> {
        self.outputs.iter().find_map(|o| match o {
            Output::Refuse { code, .. } => Some(code.as_str()),
            _ => None,
        })
    }

    pub fn ok(&self) -> bool {
        self.refused().is_none()
    }

    pub fn stamp(&self) -> Option<&codex_weave_runtime::Stamp> {
        self.outputs.iter().find_map(|o| match o {
            Output::Stamp(s) => Some(s),
            _ => None,
        })
    }

    pub fn reply(&self) -> Option<Value> {
        self.outputs.iter().find_map(|o| match o {
            Output::Relay(r) => Some(r.to_value()),
            _ => None,
        })
    }

    pub fn dispatches(&self) -> Vec<(&str, &Value)> {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                Output::Dispatch { target, group, .. } => Some((target.as_str(), group)),
                _ => None,
            })
            .collect()
    }

    pub fn events(&self, kind: &str) -> Vec<Value> {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                Output::Emit { event, .. } if event.kind() == kind => event.payload(),
                _ => None,
            })
            .collect()
    }
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Sim {
    pub fn new() -> Self {
        Self::with(RuntimeConfig::default())
    }

    pub fn with(cfg: RuntimeConfig) -> Self {
        Sim {
            rt: Runtime::new(cfg),
            agents: Vec::new(),
            next: 0,
            log: Vec::new(),
        }
    }

    pub fn id(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    fn run(&mut self, id: String, input: Input) -> Outcome {
        let outputs = self.rt.handle(input);
        for o in &outputs {
            self.log.push(render(o));
        }
        Outcome { id, outputs }
    }

    pub fn send(&mut self, m: Msg<'_>) -> Outcome {
        let id = self.id("m");
        let send = Message {
            session: S.into(),
            id: id.clone(),
            from: m.from.into(),
            to: vec![m.to.into()],
            kind: m.kind,
            context_id: m.ctx.map(str::to_owned),
            parent_message_id: m.parent.map(str::to_owned),
            reply_to_action_id: m.reply_to.map(str::to_owned),
        };
        self.run(id, Input::Message(send))
    }

    pub fn group(
        &mut self,
        from: &str,
        ctx: Option<&str>,
        actions: &[(&str, MessageKind)],
    ) -> Outcome {
        let gid = self.id("g");
        let sends = actions
            .iter()
            .enumerate()
            .map(|(i, (to, kind))| Message {
                session: S.into(),
                id: format!("{gid}.{i}"),
                from: from.into(),
                to: vec![(*to).into()],
                kind: *kind,
                context_id: Some(ctx.map(str::to_owned).unwrap_or_else(|| gid.clone())),
                parent_message_id: None,
                reply_to_action_id: None,
            })
            .collect();
        self.run(
            gid.clone(),
            Input::Group {
                session: S.into(),
                from: from.into(),
                sends,
            },
        )
    }

    pub fn relay(&mut self, from: &str, payload: Value) -> Outcome {
        let mut resolve = HashMap::new();
        for a in &self.agents {
            resolve.insert(a.clone(), a.clone());
        }
        let id = payload["relay_id"].as_str().unwrap_or_default().to_owned();
        self.run(
            id,
            Input::Relay {
                session: S.into(),
                from: from.into(),
                payload,
                resolve,
            },
        )
    }

    pub fn result(&mut self, from: &str, to: &str, action_id: &str, terminal: bool) -> Outcome {
        self.run(
            action_id.to_owned(),
            Input::Result {
                session: S.into(),
                from: from.into(),
                to: to.into(),
                action_id: action_id.into(),
                terminal,
            },
        )
    }
}

/// An output as plain JSON, for snapshots.
pub fn render(o: &Output) -> Value {
    match o {
        Output::Refuse { code, message } => json!({ "refuse": code.as_str(), "message": message }),
        Output::Stamp(s) => {
            json!({ "stamp": { "message_id": s.message_id, "context_id": s.context_id, "owner_id": s.owner_id, "chain": s.chain_id, "hop": s.hop } })
        }
        Output::Relay(r) => json!({ "reply": r.to_value() }),
        Output::Dispatch {
            from,
            target,
            group,
        } => json!({ "dispatch": { "from": from, "to": target, "group": group } }),
        Output::Emit { event, to } => {
            json!({ "emit": { "type": event.kind(), "to": to, "payload": event.payload() } })
        }
    }
}
