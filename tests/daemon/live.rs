//! The session list live over SSE, and `/metrics`, against a real `weaved`.

use codex_weave_transport_uds::{Agent, AgentOptions};
use serde_json::{json, Value};
use weave_test_kit::*;

#[tokio::test]
async fn the_session_list_stream_opens_with_a_snapshot_and_follows_changes() {
    let d = Weaved::start();
    let first = d
        .post("/api/sessions", json!({ "name": "one" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let mut sse = SseReader::open(d.get("/api/sessions/stream")).await;
    let snapshot = sse.next().await.unwrap();
    assert_eq!(snapshot.event, "snapshot");
    let snap: Value = serde_json::from_str(&snapshot.data).unwrap();
    assert_eq!(snap["sessions"][0]["id"], first["id"]);
    let second = d
        .post("/api/sessions", json!({ "name": "two" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let created: Value = serde_json::from_str(&sse.next().await.unwrap().data).unwrap();
    assert_eq!(
        (created["id"].clone(), created["status"].as_str()),
        (second["id"].clone(), Some("open"))
    );
    let s = second["id"].as_str().unwrap();
    let agent = Agent::connect(AgentOptions::new(d.socket(), s, "a1").name("A"))
        .await
        .unwrap();
    let mut counts = Vec::new();
    while counts.last() != Some(&(1, 1)) {
        let ev: Value = serde_json::from_str(&sse.next().await.unwrap().data).unwrap();
        counts.push((
            ev["agent_count"].as_u64().unwrap(),
            ev["online_count"].as_u64().unwrap(),
        ));
    }
    drop(agent);
    loop {
        let ev: Value = serde_json::from_str(&sse.next().await.unwrap().data).unwrap();
        if ev["online_count"] == 0 {
            assert_eq!(
                ev["agent_count"], 1,
                "a disconnected agent stays registered"
            );
            break;
        }
    }
    d.post(&format!("/api/sessions/{s}/close"), json!({}))
        .send()
        .await
        .unwrap();
    let closed: Value = serde_json::from_str(&sse.next().await.unwrap().data).unwrap();
    assert_eq!(closed["status"], "closed");
}

#[tokio::test]
async fn metrics_are_prometheus_text_and_count_what_happens() {
    let d = Weaved::start();
    assert_eq!(reqwest::get(d.url("/metrics")).await.unwrap().status(), 401);
    let s = d.create_session("m").await;
    let _sse = SseReader::open(d.get(&format!("/api/sessions/{s}/events/stream"))).await;
    let text = d.metrics().await;
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("weave_{name} ")))
            .unwrap_or_else(|| panic!("no weave_{name} in\n{text}"))
            .parse()
            .unwrap()
    };
    assert!(text.contains("# TYPE weave_requests_total counter"));
    assert_eq!(value("sessions"), 1.0);
    assert_eq!(value("sse_clients"), 1.0);
    assert_eq!(value("agents"), 0.0);
    assert!(value("requests_total") >= 1.0);
    assert!(value("store_commits_total") >= 1.0);
    for name in [
        "connections_open",
        "messages_in_total",
        "messages_out_total",
        "acks_total",
        "redeliveries_total",
        "queue_depth",
        "store_commit_seconds_total",
    ] {
        let _ = value(name);
    }
}
