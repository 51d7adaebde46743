//! The runtime's rules, scenario by scenario: ownership, relays with waits, blocked and
//! cancelled relays, the stale reply target, and each loop-guard rule. Event sequences are
//! pinned with insta.

mod sim;

use codex_weave_runtime::{MessageKind, RuntimeConfig};
use serde_json::json;
use sim::{Msg, Sim};

fn sim_with(agents: &[&str]) -> Sim {
    let mut s = Sim::new();
    s.agents = agents.iter().map(|a| a.to_string()).collect();
    s
}

#[test]
fn only_the_owner_follows_up_and_replies_go_to_the_owner() {
    let mut s = sim_with(&["o", "w", "x"]);
    let task = s.send(Msg::user("o", "w"));
    let ctx = task.stamp().unwrap().context_id.clone().unwrap();
    assert_eq!(task.stamp().unwrap().owner_id.as_deref(), Some("o"));
    // Another agent's follow-up in o's conversation: not_owner.
    assert_eq!(
        s.send(Msg::user("x", "w").ctx(&ctx)).refused(),
        Some("not_owner")
    );
    assert_eq!(
        s.send(Msg::control("w", "o").ctx(&ctx)).refused(),
        Some("not_owner")
    );
    // A reply to someone other than the owner: forbidden; to the owner: fine.
    assert_eq!(
        s.send(Msg::reply("w", "x").ctx(&ctx)).refused(),
        Some("forbidden")
    );
    assert_eq!(
        s.send(Msg::reply("w", "x")).refused(),
        Some("forbidden"),
        "pending reply target is o's conversation"
    );
    assert!(s.send(Msg::reply("w", "o")).ok());
    // The owner's follow-up is fine; the owner cannot "reply" in its own conversation.
    assert!(s.send(Msg::user("o", "w").ctx(&ctx)).ok());
    assert_eq!(
        s.send(Msg::reply("o", "w").ctx(&ctx)).refused(),
        Some("forbidden")
    );
    // Ownership never moves.
    assert_eq!(&*s.rt.conversation(sim::S, &ctx).unwrap().owner_id, "o");
}

#[test]
fn relay_to_two_targets_with_a_wait() {
    let mut s = sim_with(&["o", "a", "b"]);
    let accepted = s.relay("o", json!({
        "relay_id": "r1", "targets": ["a", "b", "ghost"],
        "actions": [
            { "type": "message", "dst": "a", "text": "part one", "expects_reply": true, "plan_step_id": "s1" },
            { "type": "message", "dst": "b", "text": "part two", "expects_reply": true, "plan_step_id": "s2" },
            { "type": "wait", "targets": ["a", "b", "ghost"], "plan_step_id": "s3" },
            { "type": "message", "dst": "a", "text": "combine", "expects_reply": true, "plan_step_id": "s4" }
        ]
    }));
    let reply = accepted.reply().unwrap();
    assert_eq!(reply["failures"][0]["dst"], "ghost");
    assert_eq!(reply["action_count"], 3);
    assert_eq!(
        accepted.dispatches().len(),
        2,
        "a and b get their first step; the third waits"
    );
    // a answers; still waiting for b.
    let after_a = s.send(Msg::reply("a", "o").reply_to("r1:1:0"));
    assert!(after_a.dispatches().is_empty());
    // b's terminal result releases the held step.
    let after_b = s.result("b", "o", "r1:1:1", true);
    assert_eq!(after_b.dispatches().len(), 1);
    let done = s.relay(
        "o",
        json!({ "relay_id": "r1", "done": { "relay_id": "r1", "summary": "all done" } }),
    );
    assert_eq!(done.events("relay.done").len(), 1);
    insta::assert_json_snapshot!(s.log);
}

#[test]
fn control_new_followed_by_a_message_in_one_group() {
    let mut s = sim_with(&["o", "w"]);
    let g = s.group(
        "o",
        None,
        &[("w", MessageKind::Control), ("w", MessageKind::User)],
    );
    assert!(g.ok());
    // Both actions share the group's conversation, owned by o.
    let stamps: Vec<_> = g
        .outputs
        .iter()
        .filter_map(|o| match o {
            codex_weave_runtime::Output::Stamp(s) => Some(s.context_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(stamps.len(), 2);
    assert_eq!(stamps[0], stamps[1]);
    assert!(s.send(Msg::reply("w", "o")).ok());
    insta::assert_json_snapshot!(s.log);
}

#[test]
fn a_relay_whose_target_is_busy_with_another_owner_is_blocked() {
    let mut s = sim_with(&["o1", "o2", "w"]);
    s.relay("o1", json!({ "relay_id": "r1", "targets": ["w"], "actions": [{ "type": "message", "dst": "w", "text": "mine" }] }));
    let blocked = s.relay("o2", json!({ "relay_id": "r2", "targets": ["w"], "actions": [{ "type": "message", "dst": "w", "text": "no, mine" }] }));
    let reply = blocked.reply().unwrap();
    assert_eq!(reply["status"], "blocked");
    assert!(reply["retry_after_ms"].as_u64().unwrap() > 0);
    assert!(blocked.dispatches().is_empty());
    assert!(
        s.rt.relay_state(sim::S, "r2").is_none(),
        "nothing of a blocked relay is kept"
    );
    // o2 may not finish o1's relay; once o1 does, w is free.
    assert_eq!(
        s.relay("o2", json!({ "relay_id": "r1", "done": {} }))
            .refused(),
        Some("not_owner")
    );
    s.relay(
        "o1",
        json!({ "relay_id": "r1", "done": { "summary": "ok" } }),
    );
    let retried = s.relay("o2", json!({ "relay_id": "r2", "targets": ["w"], "actions": [{ "type": "message", "dst": "w", "text": "now" }] }));
    assert_eq!(retried.reply().unwrap()["status"], "accepted");
    insta::assert_json_snapshot!(s.log);
}

#[test]
fn a_cancelled_relay_drops_what_was_held() {
    let mut s = sim_with(&["o", "w"]);
    s.relay(
        "o",
        json!({ "relay_id": "r", "targets": ["w"], "actions": [
        { "type": "message", "dst": "w", "text": "first" },
        { "type": "wait" },
        { "type": "message", "dst": "w", "text": "never sent" }
    ] }),
    );
    let cancelled = s.relay("o", json!({ "relay_id": "r", "cancel": true }));
    assert_eq!(cancelled.reply().unwrap()["dropped_actions"], 1);
    assert_eq!(cancelled.events("relay.done")[0]["status"], "cancelled");
    // A late reply to the cancelled relay changes nothing.
    assert!(s
        .send(Msg::reply("w", "o").reply_to("r:1:0"))
        .dispatches()
        .is_empty());
}

#[test]
fn after_a_relay_ends_a_reply_never_goes_to_its_stale_owner() {
    let mut s = sim_with(&["o1", "o2", "w"]);
    s.relay("o1", json!({ "relay_id": "r1", "targets": ["w"], "actions": [{ "type": "message", "dst": "w", "text": "t1" }] }));
    s.relay("o1", json!({ "relay_id": "r1", "done": {} }));
    // o2 gives w new work in a new conversation.
    s.send(Msg::user("o2", "w"));
    // w's reply (no context named) belongs to o2's conversation: to o1 it is refused.
    assert_eq!(s.send(Msg::reply("w", "o1")).refused(), Some("forbidden"));
    assert!(s.send(Msg::reply("w", "o2")).ok());
    // And w's reply to the ended relay's action does not restart anything.
    let late = s.send(Msg::reply("w", "o1").reply_to("r1:1:0"));
    assert!(late.dispatches().is_empty());
}

#[test]
fn owner_and_participant_answering_each_other_forever_stop_at_max_hops() {
    let mut s = sim_with(&["o", "w"]);
    let first = s.send(Msg::user("o", "w"));
    let ctx = first.stamp().unwrap().context_id.clone().unwrap();
    let mut stopped = None;
    for i in 0..40 {
        let out = if i % 2 == 0 {
            s.send(Msg::reply("w", "o"))
        } else {
            s.send(Msg::user("o", "w").ctx(&ctx))
        };
        if let Some(code) = out.refused() {
            stopped = Some((i, code.to_owned(), out.events("loop.suppressed")));
            break;
        }
        assert!(out.stamp().unwrap().hop <= 16);
    }
    let (i, code, events) = stopped.expect("stopped");
    assert_eq!(code, "loop_suppressed");
    assert_eq!(i, 15, "the 17th message of the chain is stopped");
    assert_eq!(events[0]["rule"], "max_hops");
    assert_eq!(events[0]["owner_id"], "o");
    insta::assert_json_snapshot!(events);
}

#[test]
fn two_agents_bouncing_new_work_stop_at_the_ping_pong_bound() {
    for explicit in [false, true] {
        let mut s = sim_with(&["a", "b"]);
        let mut last = s.send(Msg::user("a", "b"));
        let mut n = 1;
        let stopped = loop {
            let (from, to) = if n % 2 == 1 { ("b", "a") } else { ("a", "b") };
            let mut m = Msg::user(from, to);
            let parent = last.id.clone();
            if explicit {
                m = m.parent(&parent);
            }
            let out = s.send(m);
            n += 1;
            if out.refused().is_some() {
                break out;
            }
            last = out;
        };
        assert_eq!(stopped.refused(), Some("loop_suppressed"));
        assert_eq!(
            n, 6,
            "the 6th alternating new-work message is stopped (explicit parents: {explicit})"
        );
        let ev = stopped.events("loop.suppressed");
        assert_eq!(ev[0]["rule"], "ping_pong");
        if !explicit {
            insta::assert_json_snapshot!(ev);
        }
    }
}

#[test]
fn no_false_positives_thirty_tasks_in_a_row_and_a_relay_to_eight() {
    let mut s = sim_with(&["o", "w"]);
    for _ in 0..30 {
        let task = s.send(Msg::user("o", "w"));
        assert!(task.ok(), "{:?}", task.refused());
        let ctx = task.stamp().unwrap().context_id.clone().unwrap();
        assert!(s.send(Msg::reply("w", "o").ctx(&ctx)).ok());
    }
    let targets: Vec<String> = (0..8).map(|i| format!("t{i}")).collect();
    let mut s = Sim::new();
    s.agents = std::iter::once("o".to_string())
        .chain(targets.iter().cloned())
        .collect();
    let actions: Vec<_> = targets
        .iter()
        .map(|t| json!({ "type": "message", "dst": t, "text": "go" }))
        .collect();
    let accepted = s.relay(
        "o",
        json!({ "relay_id": "big", "targets": targets, "actions": actions }),
    );
    assert_eq!(accepted.dispatches().len(), 8);
    for (i, t) in targets.iter().enumerate() {
        assert!(s
            .send(Msg::reply(t, "o").reply_to(&format!("big:1:{i}")))
            .ok());
    }
    let more = s.relay("o", json!({ "relay_id": "big", "actions": [{ "type": "message", "dst": "t0", "text": "one more" }] }));
    assert!(more.ok());
    assert!(s
        .log
        .iter()
        .all(|l| l.get("emit").is_none_or(|e| e["type"] != "loop.suppressed")));
}

#[test]
fn limits_are_configurable() {
    let mut s = Sim::with(RuntimeConfig {
        max_hops: 3,
        max_ping_pong: 100,
        blocked_retry_ms: 5,
        ..RuntimeConfig::default()
    });
    s.agents = vec!["o".into(), "w".into()];
    let first = s.send(Msg::user("o", "w"));
    let ctx = first.stamp().unwrap().context_id.clone().unwrap();
    assert!(s.send(Msg::reply("w", "o")).ok()); // hop 2
    assert!(s.send(Msg::user("o", "w").ctx(&ctx)).ok()); // hop 3
    assert_eq!(
        s.send(Msg::reply("w", "o")).refused(),
        Some("loop_suppressed")
    ); // hop 4
}

#[test]
fn what_the_runtime_remembers_is_bounded_across_all_sessions() {
    use codex_weave_runtime::{Input, Message};
    let budget = 1_000;
    let mut rt = codex_weave_runtime::Runtime::new(RuntimeConfig {
        memory_budget: budget,
        ..RuntimeConfig::default()
    });
    let send = |session: &str, i: usize| {
        Input::Message(Message {
            session: session.into(),
            id: format!("m{i}"),
            from: "o".into(),
            to: vec!["w".into()],
            kind: MessageKind::User,
            context_id: None,
            parent_message_id: None,
            reply_to_action_id: None,
        })
    };
    // Each message: a new conversation, a new chain (node and pair run), an action reference.
    rt.handle(send("old", 0));
    for i in 1..=2 * budget {
        rt.handle(send(&format!("s{}", i % 20), i));
    }
    assert_eq!(rt.remembered(), budget, "one budget for every session");
    assert!(
        rt.conversation("old", "m0").is_none(),
        "the oldest is forgotten"
    );
    assert_eq!(rt.guard_node_count("old"), 0);
    assert_eq!(rt.guard_run_count("old"), 0);
    let last = 2 * budget;
    assert!(rt
        .conversation(&format!("s{}", last % 20), &format!("m{last}"))
        .is_some());
    let total: usize = (0..20)
        .map(|s| {
            let s = format!("s{s}");
            rt.conversation_count(&s) + rt.guard_node_count(&s) + rt.guard_run_count(&s)
        })
        .sum();
    assert!(total <= budget, "{total}");
}

#[test]
fn an_active_relay_and_its_conversations_outlive_the_budget() {
    let mut s = sim::Sim::with(RuntimeConfig {
        memory_budget: 50,
        ..RuntimeConfig::default()
    });
    s.agents = vec!["o".into(), "w".into(), "x".into()];
    let relay = s.relay(
        "o",
        json!({ "relay_id": "r1", "targets": ["w"], "actions": [{ "type": "message", "dst": "w", "text": "go", "expects_reply": true }] }),
    );
    assert!(relay.refused().is_none(), "{:?}", relay.outputs);
    for _ in 0..200 {
        assert!(s.send(Msg::user("x", "o")).ok());
    }
    assert!(s
        .rt
        .relay_state(sim::S, "r1")
        .is_some_and(|r| r.is_active()));
    assert!(s.rt.conversation(sim::S, "r1:w").is_some());
}
