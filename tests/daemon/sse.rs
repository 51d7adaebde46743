//! The SSE event stream of a real `weaved`: a snapshot first, resume with Last-Event-ID with no
//! gap and no duplicate while records are being written, `gap` for a cursor ahead of the head,
//! a clean end at shutdown, one feed shared by a session's streams (a stalled one catches up
//! from the log), and keep-alive comments on a quiet stream.

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

/// A session where agent `a` (on the returned socket client) sends to agent `b`, which went
/// offline: nothing is delivered, so the log holds the messages and no delivery receipts between
/// them.
async fn sender_and_absent_agent(d: &Weaved, name: &str) -> (Client, String) {
    let (c, _events) = Client::connect(d.socket()).await.unwrap();
    let s = socket_call(&c, "session.create", None, "t", json!({ "name": name }))
        .await
        .session
        .unwrap();
    socket_call(&c, "agent.add", Some(&s), "a", json!({ "id": "a" })).await;
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
    (c, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_last_event_id_mid_stream_has_no_gap_and_no_duplicate() {
    let d = Weaved::start();
    let (c, s) = sender_and_absent_agent(&d, "sse").await;
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
    let s = d.create_session("g").await;
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
    let s = d.create_session("bye").await;
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

/// Streams of one session share one feed. One that stops reading while 3,000 records of 4 KB go
/// by (far past the feed's 1,024 events and the sockets' buffers) gets every one of them, once
/// and in order, when it reads again — from the log — while the others stay live throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_of_a_session_share_one_feed_and_a_stalled_one_catches_up_from_the_log() {
    const RECORDS: u64 = 3000;
    let d = Weaved::start();
    let (c, s) = sender_and_absent_agent(&d, "feed").await;
    let open = || SseReader::open(d.get(&format!("/api/sessions/{s}/events/stream")));
    let (mut live1, mut live2, mut stalled) = (open().await, open().await, open().await);
    let mut start = 0;
    for sse in [&mut live1, &mut live2, &mut stalled] {
        let snapshot = sse.next().await.unwrap();
        assert_eq!(snapshot.event, "snapshot");
        start = snapshot.id.unwrap().parse().unwrap();
    }
    assert_eq!(d.metric("weave_sse_feeds").await, Some(1.0));
    assert_eq!(d.metric("weave_sse_clients").await, Some(3.0));
    // A second session's stream has a feed of its own.
    let other = socket_call(&c, "session.create", None, "t", json!({ "name": "other" }))
        .await
        .session
        .unwrap();
    let mut elsewhere =
        SseReader::open(d.get(&format!("/api/sessions/{other}/events/stream"))).await;
    assert_eq!(elsewhere.next().await.unwrap().event, "snapshot");
    assert_eq!(d.metric("weave_sse_feeds").await, Some(2.0));

    let text = "x".repeat(4096);
    let writer = tokio::spawn({
        let s = s.clone();
        async move {
            for _ in 0..RECORDS {
                // To an agent that went away: one record each, nothing delivered.
                let mut m = Envelope::new("message.send", String::new(), String::new(), "a");
                m.session = Some(s.clone());
                m.dst = Some("b".into());
                m.payload = Some(json!({ "text": text }));
                assert_eq!(c.request(m).await.unwrap().error, None);
            }
        }
    });
    let read_all = |mut sse: SseReader| async move {
        let mut seqs = Vec::new();
        while seqs.len() < RECORDS as usize {
            let ev = sse.next().await.expect("the stream goes on");
            seqs.push(ev.id.unwrap().parse::<u64>().unwrap());
        }
        seqs
    };
    let (one, two) = tokio::join!(read_all(live1), read_all(live2));
    writer.await.unwrap();
    let late = read_all(stalled).await;
    let expected: Vec<u64> = (start + 1..=start + RECORDS).collect();
    for (name, got) in [("live", one), ("live", two), ("stalled", late)] {
        assert!(
            got == expected,
            "{name} stream: not every record once in order"
        );
    }
    // The stalled one did fall behind its feed and read from the log.
    let replays = d.metric("weave_sse_replays_total").await;
    assert!(replays.is_some_and(|n| n >= 1.0), "{replays:?}");
}

/// A quiet stream gets a keep-alive comment every 15 s, and none while events flow.
#[tokio::test]
async fn a_quiet_stream_gets_a_keep_alive_comment_every_15_seconds() {
    use futures::StreamExt;
    let d = Weaved::start();
    let s = d.create_session("quiet").await;
    let resp = d
        .get(&format!("/api/sessions/{s}/events/stream"))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let started = std::time::Instant::now();
    let mut seen = String::new();
    let mut comments = Vec::new();
    while comments.len() < 2 {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(40), body.next())
            .await
            .expect("a keep-alive within 40 s")
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = seen.find("\n\n") {
            let block: String = seen.drain(..end + 2).collect();
            if block.starts_with(':') {
                comments.push(started.elapsed());
            } else {
                assert!(block.contains("event: snapshot"), "{block}");
            }
        }
    }
    let secs = |d: std::time::Duration| d.as_secs_f64();
    assert!((14.0..20.0).contains(&secs(comments[0])), "{comments:?}");
    assert!(
        (13.0..20.0).contains(&secs(comments[1] - comments[0])),
        "{comments:?}"
    );
}
