//! Faults a bus meets in real use, against the real binary: a client that sends and vanishes,
//! a thousand connections opened and dropped at once, agents dropping mid-relay, and a consumer
//! that stops reading while everyone else carries on.

use std::time::Duration;

use codex_weave_transport_uds::{Agent, AgentOptions};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use weave_test_kit::*;

#[tokio::test]
async fn a_client_that_sends_a_request_and_vanishes_harms_nobody() {
    let bus = BusProcess::start();
    let (s, c, mut b) = bus.pair("s").await;
    for i in 0..50 {
        let mut raw = UnixStream::connect(bus.socket()).await.unwrap();
        let line = format!("{{\"v\":1,\"type\":\"session.create\",\"id\":\"gone-{i}\",\"payload\":{{\"name\":\"x{i}\"}}}}\n");
        raw.write_all(line.as_bytes()).await.unwrap();
        drop(raw); // gone before the answer
    }
    c.send(&s, "a1", "b1", "still here").await;
    assert_eq!(text_of(&b.next_of("message.send").await), "still here");
    let stats = c
        .ok("bus.stats", None, "t", Value::Null)
        .await
        .payload
        .unwrap();
    assert_eq!(stats["counters"]["errors"], 0);
}

#[tokio::test]
async fn a_thousand_connections_opened_and_dropped_at_once() {
    let bus = BusProcess::start();
    let c = bus.connect().await;
    let mut conns = Vec::new();
    for _ in 0..1000 {
        conns.push(UnixStream::connect(bus.socket()).await.unwrap());
    }
    // The kernel completes a connect before the bus accepts it: wait for the bus to hold them all.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = c
            .ok("bus.stats", None, "t", Value::Null)
            .await
            .payload
            .unwrap();
        if stats["counters"]["connections_open"].as_u64().unwrap() >= 1001 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all accepted: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(conns);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = c
            .ok("bus.stats", None, "t", Value::Null)
            .await
            .payload
            .unwrap();
        if stats["counters"]["connections_open"] == 1 && stats["connections"] == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "connections not released: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = c.create_session("after").await;
    assert!(!s.is_empty());
}

#[tokio::test]
async fn agents_dropping_and_reconnecting_mid_relay_and_the_relay_completes() {
    let bus = BusProcess::start();
    let o = bus.connect().await;
    let s = o.create_session("s").await;
    o.add_agent(&s, "o", "Owner").await;
    let mut o = o;
    let opts = |id: &str| agent_options(&bus.socket(), &s, id).name(id);
    let w1 = Agent::connect(opts("w1")).await.unwrap();
    let w2 = Agent::connect(opts("w2")).await.unwrap();
    let accepted = o
        .call({
            let mut e = envelope(
                "relay.submit",
                Some(&s),
                "o",
                json!({
                    "relay_id": "r", "targets": ["w1", "w2"],
                    "actions": [
                        { "type": "message", "dst": "w1", "text": "one" },
                        { "type": "message", "dst": "w2", "text": "two" },
                        { "type": "wait" },
                        { "type": "message", "dst": "w1", "text": "three" }
                    ]
                }),
            );
            e.id = uuid::Uuid::new_v4().to_string();
            e
        })
        .await;
    assert_eq!(accepted.payload.unwrap()["status"], "accepted");
    // Both receive their step, then their terminals close before answering.
    let (mut w1, mut w2) = (w1, w2);
    w1.recv_kind(&["action.submit"], WAIT).await.unwrap();
    w2.recv_kind(&["action.submit"], WAIT).await.unwrap();
    drop(w1);
    drop(w2);
    o.wait_status(&s, "w1", "offline").await;
    o.wait_status(&s, "w2", "offline").await;
    // They come back: the unanswered step is redelivered; they answer; the relay goes on.
    let mut w1 = come_back_and_answer(opts("w1")).await;
    let mut w2 = come_back_and_answer(opts("w2")).await;
    let three = w1.recv_kind(&["action.submit"], WAIT).await.unwrap();
    assert_eq!(three.0.payload.unwrap()["actions"][0]["text"], "three");
    let done = o
        .call(envelope(
            "relay.submit",
            Some(&s),
            "o",
            json!({ "relay_id": "r", "done": { "summary": "made it" } }),
        ))
        .await;
    assert_eq!(done.payload.unwrap()["status"], "done");
    assert_eq!(
        w2.recv_kind(&["relay.done"], WAIT)
            .await
            .unwrap()
            .0
            .payload
            .unwrap()["summary"],
        "made it"
    );
    let _ = o.next_of("relay.done").await;
}

/// Reconnects an agent, expects its unanswered relay step again (marked), and answers it.
async fn come_back_and_answer(opts: AgentOptions) -> Agent {
    let id = opts.id.clone();
    let mut w = Agent::connect(opts).await.unwrap();
    let again = w.recv_kind(&["action.submit"], WAIT).await.unwrap();
    assert!(again.redelivered(), "{id}: the step comes again, marked");
    let action = again.0.payload.as_ref().unwrap()["actions"][0]["action_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut reply = envelope(
        "message.send",
        None,
        "",
        json!({ "text": "done", "kind": "reply", "reply_to_action_id": action }),
    );
    reply.dst = Some("o".into());
    assert_eq!(w.request(reply).await.unwrap().error, None);
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_reading_slows_nobody_and_its_backlog_waits_up_to_the_limit() {
    let bus = BusProcess::start_with(&[
        "--max-queue-per-agent",
        "3000",
        "--max-conn-buffer",
        "65536",
        "--max-inflight-per-agent",
        "100000",
    ]);
    let c = bus.connect().await;
    let s = c.create_session("s").await;
    c.add_agent(&s, "a1", "A").await;
    // The stuck consumer: adds itself, then never reads its socket.
    let mut stuck = UnixStream::connect(bus.socket()).await.unwrap();
    stuck
        .write_all(format!("{{\"v\":1,\"type\":\"agent.add\",\"id\":\"add\",\"session\":\"{s}\",\"src\":\"stuck\",\"payload\":{{\"id\":\"stuck\"}}}}\n").as_bytes())
        .await
        .unwrap();
    c.wait_status(&s, "stuck", "online").await;
    // A healthy pair meanwhile.
    let d = bus.connect().await;
    d.add_agent(&s, "d1", "D").await;
    let mut d = d;
    let text = "x".repeat(200);
    let mut refused_at = None;
    for i in 0..4000 {
        let resp = c
            .call(message(&s, "a1", "stuck", &format!("{i}:{text}")))
            .await;
        if let Some(e) = resp.error {
            assert_eq!(e.code, "inbox_full");
            refused_at = Some(i);
            break;
        }
        if i % 500 == 0 {
            // Everyone else keeps going while the consumer is stuck.
            c.send(&s, "a1", "d1", &format!("healthy {i}")).await;
            assert_eq!(
                text_of(&d.next_of("message.send").await),
                format!("healthy {i}")
            );
        }
    }
    assert_eq!(
        refused_at,
        Some(3000),
        "senders get inbox_full at the configured limit"
    );
    let stats = c
        .ok("agent.list", Some(&s), "t", Value::Null)
        .await
        .payload
        .unwrap();
    let stuck_row = stats["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "stuck")
        .unwrap()
        .clone();
    assert!(
        stuck_row["queued"].as_u64().unwrap() > 0,
        "the backlog waits in the queue: {stuck_row}"
    );
    // The consumer reads again: everything arrives, in order, nothing lost.
    let (read, _write) = stuck.into_split();
    let mut lines = tokio::io::BufReader::new(read);
    let mut next = 0;
    while next < 3000 {
        let mut line = String::new();
        tokio::time::timeout(
            WAIT,
            tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line),
        )
        .await
        .unwrap()
        .unwrap();
        let env: Value = serde_json::from_str(&line).unwrap();
        if env["type"] == "message.send" {
            let n: usize = env["payload"]["text"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(n, next, "in order");
            next += 1;
        }
    }
}

#[tokio::test]
async fn a_half_written_line_then_a_disconnect_is_dropped_and_harms_nobody() {
    let bus = BusProcess::start();
    let (s, c, mut b) = bus.pair("s").await;
    for cut in [1, 20, 60] {
        let line = format!("{{\"v\":1,\"type\":\"message.send\",\"id\":\"half-{cut}\",\"session\":\"{s}\",\"src\":\"a1\",\"dst\":\"b1\",\"payload\":{{\"text\":\"never\"}}}}\n");
        let mut raw = UnixStream::connect(bus.socket()).await.unwrap();
        raw.write_all(&line.as_bytes()[..cut.min(line.len() - 1)])
            .await
            .unwrap();
        drop(raw); // gone mid-line
    }
    c.send(&s, "a1", "b1", "whole").await;
    // Only the whole message arrives: no half line was taken for a request.
    assert_eq!(text_of(&b.next_of("message.send").await), "whole");
    b.none_of("message.send", Duration::from_millis(200)).await;
    let history = c
        .ok("events.history", Some(&s), "t", json!({}))
        .await
        .payload
        .unwrap();
    let sends = history["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["envelope"]["type"] == "message.send")
        .count();
    assert_eq!(sends, 1);
}

/// A client sends requests without reading the answers until the bus stops reading from it
/// (its backlog is past `--max-conn-buffer`), then dies. Its agent goes offline, and a restart
/// takes its id back at once.
#[tokio::test]
async fn a_client_that_dies_with_a_full_backlog_goes_offline() {
    let bus = BusProcess::start_with(&["--max-conn-buffer", "65536"]);
    let admin = bus.connect().await;
    let s = admin.create_session("s").await;
    let mut raw = RawConn::open(&bus).await;
    let add = request_line(
        "agent.add",
        &s,
        "b1",
        json!({ "payload": { "name": "Bob" } }),
    );
    raw.writer.write_all(&add).await.unwrap();
    admin.wait_status(&s, "b1", "online").await;
    // About 4 MB of answers that are never read; the socket takes a few hundred KB of them.
    let list = request_line("agent.list", &s, "b1", json!({}));
    let burst: Vec<u8> = list
        .iter()
        .copied()
        .cycle()
        .take(list.len() * 200)
        .collect();
    for _ in 0..100 {
        let sent = tokio::time::timeout(Duration::from_secs(2), raw.writer.write_all(&burst));
        if sent.await.is_err() {
            break; // the bus stopped reading: the backlog is full
        }
    }
    drop(raw);
    admin.wait_status(&s, "b1", "offline").await;
    let bob = bus.connect().await;
    bob.add_agent(&s, "b1", "Bob").await;
}
