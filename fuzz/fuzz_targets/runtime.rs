//! The runtime's `handle`, driven by arbitrary sequences of messages, groups, results, relay
//! requests (arbitrary JSON shapes included) and departures among four agents: it never panics,
//! a conversation never changes owner, nothing is admitted past `max_hops`, and a runtime taken
//! back from a snapshot answers the next input exactly as the original.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use codex_weave_runtime::{Input, Message, MessageKind, Output, Runtime, RuntimeConfig};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const AGENTS: [&str; 4] = ["a", "b", "c", "d"];
const S: &str = "s";

#[derive(Debug, Arbitrary)]
enum Op {
    Send { from: u8, to: u8, kind: u8, ctx: Option<u8>, parent: Option<u8>, reply_to: Option<u8> },
    Group { from: u8, to: Vec<u8>, ctx: Option<u8> },
    Result { from: u8, to: u8, action: u8, terminal: bool },
    Relay { from: u8, id: u8, targets: Vec<u8>, wait: bool, done: bool, cancel: bool },
    RawRelay { from: u8, payload: String },
    Leave { agent: u8 },
}

fn agent(i: u8) -> String {
    AGENTS[i as usize % AGENTS.len()].to_owned()
}

fn pick(ids: &[String], i: Option<u8>) -> Option<String> {
    let i = i? as usize;
    (!ids.is_empty()).then(|| ids[i % ids.len()].clone())
}

fn kind(k: u8) -> MessageKind {
    match k % 3 {
        0 => MessageKind::User,
        1 => MessageKind::Reply,
        _ => MessageKind::Control,
    }
}

fn input(op: Op, n: usize, ids: &[String], contexts: &[String]) -> Input {
    let resolve: HashMap<String, String> = AGENTS.iter().map(|a| (a.to_string(), a.to_string())).collect();
    let message = |from: u8, to: u8, k: u8, ctx: Option<u8>, parent: Option<u8>, reply_to: Option<u8>, id: String| Message {
        session: S.into(),
        id,
        from: agent(from),
        to: vec![agent(to)],
        kind: kind(k),
        context_id: pick(contexts, ctx),
        parent_message_id: pick(ids, parent),
        reply_to_action_id: pick(ids, reply_to),
    };
    match op {
        Op::Send { from, to, kind, ctx, parent, reply_to } => {
            Input::Message(message(from, to, kind, ctx, parent, reply_to, format!("m{n}")))
        }
        Op::Group { from, to, ctx } => Input::Group {
            session: S.into(),
            from: agent(from),
            sends: to
                .iter()
                .take(4)
                .enumerate()
                .map(|(i, t)| message(from, *t, 0, ctx, None, None, format!("g{n}.{i}")))
                .collect(),
        },
        Op::Result { from, to, action, terminal } => Input::Result {
            session: S.into(),
            from: agent(from),
            to: agent(to),
            action_id: pick(ids, Some(action)).unwrap_or_default(),
            terminal,
        },
        Op::Relay { from, id, targets, wait, done, cancel } => {
            let relay_id = format!("r{}", id % 4);
            let payload = if done {
                json!({ "relay_id": relay_id, "done": { "summary": "s" } })
            } else if cancel {
                json!({ "relay_id": relay_id, "cancel": true })
            } else {
                let targets: Vec<String> = targets.iter().take(4).map(|t| agent(*t)).collect();
                let mut actions: Vec<Value> =
                    targets.iter().map(|t| json!({ "type": "message", "dst": t, "text": "x" })).collect();
                if wait {
                    actions.push(json!({ "type": "wait" }));
                    actions.push(json!({ "type": "message", "dst": targets.first().cloned().unwrap_or_default(), "text": "y" }));
                }
                json!({ "relay_id": relay_id, "targets": targets, "actions": actions })
            };
            Input::Relay { session: S.into(), from: agent(from), payload, resolve }
        }
        Op::RawRelay { from, payload } => Input::Relay {
            session: S.into(),
            from: agent(from),
            payload: serde_json::from_str(&payload).unwrap_or(Value::String(payload)),
            resolve,
        },
        Op::Leave { agent: a } => Input::AgentRemoved { session: S.into(), agent: agent(a) },
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let cfg = RuntimeConfig::default();
    let mut rt = Runtime::new(cfg.clone());
    let mut owners: HashMap<String, String> = HashMap::new();
    let (mut ids, mut contexts) = (Vec::new(), Vec::new());
    let count = ops.len();
    for (n, op) in ops.into_iter().enumerate() {
        let input = input(op, n, &ids, &contexts);
        if n + 1 == count {
            // The last input, also through a runtime taken back from a snapshot.
            let mut copy = Runtime::from_snapshot(cfg.clone(), &rt.snapshot()).expect("snapshot reads back");
            assert_eq!(copy.handle(input.clone()), rt.handle(input));
            return;
        }
        for out in rt.handle(input) {
            match out {
                Output::Stamp(st) => {
                    assert!(st.hop <= cfg.max_hops, "admitted at hop {}", st.hop);
                    if let (Some(ctx), Some(owner)) = (&st.context_id, &st.owner_id) {
                        let first = owners.entry(ctx.clone()).or_insert_with(|| owner.clone());
                        assert_eq!(first, owner, "conversation {ctx} changed owner");
                        contexts.push(ctx.clone());
                    }
                    ids.push(st.message_id);
                }
                Output::Dispatch { group, .. } => {
                    for a in group["actions"].as_array().into_iter().flatten() {
                        if let Some(id) = a["action_id"].as_str() {
                            ids.push(id.to_owned());
                        }
                    }
                }
                _ => {}
            }
        }
    }
});
