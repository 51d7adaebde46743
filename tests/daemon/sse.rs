//! The SSE event stream of a real `weaved`: a snapshot first, resume with Last-Event-ID with no
//! gap and no duplicate while records are being written, `gap` for a cursor ahead of the head,
//! and a clean end at shutdown.

use std::collections::BTreeSet;

use codex_weave_transport_uds::{Client, Envelope};
use serde_json::{json, Value};
use weave_test_kit::*;

async fn socket_call(
    c: &Client,
    kind: &str,
    session: Option<&str>,
    src: &str,
    payload: Value,
) -> Envelope {
    let mut env = Envelope::new(kind, String::new(), String::new(), src);
    env.session = session.map(str::to_owned);
    env.payload = Some(payload);
    let resp = c.request(env).await.unwrap();
    assert_eq!(resp.error, None, "{kind}");
    resp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_last_event_id_mid_stream_has_no_gap_and_no_duplicate() {
    let d = Weaved::start();
    let (c, _events) = Client::connect(d.socket()).await.unwrap();
    let s = socket_call(&c, "session.create", None, "t", json!({ "name": "sse" }))
        .await
        .session
        .unwrap();
    socket_call(&c, "agent.add", Some(&s), "a", json!({ "id": "a" })).await;
    // Messages to an agent that is offline: nothing is delivered, so the log holds the messages
    // and no delivery receipts between them.
    {
        let (b, _) = Client::connect(d.socket()).await.unwrap();
        socket_call(&b, "agent.add", Some(&s), "b", json!({ "id": "b" })).await;
    }
    while socket_call(&c, "agent.list", Some(&s), "t", json!({}))
        .await
        .payload
        .unwrap()["agents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == "b" && a["status"] == "online")
    {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mut first = SseReader::open(d.get(&format!("/api/sessions/{s}/events/stream"))).await;
    let snapshot = first.next().await.unwrap();
    assert_eq!(snapshot.event, "snapshot");
    let start: u64 = snapshot.id.unwrap().parse().unwrap();
    let writer = tokio::spawn({
        let s = s.clone();
        async move {
            for i in 0..1000 {
                let mut m = Envelope::new("message.send", String::new(), String::new(), "a");
                m.session = Some(s.clone());
                m.dst = Some("b".into());
                m.payload = Some(json!({ "text": format!("{i}") }));
                assert_eq!(c.request(m).await.unwrap().error, None);
            }
            c
        }
    });
    let mut seen = BTreeSet::new();
    let mut last = start;
    for _ in 0..300 {
        let ev = first.next().await.unwrap();
        let seq: u64 = ev.id.unwrap().parse().unwrap();
        assert!(seen.insert(seq), "duplicate {seq}");
        last = seq;
    }
    drop(first); // the client goes away mid-stream
    let mut second = SseReader::open(
        d.get(&format!("/api/sessions/{s}/events/stream?since=1"))
            .header("Last-Event-ID", last.to_string()),
    )
    .await;
    let end = start + 1000;
    while last < end {
        let ev = second.next().await.unwrap();
        let seq: u64 = ev.id.unwrap().parse().unwrap();
        assert!(seen.insert(seq), "duplicate {seq} after resume");
        assert_eq!(ev.event, "message.send");
        last = seq;
    }
    writer.await.unwrap();
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        (start + 1..=end).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_cursor_ahead_of_the_head_gets_a_gap_event_then_live_records() {
    let d = Weaved::start();
    let created = d
        .post("/api/sessions", json!({ "name": "g" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let s = created["id"].as_str().unwrap();
    let mut sse = SseReader::open(
        d.get(&format!("/api/sessions/{s}/events/stream"))
            .header("Last-Event-ID", "999"),
    )
    .await;
    let gap = sse.next().await.unwrap();
    assert_eq!(gap.event, "gap");
    let g: Value = serde_json::from_str(&gap.data).unwrap();
    assert_eq!(
        (
            g["requested"].as_u64(),
            g["head"].as_u64(),
            g["first_available"].as_u64()
        ),
        (Some(999), Some(1), Some(1))
    );
    d.post(&format!("/api/sessions/{s}/close"), json!({}))
        .send()
        .await
        .unwrap();
    let closed = sse.next().await.unwrap();
    assert_eq!(
        (closed.event.as_str(), closed.id.as_deref()),
        ("session.closed", Some("2"))
    );
}

#[tokio::test]
async fn streams_end_cleanly_when_the_daemon_shuts_down() {
    let mut d = Weaved::start();
    let created = d
        .post("/api/sessions", json!({ "name": "bye" }))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let s = created["id"].as_str().unwrap().to_owned();
    let mut sse = SseReader::open(d.get(&format!("/api/sessions/{s}/events/stream"))).await;
    assert_eq!(sse.next().await.unwrap().event, "snapshot");
    let socket = d.socket();
    let code = tokio::task::spawn_blocking(move || d.terminate())
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    assert_eq!(sse.next().await, None, "the stream ends");
    assert!(!socket.exists());
}

#[tokio::test]
async fn a_cursor_below_what_is_retained_gets_a_gap_event_then_the_oldest_kept_record() {
    let mut d = Weaved::start();
    d.terminate();
    std::fs::write(d.home.join("config.toml"), "retain_events = 100\n").unwrap();
    d.spawn().unwrap();
    let (c, _events) = Client::connect(d.socket()).await.unwrap();
    let s = socket_call(&c, "session.create", None, "t", json!({ "name": "r" }))
        .await
        .session
        .unwrap();
    socket_call(&c, "agent.add", Some(&s), "a", json!({ "id": "a" })).await;
    for i in 0..300 {
        let mut m = Envelope::new("message.send", String::new(), String::new(), "a");
        m.session = Some(s.clone());
        m.dst = Some("a".into());
        m.ack = Some(codex_weave_transport_uds::Ack {
            mode: Some(codex_weave_transport_uds::AckMode::None),
            timeout_ms: None,
        });
        m.payload = Some(json!({ "text": format!("{i}") }));
        assert_eq!(c.request(m).await.unwrap().error, None);
    }
    let session = d.json(&format!("/api/sessions/{s}")).await;
    let first = session["first_seq"].as_u64().unwrap();
    assert!(first > 6, "pruned: first kept {first}");
    let mut sse = SseReader::open(
        d.get(&format!("/api/sessions/{s}/events/stream"))
            .header("Last-Event-ID", "5"),
    )
    .await;
    let gap = sse.next().await.unwrap();
    assert_eq!(gap.event, "gap");
    let g: Value = serde_json::from_str(&gap.data).unwrap();
    assert_eq!(
        (g["requested"].as_u64(), g["first_available"].as_u64()),
        (Some(5), Some(first))
    );
    let next = sse.next().await.unwrap();
    assert_eq!(
        next.id,
        Some(first.to_string()),
        "continues with the oldest record kept, no further gap"
    );
}
