//! The event log over the socket: every change is a numbered record; `events.history` pages it
//! (`since` exclusive; without `since` the latest N); `events.stream` replays and follows live
//! with no gap and no duplicate, or ends with a final ok.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use weave_test_kit::*;

fn record_types(records: &Value) -> Vec<String> {
    records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["envelope"]["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_state_change_is_a_numbered_record() {
    let bus = BusProcess::start();
    let c = bus.connect().await;
    let s = c.create_session("s").await;
    c.add_agent(&s, "a1", "Alice").await;
    let b = bus.connect().await;
    b.add_agent(&s, "b1", "Bob").await;
    c.send(&s, "a1", "b1", "hi").await;
    b.ok(
        "agent.update",
        Some(&s),
        "b1",
        json!({ "id": "b1", "name": "Robert" }),
    )
    .await;
    b.ok("agent.remove", Some(&s), "b1", json!({ "id": "b1" }))
        .await;
    drop(b);
    c.ok("session.close", Some(&s), "t", Value::Null).await;
    let h = c
        .ok("events.history", Some(&s), "t", json!({ "limit": 100 }))
        .await
        .payload
        .unwrap();
    let types = record_types(&h["records"]);
    assert_eq!(
        types,
        [
            "session.created",
            "agent.added",
            "agent.online",
            "agent.added",
            "agent.online",
            "message.send",
            "receipt.updated",
            "agent.updated",
            "delivery.failed",
            "agent.removed",
            "session.closed"
        ]
    );
    let seqs: Vec<u64> = h["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=11).collect::<Vec<_>>());
    for r in h["records"].as_array().unwrap() {
        let ts = r["ts"].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).is_ok(),
            "{ts}"
        );
        let env = &r["envelope"];
        assert_eq!(env["v"], 1);
        assert!(env["id"].as_str().is_some_and(|s| !s.is_empty()));
        if env["src"] == "weave" {
            assert_eq!(env["session"], s.as_str());
        }
    }
    assert_eq!(h["head"], 11);
}

#[tokio::test]
async fn history_pages_latest_without_since_oldest_after_since() {
    let bus = BusProcess::start();
    let c = bus.connect().await;
    let s = c.create_session("s").await; // seq 1
    c.add_agent(&s, "a1", "A").await; // 2, 3
                                      // Sent to an agent that is offline, so no delivery receipt falls between the messages.
    bus.connect().await.add_agent(&s, "b1", "B").await; // 4, 5, then offline: 6
    c.wait_status(&s, "b1", "offline").await;
    for i in 0..14 {
        c.send(&s, "a1", "b1", &format!("{i}")).await; // 7..=20
    }
    let seqs = |v: &Value| -> Vec<u64> {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect()
    };
    let latest = c
        .ok("events.history", Some(&s), "t", json!({ "limit": 3 }))
        .await
        .payload
        .unwrap();
    assert_eq!(seqs(&latest), [18, 19, 20]);
    let after = c
        .ok(
            "events.history",
            Some(&s),
            "t",
            json!({ "since": 5, "limit": 3 }),
        )
        .await
        .payload
        .unwrap();
    assert_eq!(seqs(&after), [6, 7, 8]);
    assert_eq!(after["next"], 8);
    let page2 = c
        .ok(
            "events.history",
            Some(&s),
            "t",
            json!({ "since": after["next"], "limit": 3 }),
        )
        .await
        .payload
        .unwrap();
    assert_eq!(seqs(&page2), [9, 10, 11]);
    let end = c
        .ok("events.history", Some(&s), "t", json!({ "since": 20 }))
        .await
        .payload
        .unwrap();
    assert_eq!(seqs(&end), Vec::<u64>::new());
    assert_eq!(end["next"], 20);
    assert_eq!(
        c.err("events.history", Some(&s), "t", json!({ "since": "x" }))
            .await,
        "bad_request"
    );
    assert_eq!(
        c.err("events.history", Some("nope"), "t", Value::Null)
            .await,
        "unknown_session"
    );
}

#[tokio::test]
async fn stream_without_follow_replays_then_ends_with_ok() {
    let bus = BusProcess::start();
    let mut c = bus.connect().await;
    let s = c.create_session("s").await;
    c.add_agent(&s, "a1", "A").await;
    let req = envelope("events.stream", Some(&s), "t", json!({ "since": 1 }));
    let resp = c.call(req).await; // the final ok arrives after the records
    assert_eq!(resp.error, None);
    let r1 = c.next_of("events.record").await;
    let r2 = c.next_of("events.record").await;
    assert_eq!(r1.corr, resp.corr);
    assert_eq!(
        (
            r1.payload.unwrap()["seq"].as_u64(),
            r2.payload.unwrap()["seq"].as_u64()
        ),
        (Some(2), Some(3))
    );
}

/// Records written in the very batch that starts a follower are replayed to it: the replay
/// reads what the batch wrote before it is committed (through a cluster follower too, where the
/// leader's store is the replicated one). The writes and the follow go out in one `write`.
#[tokio::test]
async fn a_follow_in_the_batch_that_wrote_the_records_it_asks_for_gets_them() {
    let bus = BusProcess::start();
    let c = bus.connect().await;
    let s = c.create_session("s").await;
    c.add_agent(&s, "b1", "B").await;
    drop(c);
    let admin = bus.connect().await;
    admin.wait_status(&s, "b1", "offline").await;
    for round in 0..20 {
        let head = admin
            .ok("session.get", Some(&s), "t", Value::Null)
            .await
            .payload
            .unwrap()["session"]["last_seq"]
            .as_u64()
            .unwrap();
        let mut raw = RawConn::open(&bus).await;
        let me = format!("w{round}");
        let mut burst = request_line("agent.add", &s, &me, json!({ "payload": { "id": me } }));
        for i in 0..5 {
            let text = json!({ "dst": "b1", "payload": { "text": format!("{me} m{i}") } });
            burst.extend(request_line("message.send", &s, &me, text));
        }
        let follow = json!({ "payload": { "since": head, "follow": true } });
        burst.extend(request_line("events.stream", &s, &me, follow));
        raw.writer.write_all(&burst).await.unwrap();
        // agent.added, agent.online, then the five messages (to an offline agent: nothing
        // else is recorded between them).
        let mut records = Vec::new();
        while records.len() < 7 {
            let line: Value = serde_json::from_str(&raw.next_of("events.record").await).unwrap();
            let seq = line["payload"]["seq"].as_u64().unwrap();
            let kind = line["payload"]["envelope"]["type"]
                .as_str()
                .unwrap()
                .to_owned();
            records.push((seq, kind));
        }
        let seqs: Vec<u64> = records.iter().map(|r| r.0).collect();
        assert_eq!(
            seqs,
            (head + 1..=head + 7).collect::<Vec<_>>(),
            "round {round}: {records:?}"
        );
        let sends = records.iter().filter(|r| r.1 == "message.send").count();
        assert_eq!(sends, 5, "round {round}: {records:?}");
    }
}

#[tokio::test]
async fn stream_with_follow_while_1000_records_are_written_has_no_gap_and_no_duplicate() {
    let bus = BusProcess::start();
    let c = bus.connect().await;
    let s = c.create_session("s").await;
    c.add_agent(&s, "a1", "A").await;
    let writer = tokio::spawn({
        let s = s.clone();
        async move {
            for i in 0..1000 {
                c.send(&s, "a1", "a1", &format!("{i}")).await;
            }
            c
        }
    });
    // Join mid-run, from the start of the log.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut w = bus.connect().await;
    let resp = w
        .call(envelope(
            "events.stream",
            Some(&s),
            "t",
            json!({ "since": 0, "follow": true }),
        ))
        .await;
    assert_eq!(resp.error, None);
    let mut seen = BTreeMap::new();
    while seen.len() < 1003 {
        let rec = w.next_of("events.record").await;
        let p = rec.payload.unwrap();
        let seq = p["seq"].as_u64().unwrap();
        assert!(seen.insert(seq, p).is_none(), "duplicate seq {seq}");
    }
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (1..=1003).collect::<Vec<_>>()
    );
    let c = writer.await.unwrap();
    // Streamed records are the very records history serves.
    let h = c
        .ok(
            "events.history",
            Some(&s),
            "t",
            json!({ "since": 500, "limit": 3 }),
        )
        .await
        .payload
        .unwrap();
    for r in h["records"].as_array().unwrap() {
        assert_eq!(&seen[&r["seq"].as_u64().unwrap()], r);
    }
}

#[tokio::test]
async fn retention_prunes_old_records_but_never_one_a_pending_delivery_needs() {
    let bus = BusProcess::start_with(&["--retain-events", "100"]);
    let c = bus.connect().await;
    let s = c.create_session("s").await;
    c.add_agent(&s, "a1", "A").await;
    for id in ["b1", "c1"] {
        let other = bus.connect().await;
        other.add_agent(&s, id, id).await;
        drop(other);
        c.wait_status(&s, id, "offline").await;
    }
    let kept = c
        .send(&s, "a1", "b1", "for b, while offline")
        .await
        .payload
        .unwrap()["seq"]
        .as_u64()
        .unwrap();
    c.send(&s, "a1", "c1", "for c, who will leave").await;
    // c1 leaves: its message is dead-lettered (and must stay readable after pruning).
    let c1 = bus.connect().await;
    c1.add_agent(&s, "c1", "c1").await;
    c1.ok("agent.remove", Some(&s), "c1", json!({ "id": "c1" }))
        .await;
    for i in 0..400 {
        c.send(&s, "a1", "a1", &format!("{i}")).await;
    }
    let first_seq = |v: &Value| v["records"][0]["seq"].as_u64().unwrap();
    let page = c
        .ok(
            "events.history",
            Some(&s),
            "t",
            json!({ "since": 0, "limit": 10 }),
        )
        .await
        .payload
        .unwrap();
    assert!(first_seq(&page) > 1, "old records were pruned");
    assert!(
        first_seq(&page) <= kept,
        "the record b1 still has to receive is kept"
    );
    let dead = c
        .ok("deliveries.dead", Some(&s), "a1", Value::Null)
        .await
        .payload
        .unwrap();
    assert_eq!(
        dead["dead"][0]["envelope"]["payload"]["text"],
        "for c, who will leave"
    );
    // b1 comes back and gets its message; once acked, retention moves on past it.
    let mut b = bus.connect().await;
    b.add_agent(&s, "b1", "b1").await;
    let got = b.next_of("message.send").await;
    assert_eq!(text_of(&got), "for b, while offline");
    b.ack(&s, "b1", &got);
    b.ok("agent.list", Some(&s), "b1", Value::Null).await;
    for i in 0..200 {
        c.send(&s, "a1", "a1", &format!("more {i}")).await;
    }
    let page = c
        .ok(
            "events.history",
            Some(&s),
            "t",
            json!({ "since": 0, "limit": 10 }),
        )
        .await
        .payload
        .unwrap();
    assert!(first_seq(&page) > kept);
    let session = c
        .ok("session.get", Some(&s), "t", Value::Null)
        .await
        .payload
        .unwrap();
    assert_eq!(
        session["session"]["first_seq"].as_u64(),
        Some(first_seq(&page))
    );
}
