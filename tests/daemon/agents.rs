//! HTTP agents are full agents: a person in the browser (or an SDK) registers over HTTP, receives
//! through its inbox stream, acks, is redelivered to, and sends messages and relays under the
//! same runtime rules as a terminal agent on the socket — and the operator renames or removes
//! any agent.

use codex_weave_transport_uds::{Agent, AgentOptions};
use serde_json::{json, Value};
use weave_test_kit::*;

async fn session(d: &Weaved) -> String {
    d.create_session("people").await
}

async fn register(d: &Weaved, s: &str, name: &str) -> String {
    register_as(d, s, name, "human").await
}

async fn register_as(d: &Weaved, s: &str, name: &str, kind: &str) -> String {
    let resp = d
        .post(
            &format!("/api/sessions/{s}/agents"),
            json!({ "name": name, "kind": kind }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_and_a_terminal_agent_talk_both_ways_with_acks_and_redelivery() {
    let d = Weaved::start();
    let s = session(&d).await;
    let human = register(&d, &s, "Ada").await;
    let mut term = Agent::connect(AgentOptions::new(d.socket(), &s, "t1").name("Term"))
        .await
        .unwrap();
    let agents = d.json(&format!("/api/sessions/{s}/agents")).await;
    let ada = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == human.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (ada["kind"].as_str(), ada["status"].as_str()),
        (Some("human"), Some("online"))
    );

    // The person writes to the terminal agent, by name.
    let sent = d
        .post(
            &format!("/api/sessions/{s}/messages"),
            json!({ "from": human, "text": "hi Term", "agent_ids": ["Term"] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    let got = term.recv_kind(&["message.send"], WAIT).await.unwrap();
    assert_eq!(got.text(), Some("hi Term"));
    assert_eq!(got.0.src, human);
    assert_eq!(
        got.0.meta.as_ref().unwrap()["weave"]["origin_src_name"],
        "Ada"
    );
    // The terminal agent replies; it reaches the person's inbox stream.
    let ctx = got.0.payload.as_ref().unwrap()["context_id"].clone();
    let mut reply =
        codex_weave_transport_uds::Envelope::new("message.send", String::new(), String::new(), "");
    reply.dst = Some(human.clone());
    reply.payload = Some(json!({ "text": "hello Ada", "kind": "reply", "context_id": ctx }));
    assert_eq!(term.request(reply).await.unwrap().error, None);
    let inbox = format!("/api/sessions/{s}/agents/{human}/inbox/stream");
    let mut stream = SseReader::open(d.get(&inbox)).await;
    let ev = stream.next().await.unwrap();
    assert_eq!(ev.event, "message.send");
    let delivery: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(delivery["payload"]["text"], "hello Ada");
    let first_id = delivery["corr"].as_str().unwrap().to_owned();
    // A second message, not acked.
    let mut again =
        codex_weave_transport_uds::Envelope::new("message.send", String::new(), String::new(), "");
    again.dst = Some("Ada".into());
    again.payload = Some(json!({ "text": "still there?", "kind": "reply", "context_id": ctx }));
    term.request(again).await.unwrap();
    assert_eq!(stream.next().await.unwrap().event, "message.send");
    drop(stream);
    // Ack the first; a new stream (the page reloaded) gets only what is not acked.
    let acked = d
        .post(
            &format!("/api/sessions/{s}/agents/{human}/inbox/ack"),
            json!({ "ids": [first_id] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(acked.json::<Value>().await.unwrap()["acked"], 1);
    let mut stream = SseReader::open(d.get(&inbox)).await;
    let ev = stream.next().await.unwrap();
    let waiting: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(waiting["payload"]["text"], "still there?");
    // Resuming with Last-Event-ID after it skips it.
    let mut resumed = SseReader::open(d.get(&inbox).header("Last-Event-ID", ev.id.unwrap())).await;
    let mut third =
        codex_weave_transport_uds::Envelope::new("message.send", String::new(), String::new(), "");
    third.dst = Some(human.clone());
    third.payload = Some(json!({ "text": "third", "kind": "reply", "context_id": ctx }));
    term.request(third).await.unwrap();
    let next: Value = serde_json::from_str(&resumed.next().await.unwrap().data).unwrap();
    assert_eq!(next["payload"]["text"], "third");
}

#[tokio::test]
async fn the_runtime_rules_apply_to_http_agents_with_problem_statuses() {
    let d = Weaved::start();
    let s = session(&d).await;
    let owner = register(&d, &s, "Owner").await;
    let other = register(&d, &s, "Other").await;
    let mut term = Agent::connect(AgentOptions::new(d.socket(), &s, "t1").name("Term"))
        .await
        .unwrap();
    d.post(
        &format!("/api/sessions/{s}/messages"),
        json!({ "from": owner, "text": "task", "agent_ids": ["t1"] }),
    )
    .send()
    .await
    .unwrap();
    let ctx = term
        .recv_kind(&["message.send"], WAIT)
        .await
        .unwrap()
        .0
        .payload
        .unwrap()["context_id"]
        .clone();
    let hijack = d
        .post(
            &format!("/api/sessions/{s}/messages"),
            json!({ "from": other, "text": "mine now", "agent_ids": ["t1"], "context_id": ctx }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(hijack.status(), 403);
    assert_eq!(hijack.json::<Value>().await.unwrap()["code"], "not_owner");
    // Acting for a terminal agent over HTTP: refused.
    let forged = d
        .post(
            &format!("/api/sessions/{s}/messages"),
            json!({ "from": "t1", "text": "spoof", "agent_ids": [owner] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // Unknown targets: 404 when none was delivered, listed when some were.
    let none = d
        .post(
            &format!("/api/sessions/{s}/messages"),
            json!({ "from": owner, "text": "?", "agent_ids": ["ghost"] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 404);
    let some = d
        .post(
            &format!("/api/sessions/{s}/messages"),
            json!({ "from": owner, "text": "x", "agent_ids": ["ghost", "t1"] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(some.status(), 202);
    assert_eq!(
        some.json::<Value>().await.unwrap()["failures"][0]["code"],
        "unknown_agent"
    );
    // Two people alternate freely: a person's messages never count toward ping-pong.
    for i in 0..20 {
        let (from, to) = if i % 2 == 0 {
            (&owner, &other)
        } else {
            (&other, &owner)
        };
        let r = d
            .post(
                &format!("/api/sessions/{s}/messages"),
                json!({ "from": from, "text": format!("you {i}"), "agent_ids": [to] }),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "people's message {i} is not a loop");
    }
    // A loop between two SDK agents is stopped: 409 loop_suppressed.
    let a = register_as(&d, &s, "BotA", "sdk").await;
    let b = register_as(&d, &s, "BotB", "sdk").await;
    let mut last = 0;
    for i in 0..10 {
        let (from, to) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let r = d
            .post(
                &format!("/api/sessions/{s}/messages"),
                json!({ "from": from, "text": format!("you {i}"), "agent_ids": [to] }),
            )
            .send()
            .await
            .unwrap();
        last = r.status().as_u16();
        if last != 202 {
            assert_eq!(r.json::<Value>().await.unwrap()["code"], "loop_suppressed");
            break;
        }
    }
    assert_eq!(last, 409);
}

#[tokio::test]
async fn an_http_agent_runs_a_relay_and_the_operator_renames_and_removes_agents() {
    let d = Weaved::start();
    let s = session(&d).await;
    let lead = register(&d, &s, "Lead").await;
    let mut term = Agent::connect(AgentOptions::new(d.socket(), &s, "t1").name("Term"))
        .await
        .unwrap();
    let accepted = d
        .post(&format!("/api/sessions/{s}/relays"), json!({ "from": lead, "relay_id": "r1", "targets": ["t1"], "actions": [{ "type": "message", "dst": "t1", "text": "build" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    assert_eq!(
        accepted.json::<Value>().await.unwrap()["status"],
        "accepted"
    );
    let group = term.recv_kind(&["action.submit"], WAIT).await.unwrap();
    assert_eq!(group.0.src, lead);
    let tasks = d.json(&format!("/api/sessions/{s}/tasks")).await;
    assert_eq!(tasks["tasks"][0]["status"], "running");
    let done = d
        .post(
            &format!("/api/sessions/{s}/relays/r1/done"),
            json!({ "summary": "shipped" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(done.json::<Value>().await.unwrap()["status"], "done");
    assert_eq!(
        term.recv_kind(&["relay.done"], WAIT)
            .await
            .unwrap()
            .0
            .payload
            .unwrap()["summary"],
        "shipped"
    );
    let relays = d.json(&format!("/api/sessions/{s}/relays")).await;
    assert_eq!(relays["relays"][0]["status"], "done");

    // The operator renames the terminal agent and removes it.
    let renamed = reqwest::Client::new()
        .patch(d.url(&format!("/api/sessions/{s}/agents/t1")))
        .bearer_auth(&d.token)
        .json(&json!({ "name": "Builder" }))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    let agents = d.json(&format!("/api/sessions/{s}/agents")).await;
    assert!(agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == "t1" && a["name"] == "Builder"));
    let removed = reqwest::Client::new()
        .delete(d.url(&format!("/api/sessions/{s}/agents/t1")))
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200);
    let agents = d.json(&format!("/api/sessions/{s}/agents")).await;
    assert!(!agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == "t1"));
}

#[tokio::test]
async fn the_operator_orders_agents_and_the_order_survives_a_restart() {
    let mut d = Weaved::start();
    let s = session(&d).await;
    let ids: Vec<String> = {
        let mut v = Vec::new();
        for name in ["Zed", "Amy", "Max"] {
            v.push(register(&d, &s, name).await);
        }
        v
    };
    let wanted = vec![ids[2].clone(), ids[0].clone(), ids[1].clone()];
    let ordered = d
        .post(
            &format!("/api/sessions/{s}/agents/order"),
            json!({ "ids": wanted }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(ordered.status(), 200);
    let listed = |v: &Value| -> Vec<String> {
        v["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        listed(&d.json(&format!("/api/sessions/{s}/agents")).await),
        wanted
    );
    assert_eq!(d.terminate(), Some(0));
    d.spawn().unwrap();
    assert_eq!(
        listed(&d.json(&format!("/api/sessions/{s}/agents")).await),
        wanted
    );
    // Over the socket an agent cannot reorder the session.
    let (c, _) = codex_weave_transport_uds::Client::connect(d.socket())
        .await
        .unwrap();
    let mut order =
        codex_weave_transport_uds::Envelope::new("agent.order", String::new(), String::new(), "x");
    order.session = Some(s.clone());
    order.payload = Some(json!({ "ids": [ids[0]] }));
    assert_eq!(
        c.request(order).await.unwrap().error.unwrap().code,
        "forbidden"
    );
    let unknown = d
        .post(
            &format!("/api/sessions/{s}/agents/order"),
            json!({ "ids": ["ghost"] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

/// What schemathesis found: fields of the wrong type were read as absent and accepted. Each is
/// now refused with a problem naming the field; a body without required fields may be left out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_of_the_wrong_type_are_refused_and_an_optional_body_may_be_left_out() {
    let d = Weaved::start();
    let s = session(&d).await;
    let status = |path: String, body: Value| {
        let req = d.post(&path, body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        status("/api/sessions".into(), json!({ "name": null })).await,
        400
    );
    assert_eq!(
        status("/api/sessions".into(), json!({ "name": 7 })).await,
        400
    );
    let agents = format!("/api/sessions/{s}/agents");
    assert_eq!(
        status(agents.clone(), json!({ "name": "A", "kind": {} })).await,
        400
    );
    assert_eq!(
        status(agents.clone(), json!({ "name": "A", "id": 5 })).await,
        400
    );
    let id = register(&d, &s, "Ack").await;
    let ack = format!("/api/sessions/{s}/agents/{id}/inbox/ack");
    assert_eq!(status(ack.clone(), json!({ "ids": [{}] })).await, 400);
    assert_eq!(
        status(ack, json!({ "ids": ["nothing-pending"] })).await,
        200
    );
    // No body at all: an unnamed session.
    let resp = reqwest::Client::new()
        .post(d.url("/api/sessions"))
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    // The document says so: only a body with required fields is itself required.
    let doc = d.json("/api/openapi.json").await;
    assert_eq!(
        doc["paths"]["/api/sessions"]["post"]["requestBody"]["required"],
        false
    );
    assert_eq!(
        doc["paths"]["/api/sessions/{id}/agents"]["post"]["requestBody"]["required"],
        true
    );
}

/// An HTTP registration never takes an id over: with a live terminal agent's id it is refused
/// (409 `agent_busy`), and the terminal agent keeps receiving as itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_over_http_with_a_live_terminal_agents_id_is_refused() {
    let d = Weaved::start();
    let s = session(&d).await;
    let mut term = Agent::connect(AgentOptions::new(d.socket(), &s, "t1").name("Term"))
        .await
        .unwrap();
    let taken = d
        .post(
            &format!("/api/sessions/{s}/agents"),
            json!({ "name": "Impostor", "kind": "sdk", "id": "t1" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(taken.status(), 409);
    let p: Value = taken.json().await.unwrap();
    assert_eq!(p["code"], "agent_busy");
    let human = register(&d, &s, "Ada").await;
    let sent = d
        .post(
            &format!("/api/sessions/{s}/messages"),
            json!({ "from": human, "text": "still you?", "agent_ids": ["t1"] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 202);
    let got = term.recv_kind(&["message.send"], WAIT).await.unwrap();
    assert_eq!(got.text(), Some("still you?"));
    let agents = d.json(&format!("/api/sessions/{s}/agents")).await;
    let t1 = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "t1")
        .unwrap()
        .clone();
    assert_eq!(
        (t1["name"].as_str(), t1["kind"].as_str()),
        (Some("Term"), Some("agent"))
    );
}
