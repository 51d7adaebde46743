//! Delivery over the real socket: to online and offline agents, FIFO per target, acks,
//! redelivery after reconnect and after an ack timeout (never after an ack), the max_deliver cap
//! with dead letters, and how action groups are acknowledged.

use std::time::Duration;

use codex_weave_transport_uds::{Ack, AckMode};
use serde_json::{json, Value};
use weave_test_kit::*;

async fn session_with(bus: &BusProcess, agents: &[(&str, &str)]) -> (String, Vec<Conn>) {
    let admin = bus.connect().await;
    let s = admin.create_session("s").await;
    let mut conns = Vec::new();
    for (id, name) in agents {
        let c = bus.connect().await;
        c.add_agent(&s, id, name).await;
        conns.push(c);
    }
    (s, conns)
}

#[tokio::test]
async fn message_to_an_online_agent_arrives_with_corr_ack_and_origin_name() {
    let bus = BusProcess::start();
    let (s, mut c) = session_with(&bus, &[("a1", "Alice"), ("b1", "Bob")]).await;
    let sent = c[0].send(&s, "a1", "bob", "hello bob").await;
    let payload = sent.payload.unwrap();
    assert_eq!(payload["dst"], "b1");
    let got = c[1].next_of("message.send").await;
    assert_eq!(got.src, "a1");
    assert_eq!(got.dst.as_deref(), Some("b1"));
    assert_eq!(got.session.as_deref(), Some(s.as_str()));
    assert_eq!(got.corr.as_deref(), Some(payload["id"].as_str().unwrap()));
    assert_eq!(got.ack.as_ref().unwrap().mode, Some(AckMode::Auto));
    assert_eq!(meta_weave(&got, "origin_src_name").unwrap(), "Alice");
    assert_eq!(text_of(&got), "hello bob");

    // The inbox topic addresses the same agent.
    let mut by_topic = envelope(
        "message.send",
        Some(&s),
        "a1",
        json!({ "text": "via topic" }),
    );
    by_topic.topic = Some("agent.Bob.inbox".into());
    assert_eq!(c[0].call(by_topic).await.error, None);
    assert_eq!(text_of(&c[1].next_of("message.send").await), "via topic");
}

#[tokio::test]
async fn messages_for_an_offline_agent_wait_durably_and_arrive_in_order_when_it_returns() {
    let mut bus = BusProcess::start();
    let (s, c) = session_with(&bus, &[("a1", "Alice"), ("b1", "Bob")]).await;
    drop(c.into_iter().nth(1));
    let alice = bus.connect().await;
    alice.add_agent(&s, "a1", "Alice").await;
    for i in 0..50 {
        alice.send(&s, "a1", "b1", &format!("m{i}")).await;
    }
    bus.restart(); // queued, not just in memory
    let mut bob = bus.connect().await;
    let joined = bob.add_agent(&s, "b1", "Bob").await;
    assert_eq!(joined.payload.unwrap()["queued"], 50);
    for i in 0..50 {
        let got = bob.next_of("message.send").await;
        assert_eq!(text_of(&got), format!("m{i}"));
        bob.ack(&s, "b1", &got);
    }
}

#[tokio::test]
async fn first_deliveries_are_fifo_per_target() {
    let bus = BusProcess::start();
    let (s, mut c) = session_with(&bus, &[("a1", "A"), ("a2", "A2"), ("b1", "B")]).await;
    // Two senders interleave; each sender's messages arrive in the order sent.
    let (a, rest) = c.split_at_mut(1);
    let (a2, b) = rest.split_at_mut(1);
    let n = 500;
    let send_a = async {
        for i in 0..n {
            a[0].send(&s, "a1", "b1", &format!("a:{i}")).await;
        }
    };
    let send_a2 = async {
        for i in 0..n {
            a2[0].send(&s, "a2", "b1", &format!("b:{i}")).await;
        }
    };
    tokio::join!(send_a, send_a2);
    let (mut next_a, mut next_b) = (0, 0);
    for _ in 0..2 * n {
        let got = b[0].next_of("message.send").await;
        let text = text_of(&got).to_owned();
        let (who, i) = text.split_once(':').unwrap();
        let i: usize = i.parse().unwrap();
        if who == "a" {
            assert_eq!(i, next_a);
            next_a += 1;
        } else {
            assert_eq!(i, next_b);
            next_b += 1;
        }
        b[0].ack(&s, "b1", &got);
    }
}

#[tokio::test]
async fn unacked_messages_are_redelivered_after_reconnect_first_and_in_order_acked_never() {
    let bus = BusProcess::start();
    let (s, c) = session_with(&bus, &[("a1", "Alice"), ("b1", "Bob")]).await;
    let mut c = c.into_iter();
    let alice = c.next().unwrap();
    let mut bob = c.next().unwrap();
    for i in 0..6 {
        alice.send(&s, "a1", "b1", &format!("m{i}")).await;
    }
    // Bob acks m0, m2 and m4 only, then his connection drops.
    for i in 0..6 {
        let got = bob.next_of("message.send").await;
        assert_eq!(text_of(&got), format!("m{i}"));
        if i % 2 == 0 {
            bob.ack(&s, "b1", &got);
        }
    }
    // Make sure the acks were applied before the drop (a read after them on the same socket).
    bob.ok("agent.list", Some(&s), "b1", Value::Null).await;
    drop(bob);
    alice.wait_status(&s, "b1", "offline").await; // else "new" may go to the dying connection
    alice.send(&s, "a1", "b1", "new").await;
    let mut bob = bus.connect().await;
    bob.add_agent(&s, "b1", "Bob").await;
    for expected in ["m1", "m3", "m5"] {
        let got = bob.next_of("message.send").await;
        assert_eq!(text_of(&got), expected);
        assert_eq!(meta_weave(&got, "redelivered"), Some(&json!(true)));
        assert_eq!(meta_weave(&got, "delivery_count"), Some(&json!(2)));
        bob.ack(&s, "b1", &got);
    }
    let got = bob.next_of("message.send").await;
    assert_eq!(text_of(&got), "new");
    assert_eq!(meta_weave(&got, "redelivered"), None);
    bob.ack(&s, "b1", &got);
    bob.ok("agent.list", Some(&s), "b1", Value::Null).await;
    drop(bob);
    let mut bob = bus.connect().await;
    bob.add_agent(&s, "b1", "Bob").await;
    bob.none_of("message.send", Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn ack_timeout_redelivers_then_dead_letters_at_max_deliver() {
    let bus = BusProcess::start_with(&["--max-deliver", "3"]);
    let (s, c) = session_with(&bus, &[("a1", "Alice"), ("b1", "Bob")]).await;
    let mut c = c.into_iter();
    let mut alice = c.next().unwrap();
    let mut bob = c.next().unwrap();
    let mut env = message(&s, "a1", "b1", "ack me");
    env.ack = Some(Ack {
        mode: Some(AckMode::Manual),
        timeout_ms: Some(100),
    });
    let sent = alice.call(env).await;
    let id = sent.payload.unwrap()["id"].as_str().unwrap().to_owned();
    for count in 1..=3 {
        let got = bob.next_of("message.send").await;
        assert_eq!(got.corr.as_deref(), Some(id.as_str()));
        if count > 1 {
            assert_eq!(meta_weave(&got, "delivery_count"), Some(&json!(count)));
        }
    }
    let failed = alice.next_of("delivery.failed").await;
    assert_eq!(failed.src, "weave");
    let p = failed.payload.unwrap();
    assert_eq!(
        (
            p["message_id"].as_str(),
            p["reason"].as_str(),
            p["delivery_count"].as_u64()
        ),
        (Some(id.as_str()), Some("max_deliver"), Some(3))
    );
    let dead = alice
        .ok("deliveries.dead", Some(&s), "a1", Value::Null)
        .await
        .payload
        .unwrap();
    assert_eq!(dead["dead"].as_array().unwrap().len(), 1);
    assert_eq!(dead["dead"][0]["envelope"]["id"], id.as_str());
    assert_eq!(dead["dead"][0]["dst"], "b1");
}

/// Two senders may choose the same envelope id (ids can be read from the history): each
/// delivery is settled by its own ack, and neither comes again after a reconnect.
#[tokio::test]
async fn two_senders_with_one_envelope_id_are_both_acked() {
    let bus = BusProcess::start();
    let (s, c) = session_with(&bus, &[("a1", "Alice"), ("a2", "Ann"), ("b1", "Bob")]).await;
    let mut c = c.into_iter();
    let (alice, ann, mut bob) = (c.next().unwrap(), c.next().unwrap(), c.next().unwrap());
    for (from, conn) in [("a1", &alice), ("a2", &ann)] {
        let mut env = message(&s, from, "b1", &format!("from {from}"));
        env.id = "same-id".into();
        let sent = conn.call(env).await;
        assert!(sent.error.is_none(), "{sent:?}");
    }
    for from in ["a1", "a2"] {
        let got = bob.next_of("message.send").await;
        assert_eq!(text_of(&got), format!("from {from}"));
        assert_eq!(got.corr.as_deref(), Some("same-id"));
        bob.ack(&s, "b1", &got);
    }
    bob.ok("agent.list", Some(&s), "b1", Value::Null).await;
    drop(bob);
    alice.wait_status(&s, "b1", "offline").await;
    let mut bob = bus.connect().await;
    bob.add_agent(&s, "b1", "Bob").await;
    bob.none_of("message.send", Duration::from_millis(300))
        .await;
}

/// `message.ack` with `payload.want_response: true` is answered once its removal is committed
/// (JetStream's double ack): after that answer even a kill -9 does not bring the message back.
/// One that names nothing pending says so; a plain ack is still never answered.
#[tokio::test]
async fn a_durable_ack_is_answered_after_its_commit_and_survives_kill_9() {
    let mut bus = BusProcess::start();
    let (s, c) = session_with(&bus, &[("a1", "Alice"), ("b1", "Bob")]).await;
    let mut c = c.into_iter();
    let (alice, mut bob) = (c.next().unwrap(), c.next().unwrap());
    let mut env = message(&s, "a1", "b1", "ack me durably");
    env.ack = Some(Ack {
        mode: Some(AckMode::Manual),
        timeout_ms: None,
    });
    alice.call(env).await;
    let got = bob.next_of("message.send").await;
    let mut ack = envelope(
        "message.ack",
        Some(&s),
        "b1",
        json!({ "want_response": true }),
    );
    ack.corr = got.corr.clone();
    let answer = bob.call(ack.clone()).await;
    assert_eq!(answer.error, None, "{answer:?}");
    assert_eq!(
        answer.payload.unwrap(),
        json!({ "corr": got.corr, "acked": true })
    );
    let again = bob.call(ack).await;
    assert_eq!(again.error.unwrap().code, "not_pending");

    bus.kill9();
    bus.restart();
    let mut bob = bus.connect().await;
    bob.add_agent(&s, "b1", "Bob").await;
    bob.none_of("message.send", Duration::from_millis(300))
        .await;
}

/// Past `--max-memory` a queued message keeps only a stub in memory and is read back from the
/// store when sent: it arrives whole, in order, with its meta, and a dead letter keeps it whole.
#[tokio::test]
async fn messages_past_the_memory_budget_are_read_back_from_the_store_whole() {
    let bus = BusProcess::start_with(&["--max-memory", "1", "--max-deliver", "2"]);
    let (s, c) = session_with(&bus, &[("a1", "Alice"), ("b1", "Bob")]).await;
    let mut c = c.into_iter();
    let (alice, bob) = (c.next().unwrap(), c.next().unwrap());
    drop(bob);
    alice.wait_status(&s, "b1", "offline").await;
    for i in 0..50 {
        let mut env = message(
            &s,
            "a1",
            "b1",
            &format!("m{i} é \"q\" {}", "x".repeat(i * 10)),
        );
        env.meta = Some(json!({ "app": i }));
        alice.call(env).await;
    }
    let stats = alice
        .ok("bus.stats", None, "a1", Value::Null)
        .await
        .payload
        .unwrap();
    assert!(
        stats["pending_bytes_in_memory"].as_u64().unwrap() <= 1,
        "{stats}"
    );
    let mut bob = bus.connect().await;
    bob.add_agent(&s, "b1", "Bob").await;
    for i in 0..50 {
        let got = bob.next_of("message.send").await;
        assert_eq!(
            text_of(&got),
            format!("m{i} é \"q\" {}", "x".repeat(i * 10))
        );
        assert_eq!(got.meta.as_ref().unwrap()["app"], json!(i));
        assert!(meta_weave(&got, "seq").is_some());
        if i > 0 {
            bob.ack(&s, "b1", &got);
        }
    }
    // m0 was never acked: after a reconnect it comes again (read back again), then is
    // dead-lettered at max_deliver with its whole envelope.
    bob.ok("agent.list", Some(&s), "b1", Value::Null).await;
    drop(bob);
    alice.wait_status(&s, "b1", "offline").await;
    let mut bob = bus.connect().await;
    bob.add_agent(&s, "b1", "Bob").await;
    let again = bob.next_of("message.send").await;
    assert_eq!(text_of(&again), "m0 é \"q\" ");
    drop(bob);
    alice.wait_status(&s, "b1", "offline").await;
    let bob = bus.connect().await;
    bob.add_agent(&s, "b1", "Bob").await;
    let dead = eventually("m0 dead-lettered", || async {
        let dead = alice
            .ok("deliveries.dead", Some(&s), "a1", Value::Null)
            .await
            .payload
            .unwrap();
        (!dead["dead"].as_array().unwrap().is_empty()).then_some(dead)
    })
    .await;
    assert_eq!(
        dead["dead"][0]["envelope"]["payload"]["text"],
        "m0 é \"q\" "
    );
    drop(bob);
}

// That an acked message is not sent again when its timeout passes, and that a message sent
// with `ack.mode: none` is never sent again, are checked on a fake clock, without sleeping:
// `weave-bus/src/engine/inboxes/tests.rs`.

#[tokio::test]
async fn removing_an_agent_dead_letters_its_queue_and_tells_each_sender() {
    let bus = BusProcess::start();
    let (s, c) = session_with(&bus, &[("a1", "Alice"), ("b1", "Bob")]).await;
    let mut c = c.into_iter();
    let mut alice = c.next().unwrap();
    let bob = c.next().unwrap();
    alice.send(&s, "a1", "b1", "one").await;
    alice.send(&s, "a1", "b1", "two").await;
    let removed = bob
        .ok("agent.remove", Some(&s), "b1", json!({ "id": "b1" }))
        .await;
    assert_eq!(removed.payload.unwrap()["dead_lettered"], 2);
    for _ in 0..2 {
        let failed = alice.next_of("delivery.failed").await;
        assert_eq!(failed.payload.unwrap()["reason"], "agent_removed");
    }
    assert_eq!(
        alice
            .call(message(&s, "a1", "b1", "three"))
            .await
            .error
            .unwrap()
            .code,
        "unknown_agent"
    );
}

fn group(
    s: &str,
    src: &str,
    group_id: &str,
    actions: Value,
) -> codex_weave_transport_uds::Envelope {
    let mut env = envelope(
        "action.submit",
        Some(s),
        src,
        json!({ "group_id": group_id, "actions": actions }),
    );
    env.idempotency_key = Some(group_id.to_owned());
    env
}

#[tokio::test]
async fn action_groups_reach_each_target_filtered_and_are_done_when_each_action_is_answered() {
    let bus = BusProcess::start();
    let (s, c) = session_with(&bus, &[("o1", "Owner"), ("w1", "Worker"), ("w2", "Other")]).await;
    let mut c = c.into_iter();
    let mut owner = c.next().unwrap();
    let mut w1 = c.next().unwrap();
    let mut w2 = c.next().unwrap();
    let actions = json!([
        { "type": "control", "dst": "Worker", "action_id": "x1", "action_index": 0, "command": "new" },
        { "type": "message", "dst": "w1", "action_id": "x2", "action_index": 1, "text": "do it", "kind": "user" },
        { "type": "message", "dst": "Other", "action_id": "x3", "action_index": 2, "text": "you too", "kind": "user" }
    ]);
    owner.call(group(&s, "o1", "g1", actions)).await;
    let got = w1.next_of("action.submit").await;
    let mine = got.payload.as_ref().unwrap()["actions"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        mine.iter()
            .map(|a| a["action_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["x1", "x2"]
    );
    assert!(mine.iter().all(|a| a["dst"] == "w1"));
    assert_eq!(got.idempotency_key.as_deref(), Some("g1"));
    let other = w2.next_of("action.submit").await;
    assert_eq!(
        other.payload.unwrap()["actions"].as_array().unwrap().len(),
        1
    );

    // w1 answers `accepted` for x1, then replies to x2 as an unchanged client does (a group
    // with `reply_to_action_id` and `reply_policy: "none"`): its group is done. w2 answers
    // nothing.
    let mut result = envelope(
        "action.result",
        Some(&s),
        "w1",
        json!({ "group_id": "g1", "action_id": "x1", "action_index": 0, "status": "accepted" }),
    );
    result.dst = Some("o1".into());
    assert_eq!(w1.call(result).await.error, None);
    let res = owner.next_of("action.result").await;
    assert_eq!(res.src, "w1");
    assert_eq!(res.payload.unwrap()["status"], "accepted");
    let reply = json!([{ "type": "message", "dst": "o1", "action_id": "y1", "action_index": 0,
        "text": "done", "kind": "reply", "reply_to_action_id": "x2", "reply_policy": "none" }]);
    w1.call(group(&s, "w1", "g2", reply)).await;
    let answer = owner.next_of("action.submit").await;
    assert_eq!(answer.payload.unwrap()["actions"][0]["text"], "done");
    // Actions are never redelivered on a timer; after a reconnect, only the unanswered group
    // is (and the owner, who never acked the reply, does not get it again either).
    w1.ok("agent.list", Some(&s), "w1", Value::Null).await;
    drop(w1);
    drop(w2);
    let mut w1 = bus.connect().await;
    w1.add_agent(&s, "w1", "Worker").await;
    w1.none_of("action.submit", Duration::from_millis(300))
        .await;
    let mut w2 = bus.connect().await;
    w2.add_agent(&s, "w2", "Other").await;
    let again = w2.next_of("action.submit").await;
    assert_eq!(meta_weave(&again, "redelivered"), Some(&json!(true)));
    drop(owner);
    let mut owner = bus.connect().await;
    owner.add_agent(&s, "o1", "Owner").await;
    owner
        .none_of("action.submit", Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn reconnecting_agent_client_resumes_and_receives_what_it_missed() {
    use codex_weave_transport_uds::Agent;
    let mut bus = BusProcess::start();
    let admin = bus.connect().await;
    let s = admin.create_session("s").await;
    admin.add_agent(&s, "a1", "Alice").await;
    let mut bob = Agent::connect(agent_options(&bus.socket(), &s, "b1").name("Bob"))
        .await
        .unwrap();
    admin.send(&s, "a1", "b1", "before").await;
    assert_eq!(
        bob.recv_kind(&["message.send"], WAIT).await.unwrap().text(),
        Some("before")
    );
    // The bus dies and comes back; the client reconnects and re-adds itself.
    bus.restart();
    let admin = bus.connect().await;
    admin.add_agent(&s, "a1", "Alice").await;
    admin.wait_status(&s, "b1", "online").await;
    admin.send(&s, "a1", "b1", "after").await;
    // The auto-ack of "before" may have died with the bus: then it comes again, marked.
    let next = bob.recv_kind(&["message.send"], WAIT).await.unwrap();
    let next = if next.text() == Some("before") {
        assert!(next.redelivered());
        bob.recv_kind(&["message.send"], WAIT).await.unwrap()
    } else {
        next
    };
    assert_eq!(next.text(), Some("after"));
}
