//! Receipts over the socket: every message moves `queued → delivered → read → answered` for
//! each recipient, each move is recorded (`receipt.updated`), `inbox.unread` serves what an
//! agent has not read yet (to its hooks too, from another connection), and no receipt ever
//! becomes a message to anyone.

use std::time::Duration;

use serde_json::{json, Value};
use weave_test_kit::*;

/// `message.receipts` of one message: agent → state.
async fn states(c: &Conn, s: &str, id: &str) -> Vec<(String, String)> {
    let r = c
        .ok("message.receipts", Some(s), "t", json!({ "ids": [id] }))
        .await
        .payload
        .unwrap();
    r["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["message"], id);
            (
                r["agent"].as_str().unwrap().to_owned(),
                r["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Waits until message `id`'s receipt for `agent` is `state`.
async fn wait_state(c: &Conn, s: &str, id: &str, agent: &str, state: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = states(c, s, id).await;
        if now.iter().any(|(a, st)| a == agent && st == state) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} never became {state} for {agent}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The `receipt.updated` records of the session: (agent, state, message ids).
async fn receipt_records(c: &Conn, s: &str) -> Vec<(String, String, Vec<String>)> {
    let h = c
        .ok("events.history", Some(s), "t", json!({ "limit": 1000 }))
        .await
        .payload
        .unwrap();
    h["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["envelope"])
        .filter(|e| e["type"] == "receipt.updated")
        .map(|e| {
            assert_eq!(e["src"], "weave");
            let p = &e["payload"];
            let ids = p["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned())
                .collect();
            (
                p["agent"].as_str().unwrap().to_owned(),
                p["state"].as_str().unwrap().to_owned(),
                ids,
            )
        })
        .collect()
}

fn unread_ids(p: &Value) -> Vec<String> {
    p["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_message_moves_through_every_state_and_each_move_is_recorded() {
    let bus = BusProcess::start();
    let (s, mut a, mut b) = bus.pair("s").await;
    let sent = a.send(&s, "a1", "b1", "please review").await;
    let id = sent.payload.unwrap()["id"].as_str().unwrap().to_owned();
    let delivered = b.next_of("message.send").await;
    b.ack(&s, "b1", &delivered); // an automatic ack proves delivery only
    wait_state(&a, &s, &id, "b1", "delivered").await;

    // The hook's view, from a connection of its own: unread, oldest first.
    let hook = bus.connect().await;
    let peek = hook
        .ok("inbox.unread", Some(&s), "hook", json!({ "agent": "B" }))
        .await
        .payload
        .unwrap();
    assert_eq!(unread_ids(&peek), vec![id.clone()]);
    assert_eq!(peek["messages"][0]["state"], "delivered");
    assert_eq!(
        peek["messages"][0]["envelope"]["payload"]["text"],
        "please review"
    );
    assert_eq!(
        (peek["total"].as_u64(), peek["more"].as_u64()),
        (Some(1), Some(0))
    );
    let took = hook
        .ok(
            "inbox.unread",
            Some(&s),
            "hook",
            json!({ "agent": "b1", "mark_read": true }),
        )
        .await
        .payload
        .unwrap();
    assert_eq!(unread_ids(&took), vec![id.clone()]);
    assert_eq!(took["messages"][0]["state"], "read");
    assert_eq!(states(&a, &s, &id).await, [("b1".into(), "read".into())]);
    // Shown once: the next look finds nothing.
    let again = hook
        .ok(
            "inbox.unread",
            Some(&s),
            "hook",
            json!({ "agent": "b1", "mark_read": true }),
        )
        .await
        .payload
        .unwrap();
    assert_eq!(unread_ids(&again), Vec::<String>::new());
    // Read is not answered: what waits on B still lists it, read.
    let waiting = json!({ "agent": "b1", "waiting": true });
    let w = hook
        .ok("inbox.unread", Some(&s), "hook", waiting.clone())
        .await
        .payload
        .unwrap();
    assert_eq!(unread_ids(&w), vec![id.clone()]);
    assert_eq!(w["messages"][0]["state"], "read");

    // B answers: the reply refers to the work it was given.
    let mut reply = message(&s, "b1", "a1", "looks good");
    reply.payload = Some(json!({ "text": "looks good", "kind": "reply" }));
    assert_eq!(b.call(reply).await.error, None);
    a.next_of("message.send").await;
    assert_eq!(
        states(&a, &s, &id).await,
        [("b1".into(), "answered".into())]
    );
    let w = hook
        .ok("inbox.unread", Some(&s), "hook", waiting)
        .await
        .payload
        .unwrap();
    assert_eq!(
        unread_ids(&w),
        Vec::<String>::new(),
        "answered waits no more"
    );

    let records = receipt_records(&a, &s).await;
    let of_id: Vec<&str> = records
        .iter()
        .filter(|(agent, _, ids)| agent == "b1" && ids.contains(&id))
        .map(|(_, state, _)| state.as_str())
        .collect();
    assert_eq!(of_id, ["delivered", "read", "answered"]);
    // Receipts are records only: nobody receives one.
    a.none_of("receipt.updated", Duration::from_millis(200))
        .await;
    b.none_of("receipt.updated", Duration::from_millis(50))
        .await;
}

#[tokio::test]
async fn an_offline_agents_mail_is_queued_and_unread_until_it_takes_it() {
    let bus = BusProcess::start();
    let (s, a, b) = bus.pair("s").await;
    drop(b);
    a.wait_status(&s, "b1", "offline").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let sent = a.send(&s, "a1", "b1", &format!("m{i}")).await;
        ids.push(sent.payload.unwrap()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        states(&a, &s, &ids[0]).await,
        [("b1".into(), "queued".into())]
    );
    let page = a
        .ok(
            "inbox.unread",
            Some(&s),
            "t",
            json!({ "agent": "b1", "limit": 2 }),
        )
        .await
        .payload
        .unwrap();
    assert_eq!(unread_ids(&page), ids[..2]);
    assert_eq!(
        (page["total"].as_u64(), page["more"].as_u64()),
        (Some(3), Some(1))
    );
    // `message.read` names what was read; only receipts that move are answered back.
    let read = a
        .ok(
            "message.read",
            Some(&s),
            "t",
            json!({ "agent": "b1", "ids": [ids[1], ids[1], "nothing"] }),
        )
        .await
        .payload
        .unwrap();
    assert_eq!(read["read"], json!([ids[1]]));
    let rest = a
        .ok("inbox.unread", Some(&s), "t", json!({ "agent": "b1" }))
        .await
        .payload
        .unwrap();
    assert_eq!(unread_ids(&rest), [ids[0].clone(), ids[2].clone()]);
    // After a restart the receipts are as they were.
    drop(a);
    let mut bus = bus;
    bus.restart();
    let c = bus.connect().await;
    assert_eq!(
        states(&c, &s, &ids[1]).await,
        [("b1".into(), "read".into())]
    );
    assert_eq!(
        states(&c, &s, &ids[2]).await,
        [("b1".into(), "queued".into())]
    );
}

#[tokio::test]
async fn a_manual_ack_is_a_read_and_an_automatic_one_is_not() {
    let bus = BusProcess::start();
    let (s, a, mut b) = bus.pair("s").await;
    let mut manual = message(&s, "a1", "b1", "manual");
    manual.ack = Some(codex_weave_transport_uds::Ack {
        mode: Some(codex_weave_transport_uds::AckMode::Manual),
        timeout_ms: None,
    });
    let manual = a.call(manual).await.payload.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let auto = a.send(&s, "a1", "b1", "auto").await.payload.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..2 {
        let d = b.next_of("message.send").await;
        b.ack(&s, "b1", &d);
    }
    wait_state(&a, &s, &manual, "b1", "read").await;
    wait_state(&a, &s, &auto, "b1", "delivered").await;
}

#[tokio::test]
async fn relay_steps_have_receipts_per_action_and_a_result_answers_them() {
    let bus = BusProcess::start();
    let (s, a, mut b) = bus.pair("s").await;
    let accepted = a
        .ok(
            "relay.submit",
            Some(&s),
            "a1",
            json!({ "relay_id": "r1", "targets": ["b1"], "actions": [
                { "type": "message", "dst": "b1", "text": "step one" },
                { "type": "message", "dst": "b1", "text": "step two" }
            ] }),
        )
        .await
        .payload
        .unwrap();
    let actions = accepted["targets"]["b1"]["actions"].as_array().unwrap();
    let (one, two) = (
        actions[0]["action_id"].as_str().unwrap().to_owned(),
        actions[1]["action_id"].as_str().unwrap().to_owned(),
    );
    let group = b.next_of("action.submit").await;
    wait_state(&a, &s, &one, "b1", "delivered").await;
    wait_state(&a, &s, &two, "b1", "delivered").await;
    let p = group.payload.unwrap();
    let result = |action: &str, status: &str| {
        envelope(
            "action.result",
            Some(&s),
            "b1",
            json!({ "group_id": p["group_id"], "action_id": action, "status": status }),
        )
    };
    let mut accepted = result(&one, "accepted");
    accepted.dst = Some("a1".into());
    assert_eq!(b.call(accepted).await.error, None);
    assert_eq!(states(&a, &s, &one).await, [("b1".into(), "read".into())]);
    let mut done = result(&two, "completed");
    done.dst = Some("a1".into());
    assert_eq!(b.call(done).await.error, None);
    assert_eq!(
        states(&a, &s, &two).await,
        [("b1".into(), "answered".into())]
    );
    assert_eq!(states(&a, &s, &one).await, [("b1".into(), "read".into())]);
}

#[tokio::test]
async fn an_agent_says_it_is_busy_and_goes_idle_when_it_leaves() {
    let bus = BusProcess::start();
    let (s, a, b) = bus.pair("s").await;
    let busy = b
        .ok(
            "agent.activity",
            Some(&s),
            "b1",
            json!({ "activity": "busy", "doing": "running tests\u{1b}[31m" }),
        )
        .await
        .payload
        .unwrap();
    assert_eq!(
        busy["doing"], "running tests[31m",
        "control characters are dropped"
    );
    let bob = agent_of(&a, &s, "b1").await;
    assert_eq!(
        (bob["activity"].as_str(), bob["doing"].as_str()),
        (Some("busy"), Some("running tests[31m"))
    );
    // Only from its own connection.
    assert_eq!(
        a.err(
            "agent.activity",
            Some(&s),
            "b1",
            json!({ "activity": "idle" })
        )
        .await,
        "forbidden"
    );
    assert_eq!(
        b.err(
            "agent.activity",
            Some(&s),
            "b1",
            json!({ "activity": "asleep" })
        )
        .await,
        "bad_request"
    );
    drop(b);
    a.wait_status(&s, "b1", "offline").await;
    let bob = agent_of(&a, &s, "b1").await;
    assert_eq!(bob["activity"], "idle");
}

#[tokio::test]
async fn inbox_requests_refuse_bad_input_clearly() {
    let bus = BusProcess::start();
    let (s, a, _b) = bus.pair("s").await;
    assert_eq!(
        a.err("inbox.unread", Some(&s), "t", json!({ "agent": "ghost" }))
            .await,
        "unknown_agent"
    );
    assert_eq!(
        a.err("message.read", Some(&s), "a1", json!({ "ids": [] }))
            .await,
        "bad_request"
    );
    assert_eq!(
        a.err("message.receipts", Some(&s), "t", json!({ "ids": [1] }))
            .await,
        "bad_request"
    );
    assert_eq!(
        a.err(
            "inbox.unread",
            Some(&s),
            "b1",
            json!({ "mark_read": "yes" })
        )
        .await,
        "bad_request"
    );
    assert_eq!(
        a.err("inbox.unread", Some("nope"), "b1", Value::Null).await,
        "unknown_session"
    );
}

#[tokio::test]
async fn the_log_is_searched_by_words_sender_and_page_and_survives_a_restart() {
    let mut bus = BusProcess::start();
    let (s, a, b) = bus.pair("s").await;
    a.send(&s, "a1", "b1", "the build is green").await;
    b.send(&s, "b1", "a1", "deploy the build").await;
    a.send(&s, "a1", "b1", "lunch?").await;
    let (texts, next) = find(&a, &s, json!({ "text": "BUILD" })).await;
    assert_eq!(texts, ["deploy the build", "the build is green"]);
    assert_eq!(next, Value::Null);
    assert_eq!(
        find(&a, &s, json!({ "text": "build", "from": "B" }))
            .await
            .0,
        ["deploy the build"]
    );
    let (first, next) = find(&a, &s, json!({ "text": "build", "limit": 1 })).await;
    assert_eq!(first, ["deploy the build"]);
    let (second, _) = find(
        &a,
        &s,
        json!({ "text": "build", "limit": 1, "before": next }),
    )
    .await;
    assert_eq!(second, ["the build is green"]);
    assert_eq!(
        a.err(
            "events.search",
            Some(&s),
            "t",
            json!({ "since": "yesterday" })
        )
        .await,
        "bad_request"
    );
    drop((a, b));
    bus.restart();
    let c = bus.connect().await;
    assert_eq!(find(&c, &s, json!({ "text": "lunch" })).await.0, ["lunch?"]);
}

/// `events.search`: the found records' texts, and `next_before`.
async fn find(c: &Conn, s: &str, payload: Value) -> (Vec<String>, Value) {
    let p = c
        .ok("events.search", Some(s), "t", payload)
        .await
        .payload
        .unwrap();
    let texts = p["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["envelope"]["payload"]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    (texts, p["next_before"].clone())
}

/// Agent `id` as `agent.list` shows it.
async fn agent_of(c: &Conn, s: &str, id: &str) -> Value {
    let list = c
        .ok("agent.list", Some(s), "t", Value::Null)
        .await
        .payload
        .unwrap();
    list["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == id)
        .unwrap()
        .clone()
}
