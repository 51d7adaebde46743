//! Properties over random interleavings of agents, messages, relays, results and departures:
//! one owner per conversation, forever; no admitted message beyond `max_hops`; replies only to
//! their conversation's owner; every relay ends in `relay.done` once its owner says so; and any
//! pair of agents that keeps answering each other is stopped within the guard's bound.

mod sim;

use std::collections::HashMap;

use codex_weave_runtime::{Input, MessageKind, Output, RelayStatus, Runtime, RuntimeConfig};
use proptest::prelude::*;
use serde_json::json;
use sim::{Msg, Sim, S};

const AGENTS: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Debug, Clone)]
enum Op {
    User {
        from: usize,
        to: usize,
        ctx: Option<usize>,
        parent: Option<usize>,
    },
    Reply {
        from: usize,
        to: usize,
        ctx: Option<usize>,
        reply_to: Option<usize>,
    },
    Relay {
        from: usize,
        id: usize,
        targets: Vec<usize>,
        wait: bool,
    },
    Done {
        from: usize,
        id: usize,
    },
    Cancel {
        from: usize,
        id: usize,
    },
    Result {
        from: usize,
        action: usize,
        terminal: bool,
    },
    Leave {
        agent: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let agent = 0..AGENTS.len();
    let pick = proptest::option::of(0usize..64);
    prop_oneof![
        4 => (agent.clone(), agent.clone(), pick.clone(), pick.clone())
            .prop_map(|(from, to, ctx, parent)| Op::User { from, to, ctx, parent }),
        4 => (agent.clone(), agent.clone(), pick.clone(), pick.clone())
            .prop_map(|(from, to, ctx, reply_to)| Op::Reply { from, to, ctx, reply_to }),
        2 => (agent.clone(), 0usize..4, proptest::collection::vec(0..AGENTS.len(), 1..4), any::<bool>())
            .prop_map(|(from, id, targets, wait)| Op::Relay { from, id, targets, wait }),
        1 => (agent.clone(), 0usize..4).prop_map(|(from, id)| Op::Done { from, id }),
        1 => (agent.clone(), 0usize..4).prop_map(|(from, id)| Op::Cancel { from, id }),
        2 => (agent.clone(), 0usize..64, any::<bool>()).prop_map(|(from, action, terminal)| Op::Result { from, action, terminal }),
        1 => agent.prop_map(|agent| Op::Leave { agent }),
    ]
}

/// Applies one operation; returns what came out, and for a reply the agent it was sent to.
fn apply(
    s: &mut Sim,
    op: &Op,
    contexts: &[String],
    ids: &[String],
) -> (sim::Outcome, Option<&'static str>) {
    match *op {
        Op::User {
            from,
            to,
            ctx,
            parent,
        } => {
            let m = Msg {
                ctx: pick(contexts, ctx),
                parent: pick(ids, parent),
                ..Msg::user(AGENTS[from], AGENTS[to])
            };
            (s.send(m), None)
        }
        Op::Reply {
            from,
            to,
            ctx,
            reply_to,
        } => {
            let m = Msg {
                ctx: pick(contexts, ctx),
                reply_to: pick(ids, reply_to),
                ..Msg::reply(AGENTS[from], AGENTS[to])
            };
            (s.send(m), Some(AGENTS[to]))
        }
        Op::Relay {
            from,
            id,
            ref targets,
            wait,
        } => {
            let mut actions: Vec<_> = targets
                .iter()
                .map(|t| json!({ "type": "message", "dst": AGENTS[*t], "text": "x" }))
                .collect();
            if wait {
                actions.push(json!({ "type": "wait" }));
                actions
                    .push(json!({ "type": "message", "dst": AGENTS[targets[0]], "text": "after" }));
            }
            let targets: Vec<_> = targets.iter().map(|t| AGENTS[*t]).collect();
            (
                s.relay(
                    AGENTS[from],
                    json!({ "relay_id": format!("r{id}"), "targets": targets, "actions": actions }),
                ),
                None,
            )
        }
        Op::Done { from, id } => {
            let relay = format!("r{id}");
            let was_active_owned =
                s.rt.relay_state(S, &relay)
                    .is_some_and(|r| r.is_active() && r.owner == AGENTS[from]);
            let out = s.relay(
                AGENTS[from],
                json!({ "relay_id": relay, "done": { "summary": "s" } }),
            );
            if was_active_owned {
                assert_eq!(out.events("relay.done").len(), 1);
                assert_eq!(
                    s.rt.relay_state(S, &relay).unwrap().status,
                    RelayStatus::Done
                );
            }
            (out, None)
        }
        Op::Cancel { from, id } => (
            s.relay(
                AGENTS[from],
                json!({ "relay_id": format!("r{id}"), "cancel": true }),
            ),
            None,
        ),
        Op::Result {
            from,
            action,
            terminal,
        } => {
            let action = pick(ids, Some(action)).unwrap_or("none").to_owned();
            (s.result(AGENTS[from], "a", &action, terminal), None)
        }
        Op::Leave { agent } => {
            let outputs = s.rt.handle(Input::AgentRemoved {
                session: S.into(),
                agent: AGENTS[agent].into(),
            });
            (
                sim::Outcome {
                    id: String::new(),
                    outputs,
                },
                None,
            )
        }
    }
}

fn pick(list: &[String], i: Option<usize>) -> Option<&str> {
    let i = i?;
    (!list.is_empty()).then(|| list[i % list.len()].as_str())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_under_random_interleavings(ops in proptest::collection::vec(op(), 1..120)) {
        let cfg = RuntimeConfig::default();
        let mut s = Sim::with(cfg.clone());
        s.agents = AGENTS.iter().map(|a| a.to_string()).collect();
        let mut owners: HashMap<String, String> = HashMap::new();
        let mut contexts: Vec<String> = Vec::new();
        let mut ids: Vec<String> = Vec::new();
        for op in ops {
            let (outcome, reply_to_owner) = apply(&mut s, &op, &contexts, &ids);
            for o in &outcome.outputs {
                match o {
                    Output::Stamp(st) => {
                        prop_assert!(st.hop <= cfg.max_hops, "admitted at hop {}", st.hop);
                        if let (Some(ctx), Some(owner)) = (&st.context_id, &st.owner_id) {
                            let first = owners.entry(ctx.clone()).or_insert_with(|| owner.clone());
                            prop_assert_eq!(&*first, owner, "conversation {} changed owner", ctx);
                            if !contexts.contains(ctx) {
                                contexts.push(ctx.clone());
                            }
                            if let Some(to) = reply_to_owner {
                                prop_assert_eq!(to, owner.as_str(), "a reply went to someone other than the owner");
                            }
                        }
                        ids.push(st.message_id.clone());
                    }
                    Output::Dispatch { group, .. } => {
                        for a in group["actions"].as_array().unwrap() {
                            ids.push(a["action_id"].as_str().unwrap().to_owned());
                        }
                    }
                    _ => {}
                }
            }
            for (ctx, owner) in &owners {
                if let Some(conv) = s.rt.conversation(S, ctx) {
                    prop_assert_eq!(&*conv.owner_id, owner.as_str());
                }
            }
        }
        // Every relay ends once its owner says done.
        let open: Vec<(String, String)> = s.rt.relays(S).filter(|r| r.is_active()).map(|r| (r.relay_id.clone(), r.owner.clone())).collect();
        for (relay, owner) in open {
            let out = s.relay(&owner, json!({ "relay_id": relay, "done": {} }));
            prop_assert_eq!(out.events("relay.done").len(), 1);
        }
    }

    /// A runtime taken back from a snapshot, at any point, goes on exactly as the original.
    #[test]
    fn a_runtime_restored_from_a_snapshot_behaves_as_the_original(
        ops in proptest::collection::vec(op(), 2..100),
        at in any::<prop::sample::Index>(),
    ) {
        // A small memory budget, so forgetting is part of what must survive a snapshot.
        let cfg = RuntimeConfig { memory_budget: 40, ..RuntimeConfig::default() };
        let at = at.index(ops.len());
        let mut original = Sim::with(cfg.clone());
        let mut restored = Sim::with(cfg.clone());
        for s in [&mut original, &mut restored] {
            s.agents = AGENTS.iter().map(|a| a.to_string()).collect();
        }
        let (mut contexts, mut ids) = (Vec::new(), Vec::new());
        for (i, op) in ops.iter().enumerate() {
            if i == at {
                let bytes = restored.rt.snapshot();
                restored.rt = Runtime::from_snapshot(cfg.clone(), &bytes).unwrap();
            }
            let (a, _) = apply(&mut original, op, &contexts, &ids);
            let (b, _) = apply(&mut restored, op, &contexts, &ids);
            prop_assert_eq!(&a.outputs, &b.outputs, "op {} after a snapshot at {}", i, at);
            for o in &a.outputs {
                match o {
                    Output::Stamp(st) => {
                        if let Some(ctx) = &st.context_id {
                            if !contexts.contains(ctx) {
                                contexts.push(ctx.clone());
                            }
                        }
                        ids.push(st.message_id.clone());
                    }
                    Output::Dispatch { group, .. } => {
                        for a in group["actions"].as_array().unwrap() {
                            ids.push(a["action_id"].as_str().unwrap().to_owned());
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Two agents that always answer what they last received — with replies, with new work,
    /// with or without explicit parents — are stopped within the guard's bound.
    #[test]
    fn a_pair_that_keeps_answering_each_other_is_stopped(
        choices in proptest::collection::vec((0u8..3, any::<bool>()), 40),
    ) {
        let cfg = RuntimeConfig::default();
        let bound = cfg.max_hops as usize + 1;
        let mut s = Sim::with(cfg);
        s.agents = vec!["a".into(), "b".into()];
        let first = s.send(Msg::user("a", "b"));
        let ctx = first.stamp().unwrap().context_id.clone().unwrap();
        let (mut last_id, mut last_from, mut last_was_work) = (first.id.clone(), "a", true);
        let mut sent = 1;
        let mut stopped = false;
        for (choice, explicit) in choices {
            let (from, to) = if last_from == "a" { ("b", "a") } else { ("a", "b") };
            let parent = explicit.then_some(last_id.as_str());
            // What the answering agent may send, given what it received.
            let m = match (choice, from == "b", last_was_work) {
                // The participant replies to the work it got.
                (0, true, true) => Msg { reply_to: parent, ..Msg::reply(from, to).ctx(&ctx) },
                // The owner follows up in the conversation.
                (0 | 1, false, _) => Msg { parent, ..Msg::user(from, to).ctx(&ctx) },
                // New work caused by the work received (its implicit parent).
                _ if last_was_work => Msg { parent, ..Msg::user(from, to) },
                // After a reply, answering means following up in the conversation: an owner
                // that reads a reply and starts work in a new conversation starts a fresh chain
                // (explicit parents count only within one conversation), which is not a loop.
                _ => Msg { parent, ..Msg::user(from, to).ctx(&ctx) },
            };
            let is_work = m.kind == MessageKind::User;
            let out = s.send(m);
            sent += 1;
            if out.refused() == Some("loop_suppressed") {
                stopped = true;
                break;
            }
            prop_assert!(out.ok(), "unexpected refusal {:?}", out.refused());
            last_id = out.id.clone();
            last_from = from;
            last_was_work = is_work;
        }
        prop_assert!(stopped, "never stopped after {} messages", sent);
        prop_assert!(sent <= bound, "stopped only after {} messages", sent);
    }
}
