//! Conversations as unchanged terminal clients and people hold them: answered work is done,
//! what clients look for is where they look, names of dead connections can be taken again, and
//! people are never stopped by the ping-pong rule. Against the real `weave-bus` binary.

use std::time::Duration;

use codex_weave_transport_uds::Envelope;
use serde_json::{json, Value};
use weave_test_kit::*;

/// An `action.submit` group from `src`.
fn group(s: &str, src: &str, group_id: &str, actions: Value) -> Envelope {
    let mut env = envelope(
        "action.submit",
        Some(s),
        src,
        json!({ "group_id": group_id, "actions": actions }),
    );
    env.idempotency_key = Some(group_id.to_owned());
    env
}

/// Work for `dst`: one user message action.
fn work(s: &str, src: &str, dst: &str, n: usize) -> Envelope {
    let actions = json!([{ "type": "message", "dst": dst, "action_id": format!("w{n}"),
        "action_index": 0, "text": format!("task {n}"), "kind": "user" }]);
    group(s, src, &format!("g{n}"), actions)
}

/// What an unchanged terminal client sends when it has answered action `action_id`: a group
/// with one reply action naming it, `reply_policy: "none"`, and never a `message.ack`.
fn client_reply(s: &str, src: &str, dst: &str, action_id: &str, text: &str) -> Envelope {
    let actions = json!([{ "type": "message", "dst": dst, "action_id": format!("re-{action_id}"),
        "action_index": 0, "text": text, "kind": "reply", "reply_to_action_id": action_id,
        "reply_policy": "none" }]);
    group(s, src, &format!("reply-{action_id}"), actions)
}

fn first_action_id(env: &Envelope) -> String {
    env.payload.as_ref().unwrap()["actions"][0]["action_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_answered_group_is_not_delivered_again_after_a_reconnect() {
    let bus = BusProcess::start();
    let admin = bus.connect().await;
    let s = admin.create_session("s").await;
    let mut owner = bus.connect().await;
    owner.add_agent(&s, "o1", "Owner").await;
    let mut worker = bus.connect().await;
    worker.add_agent(&s, "w1", "Worker").await;

    owner.call(work(&s, "o1", "Worker", 1)).await;
    let given = worker.next_of("action.submit").await;
    let action = first_action_id(&given);
    let sent = worker
        .call(client_reply(&s, "w1", "o1", &action, "done"))
        .await;
    assert_eq!(sent.error, None);
    let answer = owner.next_of("action.submit").await;
    assert_eq!(answer.payload.unwrap()["actions"][0]["text"], "done");

    // Both clients restart; neither is given again what it already handled.
    worker.ok("agent.list", Some(&s), "w1", Value::Null).await;
    drop(worker);
    drop(owner);
    admin.wait_status(&s, "w1", "offline").await;
    let mut worker = bus.connect().await;
    worker.add_agent(&s, "w1", "Worker").await;
    let mut owner = bus.connect().await;
    owner.add_agent(&s, "o1", "Owner").await;
    worker
        .none_of("action.submit", Duration::from_millis(400))
        .await;
    owner
        .none_of("action.submit", Duration::from_millis(100))
        .await;
    let list = admin
        .ok("agent.list", Some(&s), "t", Value::Null)
        .await
        .payload
        .unwrap();
    for a in list["agents"].as_array().unwrap() {
        assert_eq!(
            (a["queued"].as_u64(), a["unacked"].as_u64()),
            (Some(0), Some(0))
        );
    }
}

#[tokio::test]
async fn ten_answered_groups_never_stall_at_an_in_flight_cap_of_three() {
    let bus = BusProcess::start_with(&["--max-inflight-per-agent", "3"]);
    let admin = bus.connect().await;
    let s = admin.create_session("s").await;
    let mut owner = bus.connect().await;
    owner.add_agent(&s, "o1", "Owner").await;
    let mut worker = bus.connect().await;
    worker.add_agent(&s, "w1", "Worker").await;
    for n in 0..10 {
        assert_eq!(owner.call(work(&s, "o1", "w1", n)).await.error, None);
    }
    // A plain message queued behind the work, as a notice would be.
    owner.send(&s, "o1", "w1", "and one more thing").await;
    for n in 0..10 {
        let given = worker.next_of("action.submit").await;
        let action = first_action_id(&given);
        assert_eq!(action, format!("w{n}"));
        worker
            .call(client_reply(&s, "w1", "o1", &action, &format!("done {n}")))
            .await;
    }
    assert_eq!(
        text_of(&worker.next_of("message.send").await),
        "and one more thing"
    );
    // The owner, which never acks replies, got all ten.
    for n in 0..10 {
        let answer = owner.next_of("action.submit").await;
        assert_eq!(
            answer.payload.unwrap()["actions"][0]["text"],
            format!("done {n}")
        );
    }
}

#[tokio::test]
async fn a_group_with_several_actions_is_done_when_its_last_is_answered() {
    let bus = BusProcess::start();
    let admin = bus.connect().await;
    let s = admin.create_session("s").await;
    let owner = bus.connect().await;
    owner.add_agent(&s, "o1", "Owner").await;
    let mut worker = bus.connect().await;
    worker.add_agent(&s, "w1", "Worker").await;
    let actions = json!([
        { "type": "message", "dst": "w1", "action_id": "a", "action_index": 0, "text": "one", "kind": "user" },
        { "type": "message", "dst": "w1", "action_id": "b", "action_index": 1, "text": "two", "kind": "user" }
    ]);
    owner.call(group(&s, "o1", "g", actions)).await;
    worker.next_of("action.submit").await;
    // `a` is answered by a plain `message.send` naming it; `b` is still open.
    let mut reply = message(&s, "w1", "o1", "one done");
    reply.payload = Some(json!({ "text": "one done", "kind": "reply", "reply_to_action_id": "a" }));
    assert_eq!(worker.call(reply).await.error, None);
    worker.ok("agent.list", Some(&s), "w1", Value::Null).await;
    drop(worker);
    admin.wait_status(&s, "w1", "offline").await;
    let mut worker = bus.connect().await;
    worker.add_agent(&s, "w1", "Worker").await;
    let again = worker.next_of("action.submit").await;
    assert_eq!(meta_weave(&again, "redelivered"), Some(&json!(true)));
    // Answering the last action completes the group (and those before it).
    let mut result = envelope(
        "action.result",
        Some(&s),
        "w1",
        json!({ "group_id": "g", "action_id": "b", "action_index": 1, "status": "completed" }),
    );
    result.dst = Some("o1".into());
    assert_eq!(worker.call(result).await.error, None);
    drop(worker);
    admin.wait_status(&s, "w1", "offline").await;
    let mut worker = bus.connect().await;
    worker.add_agent(&s, "w1", "Worker").await;
    worker
        .none_of("action.submit", Duration::from_millis(400))
        .await;
}

#[tokio::test]
async fn a_relay_lists_its_wait_steps_among_the_targets_actions() {
    let bus = BusProcess::start();
    let admin = bus.connect().await;
    let s = admin.create_session("s").await;
    let owner = bus.connect().await;
    owner.add_agent(&s, "o1", "Owner").await;
    let w1 = bus.connect().await;
    w1.add_agent(&s, "w1", "One").await;
    let w2 = bus.connect().await;
    w2.add_agent(&s, "w2", "Two").await;
    let relay = envelope(
        "relay.submit",
        Some(&s),
        "o1",
        json!({ "relay_id": "r1", "targets": ["w1", "w2"], "actions": [
            { "type": "message", "dst": "w1", "plan_step_id": "p1", "text": "first" },
            { "type": "wait", "plan_step_id": "p2", "targets": ["w1"] },
            { "type": "message", "dst": "w2", "plan_step_id": "p3", "text": "then" }
        ]}),
    );
    let accepted = owner.call(relay).await;
    assert_eq!(accepted.error, None);
    let accepted = accepted.payload.unwrap();
    let steps = |t: &str| -> Vec<Value> {
        accepted["targets"][t]["actions"]
            .as_array()
            .unwrap()
            .clone()
    };
    let one = steps("w1");
    assert_eq!(one.len(), 2, "{one:?}");
    assert_eq!(
        (one[0]["type"].as_str(), one[0]["action_index"].as_u64()),
        (Some("message"), Some(0))
    );
    let wait = &one[1];
    assert_eq!(wait["type"], "wait");
    assert_eq!(wait["plan_step_id"], "p2");
    assert_eq!(wait["action_index"], 1);
    assert_eq!(wait["targets"], json!(["w1"]));
    assert!(wait["action_id"].as_str().is_some_and(|a| !a.is_empty()));
    let two = steps("w2");
    assert_eq!(two.len(), 1);
    assert_eq!(two[0]["action_index"], 2);
    // The top-level list stays for clients that read it.
    assert_eq!(accepted["waits"][0]["plan_step_id"], "p2");
}

#[tokio::test]
async fn closing_a_session_tells_each_connected_agent() {
    let bus = BusProcess::start();
    let admin = bus.connect().await;
    let s = admin.create_session("s").await;
    let mut a = bus.connect().await;
    a.add_agent(&s, "a1", "Alice").await;
    let mut b = bus.connect().await;
    b.add_agent(&s, "b1", "Bob").await;
    admin
        .ok("session.close", Some(&s), "admin", Value::Null)
        .await;
    for (conn, id) in [(&mut a, "a1"), (&mut b, "b1")] {
        let closed = conn.next_of("session.closed").await;
        assert_eq!(closed.session.as_deref(), Some(s.as_str()));
        assert_eq!(closed.dst.as_deref(), Some(id));
        assert_eq!(closed.src, "weave");
    }
}

#[tokio::test]
async fn a_rename_reaches_the_others_addressed_to_each() {
    let bus = BusProcess::start();
    let admin = bus.connect().await;
    let s = admin.create_session("s").await;
    let a = bus.connect().await;
    a.add_agent(&s, "a1", "Alice").await;
    let mut b = bus.connect().await;
    b.add_agent(&s, "b1", "Bob").await;
    a.ok(
        "agent.update",
        Some(&s),
        "a1",
        json!({ "id": "a1", "name": "Alicia" }),
    )
    .await;
    let updated = b.next_of("agent.updated").await;
    assert_eq!(updated.dst.as_deref(), Some("b1"));
    assert_eq!(updated.payload.unwrap()["name"], "Alicia");
}

/// Restarting clients do not wait for the bus to notice that their old connection closed: the
/// moment it is closed, its id and its name are free (crash and restart need no proof). Mail
/// that was delivered but not acked goes to the new connection.
#[tokio::test]
async fn a_client_that_restarts_the_instant_it_closed_gets_its_id_and_name_back() {
    let bus = BusProcess::start();
    let admin = bus.connect().await;
    let s = admin.create_session("s").await;
    let alice = bus.connect().await;
    alice.add_agent(&s, "a1", "Alice").await;
    let mut bob = bus.connect().await;
    bob.add_agent(&s, "b1", "Bob").await;
    for round in 0..40 {
        alice.send(&s, "a1", "b1", &format!("m{round}")).await;
        let got = bob.next_of("message.send").await;
        assert_eq!(text_of(&got), format!("m{round}"));
        drop(bob);
        // Same id: the usual restart.
        bob = bus.connect().await;
        bob.add_agent(&s, "b1", "Bob").await;
        let again = bob.next_of("message.send").await;
        assert_eq!(text_of(&again), format!("m{round}"), "round {round}");
        bob.ack(&s, "b1", &again);
        // A new id taking the name of the one that just closed.
        let carol = bus.connect().await;
        carol.add_agent(&s, &format!("c{round}"), "Carol").await;
        drop(carol);
        let carol = bus.connect().await;
        carol.add_agent(&s, &format!("c{round}x"), "Carol").await;
    }
}

#[tokio::test]
async fn the_name_of_a_crashed_agent_can_be_taken_again() {
    let bus = BusProcess::start();
    let admin = bus.connect().await;
    let s = admin.create_session("s").await;
    let old = bus.connect().await;
    old.add_agent(&s, "old", "Bob").await;
    // While it is connected, the name is its own.
    let other = bus.connect().await;
    let code = other
        .err(
            "agent.add",
            Some(&s),
            "new",
            json!({ "id": "new", "name": "bob" }),
        )
        .await;
    assert_eq!(code, "name_taken");
    // Its process dies; a new one takes the name at once.
    drop(old);
    admin.wait_status(&s, "old", "offline").await;
    let added = other
        .ok(
            "agent.add",
            Some(&s),
            "new",
            json!({ "id": "new", "name": "Bob" }),
        )
        .await;
    assert_eq!(added.payload.unwrap()["name"], "Bob");
    let list = admin.ok("agent.list", Some(&s), "t", Value::Null).await;
    let agents = list.payload.unwrap()["agents"].as_array().unwrap().clone();
    let named = |id: &str| {
        agents
            .iter()
            .find(|a| a["id"] == id)
            .map(|a| a["name"].clone())
    };
    assert_eq!(named("new"), Some(json!("Bob")));
    assert_eq!(named("old"), Some(Value::Null));
    // Who took it is recorded.
    let history = admin
        .ok("events.history", Some(&s), "t", json!({ "limit": 100 }))
        .await
        .payload
        .unwrap();
    let taken = history["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["envelope"])
        .find(|e| e["type"] == "agent.updated" && e["payload"]["taken_by"] == "new")
        .cloned();
    assert_eq!(taken.unwrap()["payload"]["id"], "old");
}

#[tokio::test]
async fn the_same_instance_under_a_new_id_gets_what_was_queued_for_it() {
    let mut bus = BusProcess::start();
    let admin = bus.connect().await;
    let s = admin.create_session("s").await;
    let owner = bus.connect().await;
    owner.add_agent(&s, "o1", "Owner").await;
    let old = bus.connect().await;
    old.ok(
        "agent.add",
        Some(&s),
        "gen1",
        json!({ "id": "gen1", "name": "Bob", "instance": "laptop-bob" }),
    )
    .await;
    drop(old);
    admin.wait_status(&s, "gen1", "offline").await;
    owner.send(&s, "o1", "Bob", "while you were away").await;
    owner.call(work(&s, "o1", "Bob", 1)).await;

    let mut new = bus.connect().await;
    let added = new
        .ok(
            "agent.add",
            Some(&s),
            "gen2",
            json!({ "id": "gen2", "name": "Bob", "instance": "laptop-bob" }),
        )
        .await;
    assert_eq!(added.payload.unwrap()["queued"], 2);
    assert_eq!(
        text_of(&new.next_of("message.send").await),
        "while you were away"
    );
    let given = new.next_of("action.submit").await;
    assert_eq!(first_action_id(&given), "w1", "the group keeps its actions");
    let list = admin.ok("agent.list", Some(&s), "t", Value::Null).await;
    let ids: Vec<String> = list.payload.unwrap()["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!ids.contains(&"gen1".to_owned()), "{ids:?}");

    // Unanswered, the moved group survives a restart of the bus, actions and all.
    drop(new);
    bus.restart();
    let new = bus.connect().await;
    let mut new = new;
    new.ok(
        "agent.add",
        Some(&s),
        "gen2",
        json!({ "id": "gen2", "name": "Bob", "instance": "laptop-bob" }),
    )
    .await;
    let again = new.next_of("action.submit").await;
    assert_eq!(first_action_id(&again), "w1");
}

#[tokio::test]
async fn two_people_alternate_twenty_messages_without_the_ping_pong_rule() {
    let bus = BusProcess::start();
    let admin = bus.connect().await;
    let s = admin.create_session("s").await;
    let mut people = Vec::new();
    for (id, name) in [("p1", "Ann"), ("p2", "Ben")] {
        let c = bus.connect().await;
        c.ok(
            "agent.add",
            Some(&s),
            id,
            json!({ "id": id, "name": name, "kind": "human" }),
        )
        .await;
        people.push(c);
    }
    let (mut ann, mut ben) = (people.remove(0), people.remove(0));
    let mut last: Option<String> = None;
    for turn in 0..20 {
        let (from, to, to_id) = match turn % 2 {
            0 => (&ann, &mut ben, "p2"),
            _ => (&ben, &mut ann, "p1"),
        };
        let src = if to_id == "p2" { "p1" } else { "p2" };
        let mut m = message(&s, src, to_id, &format!("turn {turn}"));
        if let Some(parent) = &last {
            m.payload =
                Some(json!({ "text": format!("turn {turn}"), "parent_message_id": parent }));
        }
        let sent = from.call(m).await;
        assert_eq!(sent.error, None, "turn {turn} was stopped");
        let got = to.next_of("message.send").await;
        assert_eq!(text_of(&got), format!("turn {turn}"));
        last = got.corr.clone();
    }
    // Two agents doing the same are stopped at the sixth alternation.
    let mut bots = Vec::new();
    for (id, name) in [("b1", "Bot1"), ("b2", "Bot2")] {
        let c = bus.connect().await;
        c.add_agent(&s, id, name).await;
        bots.push(c);
    }
    let mut stopped = None;
    let mut last: Option<String> = None;
    for turn in 0..10 {
        let (src, dst) = if turn % 2 == 0 {
            ("b1", "b2")
        } else {
            ("b2", "b1")
        };
        let conn = if turn % 2 == 0 { &bots[0] } else { &bots[1] };
        let mut m = message(&s, src, dst, "again");
        if let Some(parent) = &last {
            m.payload = Some(json!({ "text": "again", "parent_message_id": parent }));
        }
        let sent = conn.call(m).await;
        if let Some(e) = sent.error {
            stopped = Some((turn, e.code));
            break;
        }
        last = sent.payload.unwrap()["id"].as_str().map(str::to_owned);
    }
    assert_eq!(stopped.map(|(_, c)| c), Some("loop_suppressed".to_owned()));
}
