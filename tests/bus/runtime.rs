//! The runtime's rules enforced by the real bus over its socket, on every entry point:
//! relays with waits, ownership (`not_owner`, `forbidden`), the loop guard (`max_hops`,
//! ping-pong) with `loop.suppressed` for the owner and watchers, blocked and cancelled relays,
//! the stale reply target, `control new` + messages in one group — and all of it after a
//! restart (the runtime's state comes back from the log).

use codex_weave_transport_uds::Envelope;
use serde_json::{json, Value};
use weave_test_kit::*;

/// A session with agents, each on its own connection, in the order given.
async fn team(bus: &BusProcess, ids: &[&str]) -> (String, Vec<Conn>) {
    let admin = bus.connect().await;
    let s = admin.create_session("team").await;
    let mut conns = Vec::new();
    for id in ids {
        let c = bus.connect().await;
        c.add_agent(&s, id, &id.to_uppercase()).await;
        conns.push(c);
    }
    (s, conns)
}

fn msg(s: &str, from: &str, dst: &str, payload: Value) -> Envelope {
    let mut env = envelope("message.send", Some(s), from, payload);
    env.dst = Some(dst.to_owned());
    env
}

fn relay(s: &str, from: &str, payload: Value) -> Envelope {
    envelope("relay.submit", Some(s), from, payload)
}

fn group(s: &str, from: &str, group_id: &str, context: Option<&str>, actions: Value) -> Envelope {
    let mut payload = json!({ "group_id": group_id, "actions": actions });
    if let Some(ctx) = context {
        payload["context"] = json!({ "context_id": ctx });
    }
    let mut env = envelope("action.submit", Some(s), from, payload);
    env.idempotency_key = Some(group_id.to_owned());
    env
}

fn code(resp: &Envelope) -> Option<&str> {
    resp.error.as_ref().map(|e| e.code.as_str())
}

fn ctx_of(delivery: &Envelope) -> String {
    delivery.payload.as_ref().unwrap()["context_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn owner_relays_to_two_agents_who_reply_then_finishes() {
    let bus = BusProcess::start();
    let (s, c) = team(&bus, &["o", "w1", "w2"]).await;
    let [mut o, mut w1, mut w2]: [Conn; 3] = c.try_into().ok().unwrap();
    let accepted = o
        .call(relay(&s, "o", json!({
            "relay_id": "r1", "targets": ["W1", "w2", "nobody"],
            "actions": [
                { "type": "message", "dst": "w1", "text": "part one", "expects_reply": true, "plan_step_id": "p1" },
                { "type": "message", "dst": "w2", "text": "part two", "expects_reply": true, "plan_step_id": "p2" },
                { "type": "wait", "targets": ["w1", "w2"], "plan_step_id": "p3" },
                { "type": "message", "dst": "w1", "text": "combine", "expects_reply": true, "plan_step_id": "p4" }
            ]
        })))
        .await;
    let p = accepted.payload.unwrap();
    assert_eq!(p["status"], "accepted");
    assert_eq!(p["failures"][0]["dst"], "nobody");
    assert_eq!(p["target_count"], 2);
    let w1_steps = p["targets"]["w1"]["actions"].as_array().unwrap();
    let types: Vec<_> = w1_steps
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["message", "wait", "message"],
        "the wait is listed among w1's steps"
    );
    assert_eq!(w1_steps[1]["action_index"], 2);
    assert_eq!(w1_steps[1]["plan_step_id"], "p3");
    let a1 = w1.next_of("action.submit").await;
    assert_eq!(a1.src, "o");
    let pay = a1.payload.as_ref().unwrap();
    assert_eq!(pay["context"]["owner_id"], "o");
    assert_eq!(
        pay["actions"].as_array().unwrap().len(),
        1,
        "the third step waits"
    );
    let first_action = pay["actions"][0]["action_id"].as_str().unwrap().to_owned();
    let a2 = w2.next_of("action.submit").await;
    let second_action = a2.payload.as_ref().unwrap()["actions"][0]["action_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        o.next_of("task.updated").await.payload.unwrap()["status"],
        "running"
    );

    // w1 replies; w2 reports a terminal result: the held step goes out.
    let r = w1
        .call(msg(
            &s,
            "w1",
            "o",
            json!({ "text": "one done", "kind": "reply", "reply_to_action_id": first_action }),
        ))
        .await;
    assert_eq!(code(&r), None);
    assert_eq!(
        o.next_of("message.send").await.payload.unwrap()["text"],
        "one done"
    );
    let mut result = envelope(
        "action.result",
        Some(&s),
        "w2",
        json!({ "action_id": second_action, "status": "completed", "group_id": "x" }),
    );
    result.dst = Some("o".into());
    assert_eq!(code(&w2.call(result).await), None);
    let held = w1.next_of("action.submit").await;
    assert_eq!(held.payload.unwrap()["actions"][0]["text"], "combine");

    let done = o
        .call(relay(
            &s,
            "o",
            json!({ "relay_id": "r1", "done": { "relay_id": "r1", "summary": "shipped" } }),
        ))
        .await;
    assert_eq!(done.payload.unwrap()["status"], "done");
    for c in [&mut o, &mut w1, &mut w2] {
        let d = c.next_of("relay.done").await;
        assert_eq!(d.src, "weave");
        assert_eq!(d.payload.unwrap()["summary"], "shipped");
    }
    assert_eq!(
        w2.next_of("task.done").await.payload.unwrap()["relay_id"],
        "r1"
    );
}

#[tokio::test]
async fn ownership_is_enforced_on_message_send_action_submit_and_relay_submit() {
    let bus = BusProcess::start();
    let (s, c) = team(&bus, &["o", "w", "x"]).await;
    let [o, mut w, x]: [Conn; 3] = c.try_into().ok().unwrap();
    o.send(&s, "o", "w", "please do it").await;
    let ctx = ctx_of(&w.next_of("message.send").await);
    // A non-owner's follow-up, three ways.
    assert_eq!(
        code(
            &x.call(msg(
                &s,
                "x",
                "w",
                json!({ "text": "me too", "context_id": ctx })
            ))
            .await
        ),
        Some("not_owner")
    );
    let g = group(
        &s,
        "x",
        "gx",
        Some(&ctx),
        json!([{ "type": "control", "dst": "w", "action_id": "gx1", "action_index": 0, "command": "interrupt" }]),
    );
    assert_eq!(code(&x.call(g).await), Some("not_owner"));
    o.call(relay(&s, "o", json!({ "relay_id": "ro", "targets": ["w"], "actions": [{ "type": "message", "dst": "w", "text": "t" }] }))).await;
    let steal = x.call(relay(&s, "x", json!({ "relay_id": "ro", "actions": [{ "type": "message", "dst": "w", "text": "mine" }] }))).await;
    assert_eq!(code(&steal), Some("not_owner"));
    assert_eq!(
        code(
            &x.call(relay(&s, "x", json!({ "relay_id": "ro", "done": {} })))
                .await
        ),
        Some("not_owner")
    );
    assert_eq!(
        code(
            &x.call(relay(&s, "x", json!({ "relay_id": "ro", "cancel": true })))
                .await
        ),
        Some("not_owner")
    );
    // A reply goes to the owner only.
    assert_eq!(
        code(
            &w.call(msg(
                &s,
                "w",
                "x",
                json!({ "text": "psst", "kind": "reply", "context_id": ctx })
            ))
            .await
        ),
        Some("forbidden")
    );
    assert_eq!(
        code(
            &w.call(msg(
                &s,
                "w",
                "o",
                json!({ "text": "done", "kind": "reply", "context_id": ctx })
            ))
            .await
        ),
        None
    );
}

/// Sends `n` answers back and forth until one is refused; returns how many got through and the
/// refusal.
async fn bounce(
    s: &str,
    a: (&Conn, &str),
    b: (&Conn, &str),
    mut next: impl FnMut(usize, &str, &str) -> Envelope,
) -> (usize, Envelope) {
    for i in 0..40 {
        let (from, to) = if i % 2 == 0 { (a, b) } else { (b, a) };
        let resp = from.0.call(next(i, from.1, to.1)).await;
        if resp.error.is_some() {
            return (i, resp);
        }
    }
    panic!("never stopped in session {s}");
}

#[tokio::test]
async fn owner_and_participant_answering_forever_are_stopped_at_max_hops_and_everyone_sees_it() {
    let bus = BusProcess::start();
    let (s, c) = team(&bus, &["o", "w"]).await;
    let [mut o, mut w]: [Conn; 2] = c.try_into().ok().unwrap();
    let mut watcher = bus.connect().await;
    watcher
        .call(envelope(
            "events.stream",
            Some(&s),
            "watcher",
            json!({ "follow": true }),
        ))
        .await;
    o.send(&s, "o", "w", "start").await;
    let ctx = ctx_of(&w.next_of("message.send").await);
    let (n, refusal) = bounce(&s, (&w, "w"), (&o, "o"), |i, from, to| {
        let kind = if i % 2 == 0 { "reply" } else { "user" };
        msg(
            &s,
            from,
            to,
            json!({ "text": format!("round {i}"), "kind": kind, "context_id": ctx }),
        )
    })
    .await;
    assert_eq!(code(&refusal), Some("loop_suppressed"));
    assert_eq!(n + 2, 17, "the 17th message of the chain is stopped");
    let notice = o.next_of("loop.suppressed").await;
    assert_eq!(notice.src, "weave");
    let p = notice.payload.unwrap();
    assert_eq!(
        (
            p["rule"].as_str(),
            p["hop"].as_u64(),
            p["owner_id"].as_str()
        ),
        (Some("max_hops"), Some(17), Some("o"))
    );
    let rec = loop {
        let r = watcher.next_of("events.record").await;
        if r.payload.as_ref().unwrap()["envelope"]["type"] == "loop.suppressed" {
            break r;
        }
    };
    assert_eq!(
        rec.payload.unwrap()["envelope"]["payload"]["chain_id"],
        p["chain_id"]
    );
}

#[tokio::test]
async fn agents_bouncing_new_work_are_stopped_by_the_ping_pong_rule_with_and_without_parents() {
    for explicit in [false, true] {
        let bus = BusProcess::start();
        let (s, c) = team(&bus, &["a", "b"]).await;
        let [a, b]: [Conn; 2] = c.try_into().ok().unwrap();
        let mut last = String::new();
        let mut ids = Vec::new();
        for i in 0..40 {
            let (conn, from, to) = if i % 2 == 0 {
                (&a, "a", "b")
            } else {
                (&b, "b", "a")
            };
            let mut payload = json!({ "text": format!("do {i}") });
            if explicit && !last.is_empty() {
                payload["parent_message_id"] = json!(last);
            }
            let resp = conn.call(msg(&s, from, to, payload)).await;
            if let Some(c) = code(&resp) {
                assert_eq!(c, "loop_suppressed");
                assert_eq!(
                    i + 1,
                    6,
                    "the 6th alternating new-work message is stopped (explicit: {explicit})"
                );
                break;
            }
            last = resp.payload.unwrap()["id"].as_str().unwrap().to_owned();
            ids.push(last.clone());
        }
        assert_eq!(ids.len(), 5);
    }
}

#[tokio::test]
async fn the_loop_guard_also_stops_action_groups_and_relays() {
    let bus = BusProcess::start();
    let (s, c) = team(&bus, &["a", "b"]).await;
    let [a, b]: [Conn; 2] = c.try_into().ok().unwrap();
    // Action groups of new work bouncing between two agents: ping-pong.
    let mut stopped = None;
    for i in 0..20 {
        let (conn, from, to) = if i % 2 == 0 {
            (&a, "a", "b")
        } else {
            (&b, "b", "a")
        };
        let gid = format!("g{i}");
        let g = group(
            &s,
            from,
            &gid,
            None,
            json!([{ "type": "message", "dst": to, "action_id": format!("{gid}.0"), "action_index": 0, "text": "go", "kind": "user" }]),
        );
        let resp = conn.call(g).await;
        if resp.error.is_some() {
            stopped = Some((i, resp));
            break;
        }
    }
    let (i, resp) = stopped.expect("stopped");
    assert_eq!((i + 1, code(&resp)), (6, Some("loop_suppressed")));

    // A relay whose owner keeps following up on the worker's replies: max_hops.
    let (s, c) = team(&bus, &["o", "w"]).await;
    let [o, mut w]: [Conn; 2] = c.try_into().ok().unwrap();
    let mut refused = None;
    for round in 0..20 {
        let resp = o.call(relay(&s, "o", json!({ "relay_id": "loop", "targets": ["w"], "actions": [{ "type": "message", "dst": "w", "text": format!("again {round}") }] }))).await;
        if resp.error.is_some() {
            refused = Some((round, resp));
            break;
        }
        let got = w.next_of("action.submit").await;
        let action = got.payload.unwrap()["actions"][0]["action_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let reply = w
            .call(msg(
                &s,
                "w",
                "o",
                json!({ "text": "ok", "kind": "reply", "reply_to_action_id": action }),
            ))
            .await;
        if reply.error.is_some() {
            refused = Some((round, reply));
            break;
        }
    }
    let (_, resp) = refused.expect("the relay loop is stopped");
    assert_eq!(code(&resp), Some("loop_suppressed"));
}

#[tokio::test]
async fn a_relay_to_a_busy_target_is_blocked_and_a_cancelled_relay_ends() {
    let bus = BusProcess::start();
    let (s, c) = team(&bus, &["o1", "o2", "w"]).await;
    let [mut o1, o2, mut w]: [Conn; 3] = c.try_into().ok().unwrap();
    o1.call(relay(&s, "o1", json!({ "relay_id": "r1", "targets": ["w"], "actions": [
        { "type": "message", "dst": "w", "text": "first" }, { "type": "wait" }, { "type": "message", "dst": "w", "text": "held" }
    ] }))).await;
    w.next_of("action.submit").await;
    let blocked = o2.call(relay(&s, "o2", json!({ "relay_id": "r2", "targets": ["w"], "actions": [{ "type": "message", "dst": "w", "text": "mine" }] }))).await;
    let p = blocked.payload.unwrap();
    assert_eq!(p["status"], "blocked");
    assert!(p["retry_after_ms"].as_u64().unwrap() > 0);
    let cancelled = o1
        .call(relay(&s, "o1", json!({ "relay_id": "r1", "cancel": true })))
        .await;
    assert_eq!(cancelled.payload.unwrap()["dropped_actions"], 1);
    for c in [&mut o1, &mut w] {
        assert_eq!(
            c.next_of("relay.done").await.payload.unwrap()["status"],
            "cancelled"
        );
    }
    w.none_of("action.submit", std::time::Duration::from_millis(200))
        .await;
    // Retried (same request, new envelope id): accepted now.
    let retried = o2.call(relay(&s, "o2", json!({ "relay_id": "r2", "targets": ["w"], "actions": [{ "type": "message", "dst": "w", "text": "mine" }] }))).await;
    assert_eq!(retried.payload.unwrap()["status"], "accepted");
}

#[tokio::test]
async fn a_reply_after_the_relay_ended_never_goes_to_the_stale_owner() {
    let bus = BusProcess::start();
    let (s, c) = team(&bus, &["o1", "o2", "w"]).await;
    let [o1, o2, mut w]: [Conn; 3] = c.try_into().ok().unwrap();
    o1.call(relay(&s, "o1", json!({ "relay_id": "r1", "targets": ["w"], "actions": [{ "type": "message", "dst": "w", "text": "t1" }] }))).await;
    w.next_of("action.submit").await;
    o1.call(relay(&s, "o1", json!({ "relay_id": "r1", "done": {} })))
        .await;
    o2.send(&s, "o2", "w", "new turn").await;
    w.next_of("message.send").await;
    let stale = w
        .call(msg(
            &s,
            "w",
            "o1",
            json!({ "text": "late answer", "kind": "reply" }),
        ))
        .await;
    assert_eq!(code(&stale), Some("forbidden"));
    assert_eq!(
        code(
            &w.call(msg(
                &s,
                "w",
                "o2",
                json!({ "text": "answer", "kind": "reply" })
            ))
            .await
        ),
        None
    );
}

#[tokio::test]
async fn control_new_then_messages_in_one_group_arrive_together_in_order() {
    let bus = BusProcess::start();
    let (s, c) = team(&bus, &["o", "w"]).await;
    let [o, mut w]: [Conn; 2] = c.try_into().ok().unwrap();
    let g = group(
        &s,
        "o",
        "g1",
        None,
        json!([
            { "type": "control", "dst": "w", "action_id": "c1", "action_index": 0, "command": "new" },
            { "type": "message", "dst": "w", "action_id": "m1", "action_index": 1, "text": "fresh start", "kind": "user" },
            { "type": "message", "dst": "w", "action_id": "m2", "action_index": 2, "text": "and this", "kind": "user" }
        ]),
    );
    assert_eq!(code(&o.call(g).await), None);
    let got = w.next_of("action.submit").await;
    let p = got.payload.unwrap();
    let ids: Vec<_> = p["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["c1", "m1", "m2"]);
    assert_eq!(p["context"]["owner_id"], "o");
    let reply = w
        .call(msg(
            &s,
            "w",
            "o",
            json!({ "text": "done", "kind": "reply", "reply_to_action_id": "m2" }),
        ))
        .await;
    assert_eq!(code(&reply), None);
}

#[tokio::test]
async fn after_a_kill_ownership_and_a_waiting_relay_carry_on_from_the_whole_log() {
    let (from_snapshot, replayed) =
        ownership_and_a_waiting_relay_carry_on(&[], BusProcess::kill9).await;
    assert_eq!(from_snapshot, 0);
    assert!(replayed > 5, "{replayed}");
}

#[tokio::test]
async fn after_a_kill_ownership_and_a_waiting_relay_carry_on_from_a_snapshot_and_its_tail() {
    let (from_snapshot, replayed) =
        ownership_and_a_waiting_relay_carry_on(&["--snapshot-every", "3"], BusProcess::kill9).await;
    assert_eq!(from_snapshot, 1);
    // The tail: fewer than `snapshot-every` records, and the last batch's (the relay's
    // dispatch, its task update and the delivery receipt of its action).
    assert!(replayed < 3 + 4, "only the tail is replayed: {replayed}");
}

#[tokio::test]
async fn after_a_clean_stop_ownership_and_a_waiting_relay_carry_on_from_the_snapshot_alone() {
    let (from_snapshot, replayed) = ownership_and_a_waiting_relay_carry_on(&[], |bus| {
        assert_eq!(bus.terminate(), Some(0));
    })
    .await;
    assert_eq!((from_snapshot, replayed), (1, 0));
}

/// Runs a conversation and a relay waiting for a reply, stops the bus with `stop`, starts it
/// again, and checks the runtime carries on. Returns the bus's `rebuild_from_snapshot` and
/// `rebuild_replayed` after the restart.
async fn ownership_and_a_waiting_relay_carry_on(
    args: &[&str],
    stop: impl FnOnce(&mut BusProcess),
) -> (u64, u64) {
    let mut bus = BusProcess::start_with(args);
    let (s, c) = team(&bus, &["o", "w", "x"]).await;
    let [o, mut w, _x]: [Conn; 3] = c.try_into().ok().unwrap();
    o.send(&s, "o", "w", "task").await;
    let ctx = ctx_of(&w.next_of("message.send").await);
    o.call(relay(&s, "o", json!({ "relay_id": "r", "targets": ["w"], "actions": [
        { "type": "message", "dst": "w", "text": "step 1" }, { "type": "wait" }, { "type": "message", "dst": "w", "text": "step 2" }
    ] }))).await;
    let first = w.next_of("action.submit").await;
    let action = first.payload.unwrap()["actions"][0]["action_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Stopped with its clients still connected: no disconnect is recorded before the stop.
    stop(&mut bus);
    drop((o, w));
    bus.spawn().expect("bus restarts");
    let o = bus.connect().await;
    let stats = o
        .ok("bus.stats", None, "t", Value::Null)
        .await
        .payload
        .unwrap();
    let counters = &stats["counters"];
    let rebuilt = (
        counters["rebuild_from_snapshot"].as_u64().unwrap(),
        counters["rebuild_replayed"].as_u64().unwrap(),
    );
    o.add_agent(&s, "o", "O").await;
    let x = bus.connect().await;
    x.add_agent(&s, "x", "X").await;
    let mut w = bus.connect().await;
    w.add_agent(&s, "w", "W").await;
    // The conversation is still o's.
    assert_eq!(
        code(
            &x.call(msg(
                &s,
                "x",
                "w",
                json!({ "text": "hijack", "context_id": ctx })
            ))
            .await
        ),
        Some("not_owner")
    );
    // The relay still waits for w's reply, and continues on it.
    let reply = w
        .call(msg(
            &s,
            "w",
            "o",
            json!({ "text": "1 done", "kind": "reply", "reply_to_action_id": action }),
        ))
        .await;
    assert_eq!(code(&reply), None);
    loop {
        let got = w.next_of("action.submit").await;
        if got.payload.as_ref().unwrap()["actions"][0]["text"] == "step 2" {
            break;
        }
    }
    rebuilt
}

#[tokio::test]
async fn max_hops_and_reply_rules_hold_for_action_groups_too() {
    let bus = BusProcess::start();
    let (s, c) = team(&bus, &["o", "w", "x"]).await;
    let [o, w, _x]: [Conn; 3] = c.try_into().ok().unwrap();
    // A reply action addressed to someone other than the conversation's owner: forbidden.
    o.call(group(&s, "o", "ctx-g", Some("conv"), json!([{ "type": "message", "dst": "w", "action_id": "t0", "action_index": 0, "text": "task", "kind": "user" }]))).await;
    let wrong = group(
        &s,
        "w",
        "bad",
        Some("conv"),
        json!([{ "type": "message", "dst": "x", "action_id": "r-bad", "action_index": 0, "text": "to x", "kind": "reply", "reply_to_action_id": "t0" }]),
    );
    assert_eq!(code(&w.call(wrong).await), Some("forbidden"));
    // Owner follow-ups and worker replies in one conversation, as groups: max_hops.
    let mut last = "t0".to_owned();
    let mut stopped = None;
    for i in 1..40 {
        let (conn, from, to, kind) = if i % 2 == 1 {
            (&w, "w", "o", "reply")
        } else {
            (&o, "o", "w", "user")
        };
        let id = format!("a{i}");
        let g = group(
            &s,
            from,
            &format!("g{i}"),
            Some("conv"),
            json!([{ "type": "message", "dst": to, "action_id": id, "action_index": 0, "text": "more", "kind": kind, "reply_to_action_id": last }]),
        );
        let resp = conn.call(g).await;
        if resp.error.is_some() {
            stopped = Some((i, resp));
            break;
        }
        last = id;
    }
    let (i, resp) = stopped.expect("stopped");
    assert_eq!((i + 1, code(&resp)), (17, Some("loop_suppressed")));
}

#[tokio::test]
async fn two_owners_relaying_work_at_each_other_are_stopped_by_ping_pong() {
    let bus = BusProcess::start();
    let (s, c) = team(&bus, &["a", "b"]).await;
    let [mut a, mut b]: [Conn; 2] = c.try_into().ok().unwrap();
    let mut stopped = None;
    for i in 0..20 {
        let (conn, from, to) = if i % 2 == 0 {
            (&mut a, "a", "b")
        } else {
            (&mut b, "b", "a")
        };
        let resp = conn.call(relay(&s, from, json!({ "relay_id": format!("r{i}"), "targets": [to], "actions": [{ "type": "message", "dst": to, "text": "your turn" }] }))).await;
        if resp.error.is_some() {
            stopped = Some((i, resp));
            break;
        }
        // The other side receives the work before it answers with work of its own.
        let other = if i % 2 == 0 { &mut b } else { &mut a };
        other.next_of("action.submit").await;
    }
    let (i, resp) = stopped.expect("stopped");
    assert_eq!((i + 1, code(&resp)), (6, Some("loop_suppressed")));
}

/// The runtime's memory budget is shared by all sessions, and a restart replays the sessions'
/// logs merged in commit order: a conversation opened last in the first session survives,
/// where replaying session after session would have let the second session's older traffic
/// push it out.
#[tokio::test]
async fn after_a_kill_the_shared_memory_budget_keeps_the_most_recent_conversations() {
    let mut bus = BusProcess::start_with(&["--runtime-memory", "60"]);
    let (first, c1) = team(&bus, &["o", "w", "x"]).await;
    let (second, c2) = team(&bus, &["p", "q"]).await;
    // Older traffic in the second session: 4 entries a message, more than the budget holds.
    for i in 0..20 {
        let resp = c2[0]
            .call(msg(
                &second,
                "p",
                "q",
                json!({ "text": format!("old {i}") }),
            ))
            .await;
        assert_eq!(code(&resp), None);
    }
    // Then, last of all, a conversation in the first session.
    let [o, mut w, x]: [Conn; 3] = c1.try_into().ok().unwrap();
    o.send(&first, "o", "w", "recent work").await;
    let ctx = ctx_of(&w.next_of("message.send").await);
    let follow_up = msg(
        &first,
        "x",
        "w",
        json!({ "text": "mine now", "context_id": ctx }),
    );
    assert_eq!(
        code(&x.call(follow_up.clone()).await),
        Some("not_owner"),
        "remembered live"
    );
    drop((o, w, x, c2));
    bus.restart();
    let x = bus.connect().await;
    x.add_agent(&first, "x", "X").await;
    let mut again = follow_up;
    again.id = String::new();
    assert_eq!(
        code(&x.call(again).await),
        Some("not_owner"),
        "still remembered after replaying the whole log"
    );
    let stats = bus
        .connect()
        .await
        .ok("bus.stats", None, "t", Value::Null)
        .await
        .payload
        .unwrap();
    assert!(
        stats["runtime_remembered"].as_u64().unwrap() <= 60,
        "{stats}"
    );
}
