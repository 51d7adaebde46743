//! One scenario — sessions, agents joining, messages, a relay with a wait, a loop stopped, a
//! rename, a session closed — driven over the socket of a real `weaved`; its records read back
//! three ways (socket `events.history`, `GET .../events`, SSE `data:`) are the same bytes.
//! The record sequence is pinned with insta (ids and times redacted).

use codex_weave_transport_uds::{Client, Envelope};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use weave_test_kit::*;

async fn call(
    c: &Client,
    kind: &str,
    session: Option<&str>,
    src: &str,
    payload: Value,
) -> Envelope {
    let mut env = Envelope::new(kind, String::new(), String::new(), src);
    env.session = session.map(str::to_owned);
    env.payload = Some(payload);
    c.request(env).await.unwrap()
}

async fn message(c: &Client, s: &str, from: &str, to: &str, payload: Value) -> Envelope {
    let mut env = Envelope::new("message.send", String::new(), String::new(), from);
    env.session = Some(s.to_owned());
    env.dst = Some(to.to_owned());
    env.payload = Some(payload);
    c.request(env).await.unwrap()
}

/// Replaces UUIDs and RFC 3339 times with placeholders, numbering ids by first appearance.
fn redact(v: &Value, ids: &mut Vec<String>) -> Value {
    match v {
        Value::String(s) if time_like(s) => Value::String("<ts>".into()),
        Value::String(s) => {
            let mut out = s.clone();
            for word in s.split(|c: char| !(c.is_ascii_hexdigit() || c == '-')) {
                if word.len() == 36 && word.matches('-').count() == 4 {
                    let n = ids.iter().position(|x| x == word).unwrap_or_else(|| {
                        ids.push(word.to_owned());
                        ids.len() - 1
                    });
                    out = out.replace(word, &format!("<id-{n}>"));
                }
            }
            Value::String(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| redact(x, ids)).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, x)| (k.clone(), redact(x, ids))).collect())
        }
        other => other.clone(),
    }
}

fn time_like(s: &str) -> bool {
    s.len() >= 20
        && s.as_bytes().get(4) == Some(&b'-')
        && s.as_bytes().get(10) == Some(&b'T')
        && s.ends_with('Z')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_history_http_history_and_sse_serve_the_same_record_bytes() {
    let d = Weaved::start();
    let (admin, _) = Client::connect(d.socket()).await.unwrap();
    let s = call(
        &admin,
        "session.create",
        None,
        "op",
        json!({ "name": "compat" }),
    )
    .await
    .session
    .unwrap();
    let mut agents = Vec::new();
    for (id, name) in [("o", "Owner"), ("w1", "Worker"), ("w2", "Other")] {
        let (c, events) = Client::connect(d.socket()).await.unwrap();
        assert_eq!(
            call(
                &c,
                "agent.add",
                Some(&s),
                id,
                json!({ "id": id, "name": name })
            )
            .await
            .error,
            None
        );
        agents.push((c, events));
    }
    let (o, w1, w2) = (&agents[0].0, &agents[1].0, &agents[2].0);
    message(o, &s, "o", "Worker", json!({ "text": "hello" })).await;
    let accepted = call(
        o,
        "relay.submit",
        Some(&s),
        "o",
        json!({
            "relay_id": "r1", "targets": ["w1", "w2"],
            "actions": [
                { "type": "message", "dst": "w1", "text": "a", "plan_step_id": "1" },
                { "type": "message", "dst": "w2", "text": "b", "plan_step_id": "2" },
                { "type": "wait", "plan_step_id": "3" },
                { "type": "message", "dst": "w1", "text": "c", "plan_step_id": "4" }
            ]
        }),
    )
    .await;
    assert_eq!(accepted.payload.unwrap()["status"], "accepted");
    message(
        w1,
        &s,
        "w1",
        "o",
        json!({ "text": "a done", "kind": "reply", "reply_to_action_id": "r1:1:0" }),
    )
    .await;
    message(
        w2,
        &s,
        "w2",
        "o",
        json!({ "text": "b done", "kind": "reply", "reply_to_action_id": "r1:1:1" }),
    )
    .await;
    call(
        o,
        "relay.submit",
        Some(&s),
        "o",
        json!({ "relay_id": "r1", "done": { "summary": "ok" } }),
    )
    .await;
    // Two agents bouncing new work: stopped by the ping-pong rule.
    for i in 0..6 {
        let (c, from, to) = if i % 2 == 0 {
            (w1, "w1", "w2")
        } else {
            (w2, "w2", "w1")
        };
        let resp = message(c, &s, from, to, json!({ "text": format!("you do it {i}") })).await;
        if i == 5 {
            assert_eq!(resp.error.unwrap().code, "loop_suppressed");
        }
    }
    call(
        w2,
        "agent.update",
        Some(&s),
        "w2",
        json!({ "id": "w2", "name": "Renamed" }),
    )
    .await;
    call(&admin, "session.close", Some(&s), "op", Value::Null).await;

    // 1. The socket, raw.
    let stream = tokio::net::UnixStream::connect(d.socket()).await.unwrap();
    let (r, mut w) = stream.into_split();
    w.write_all(format!("{{\"v\":1,\"type\":\"events.history\",\"id\":\"h\",\"session\":\"{s}\",\"payload\":{{\"limit\":1000}}}}\n").as_bytes()).await.unwrap();
    let mut line = String::new();
    BufReader::new(r).read_line(&mut line).await.unwrap();
    let socket: Envelope<Box<RawValue>> = serde_json::from_str(&line).unwrap();
    let socket_payload = socket.payload.unwrap().get().to_owned();
    // 2. HTTP, raw.
    let http_body = d
        .get(&format!("/api/sessions/{s}/events?limit=1000"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        http_body, socket_payload,
        "GET .../events is the socket's payload, byte for byte"
    );
    // 3. SSE data lines.
    #[derive(serde::Deserialize)]
    struct Page {
        records: Vec<Box<RawValue>>,
        head: u64,
    }
    let page: Page = serde_json::from_str(&http_body).unwrap();
    let mut sse = SseReader::open(d.get(&format!("/api/sessions/{s}/events/stream?since=0"))).await;
    for (i, record) in page.records.iter().enumerate() {
        let ev = sse.next().await.unwrap();
        assert_eq!(ev.id.as_deref(), Some((i + 1).to_string().as_str()));
        assert_eq!(ev.data, record.get(), "SSE data of record {}", i + 1);
    }
    assert_eq!(page.records.len() as u64, page.head);

    let mut ids = Vec::new();
    let records: Vec<Value> = page
        .records
        .iter()
        .map(|r| redact(&serde_json::from_str(r.get()).unwrap(), &mut ids))
        .collect();
    let summary: Vec<Value> = records
        .iter()
        .map(|r| json!({ "seq": r["seq"], "type": r["envelope"]["type"], "src": r["envelope"]["src"], "dst": r["envelope"]["dst"] }))
        .collect();
    insta::assert_json_snapshot!("record_sequence", summary);
    insta::assert_json_snapshot!("records", records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_scenario_driven_over_http_gives_the_same_three_views() {
    let d = Weaved::start();
    let http = reqwest::Client::new();
    let post = |path: String, body: Value| {
        http.post(d.url(&path))
            .bearer_auth(&d.token)
            .json(&body)
            .send()
    };
    let created: Value = post("/api/sessions".into(), json!({ "name": "compat" }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = created["id"].as_str().unwrap().to_owned();
    for (id, name) in [("o", "Owner"), ("w1", "Worker"), ("w2", "Other")] {
        let r = post(
            format!("/api/sessions/{s}/agents"),
            json!({ "id": id, "name": name, "kind": "sdk" }),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
    }
    let sent = post(
        format!("/api/sessions/{s}/messages"),
        json!({ "from": "o", "text": "hello", "agent_ids": ["Worker"] }),
    )
    .await
    .unwrap();
    assert_eq!(sent.status(), 202);
    let accepted: Value = post(
        format!("/api/sessions/{s}/relays"),
        json!({
            "from": "o", "relay_id": "r1", "targets": ["w1", "w2"],
            "actions": [
                { "type": "message", "dst": "w1", "text": "a", "plan_step_id": "1" },
                { "type": "message", "dst": "w2", "text": "b", "plan_step_id": "2" },
                { "type": "wait", "plan_step_id": "3" },
                { "type": "message", "dst": "w1", "text": "c", "plan_step_id": "4" }
            ]
        }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(accepted["status"], "accepted");
    for (from, action) in [("w1", "r1:1:0"), ("w2", "r1:1:1")] {
        let r = post(format!("/api/sessions/{s}/messages"), json!({ "from": from, "text": "done", "kind": "reply", "reply_to_action_id": action, "agent_ids": ["o"] })).await.unwrap();
        assert_eq!(r.status(), 202);
    }
    post(
        format!("/api/sessions/{s}/relays/r1/done"),
        json!({ "summary": "ok" }),
    )
    .await
    .unwrap();
    let mut stopped = false;
    for i in 0..6 {
        let (from, to) = if i % 2 == 0 {
            ("w1", "w2")
        } else {
            ("w2", "w1")
        };
        let r = post(
            format!("/api/sessions/{s}/messages"),
            json!({ "from": from, "text": format!("you do it {i}"), "agent_ids": [to] }),
        )
        .await
        .unwrap();
        stopped |= r.status() == 409;
    }
    assert!(
        stopped,
        "the ping-pong rule stopped the bounce over HTTP too"
    );
    let renamed = http
        .patch(d.url(&format!("/api/sessions/{s}/agents/w2")))
        .bearer_auth(&d.token)
        .json(&json!({ "name": "Renamed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    post(format!("/api/sessions/{s}/close"), json!({}))
        .await
        .unwrap();

    // The three views of the records are the same bytes.
    let stream = tokio::net::UnixStream::connect(d.socket()).await.unwrap();
    let (r, mut w) = stream.into_split();
    w.write_all(format!("{{\"v\":1,\"type\":\"events.history\",\"id\":\"h\",\"session\":\"{s}\",\"payload\":{{\"limit\":1000}}}}\n").as_bytes()).await.unwrap();
    let mut line = String::new();
    BufReader::new(r).read_line(&mut line).await.unwrap();
    let socket: Envelope<Box<RawValue>> = serde_json::from_str(&line).unwrap();
    let http_body = d
        .get(&format!("/api/sessions/{s}/events?limit=1000"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(http_body, socket.payload.unwrap().get());
    #[derive(serde::Deserialize)]
    struct Page {
        records: Vec<Box<RawValue>>,
    }
    let page: Page = serde_json::from_str(&http_body).unwrap();
    let mut sse = SseReader::open(d.get(&format!("/api/sessions/{s}/events/stream?since=0"))).await;
    for record in &page.records {
        assert_eq!(sse.next().await.unwrap().data, record.get());
    }
    let mut ids = Vec::new();
    let summary: Vec<Value> = page
        .records
        .iter()
        .map(|r| redact(&serde_json::from_str(r.get()).unwrap(), &mut ids))
        .map(|r| json!({ "seq": r["seq"], "type": r["envelope"]["type"], "src": r["envelope"]["src"], "dst": r["envelope"]["dst"] }))
        .collect();
    // The very sequence the socket-driven run pins: HTTP clients obey the same brain.
    insta::assert_json_snapshot!("record_sequence", summary);
}
