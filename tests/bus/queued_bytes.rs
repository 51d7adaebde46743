//! A queue far larger than memory: 100,000 messages of 64 KiB (6.25 GiB) for an agent that reads
//! but never acks. Past `--max-memory` a queued message keeps only a stub in memory and is read
//! back from the store when it is sent, so the bus's RSS stays near its budget; the messages
//! still arrive whole and in order. Figures in docs/weave/reliability.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use codex_weave_transport_uds::Framing;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use weave_test_kit::*;

const MESSAGES: usize = 100_000;
const PAYLOAD: usize = 64 * 1024;
/// The memory budget for queued payloads given to the bus (its default, `--max-memory`).
const BUDGET_MB: u64 = 64;
/// The budget, the bounded caches (runtime, remembered responses, the store's page cache: about
/// 80 MB after 100,000 messages), the connection buffers (`--max-conn-buffer`, 8 MiB each) and
/// the program: far below the 6,250 MiB queued.
const RSS_BOUND_MB: u64 = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_of_6_gib_for_an_agent_that_never_acks_stays_inside_the_memory_budget() {
    if framing() == Framing::Protobuf {
        return; // memory, not framing: one run is enough (the lines below are NDJSON anyway)
    }
    let bus = BusProcess::start_with(&[
        "--max-memory",
        &(BUDGET_MB << 20).to_string(),
        "--max-queue-per-agent",
        "200000",
        "--max-queue-bytes-per-agent",
        &(8u64 << 30).to_string(),
    ]);
    let admin = bus.connect().await;
    let s = admin.create_session("big").await;

    // The receiver reads everything it is sent and acks nothing.
    let seen = Arc::new(AtomicU64::new(0));
    let (b_read, b_write) = raw_agent(&bus.socket(), &s, "b", "B").await;
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(b_read).lines();
            let mut first = None;
            while let Ok(Some(text)) = lines.next_line().await {
                if text.contains(r#""type":"message.send""#)
                    && seen.fetch_add(1, Ordering::Relaxed) == 0
                {
                    first = Some(text);
                }
            }
            first
        })
    };
    admin.wait_status(&s, "b", "online").await;

    let peaks = Peaks::start(bus.pid(), None);

    // The sender pipelines its messages (each numbered at the front of its text) and counts
    // the answers.
    let (a_read, mut a_write) = raw_agent(&bus.socket(), &s, "a", "A").await;
    let answers = tokio::spawn(async move {
        let mut lines = BufReader::new(a_read).lines();
        let mut refused = Vec::new();
        for _ in 0..=MESSAGES {
            let text = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
                .await
                .expect("answers keep coming")
                .unwrap()
                .unwrap();
            if text.contains(r#""error""#) && refused.len() < 3 {
                refused.push(text);
            }
        }
        refused
    });
    let filler = "x".repeat(PAYLOAD - 16);
    let mut chunk = Vec::new();
    for i in 0..MESSAGES {
        // Written by hand, not serialized: 6 GiB through serde in a debug build took minutes.
        let id = uuid::Uuid::new_v4();
        let text = format!(
            r#"{{"v":1,"type":"message.send","id":"{id}","ts":"2026-12-07T00:00:00Z","src":"a","session":"{s}","dst":"b","payload":{{"text":"{i:>10} {filler}"}}}}"#
        );
        chunk.extend_from_slice(text.as_bytes());
        chunk.push(b'\n');
        if chunk.len() > 1 << 20 {
            a_write.write_all(&chunk).await.unwrap();
            chunk.clear();
        }
    }
    a_write.write_all(&chunk).await.unwrap();
    let refused = answers.await.unwrap();
    assert!(refused.is_empty(), "refused: {refused:?}");
    let peak_mb = peaks.stop().await.rss_mb;

    let stats = admin
        .ok("bus.stats", None, "t", Value::Null)
        .await
        .payload
        .unwrap();
    let (pending, hot) = (
        stats["pending_deliveries"].as_u64().unwrap(),
        stats["pending_bytes_in_memory"].as_u64().unwrap(),
    );
    eprintln!(
        "bus RSS: peak {peak_mb} MB while {MESSAGES} x 64 KiB were queued for an agent that never acks \
         ({} in flight to it); pending {pending}, {} MiB of them in memory (budget {BUDGET_MB} MiB)",
        seen.load(Ordering::Relaxed),
        hot >> 20
    );
    assert_eq!(pending, MESSAGES as u64, "every message waits for its ack");
    assert!(hot <= BUDGET_MB << 20, "{hot} bytes in memory");
    assert!(peak_mb < RSS_BOUND_MB, "peak RSS {peak_mb} MB");

    // What was sent is whole; after a reconnect the oldest comes again, whole, read back from
    // the store.
    drop(b_write);
    let first = reader.await.unwrap().expect("b was sent messages");
    let first: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["payload"]["text"], format!("{:>10} {filler}", 0));
    admin.wait_status(&s, "b", "offline").await;
    let mut b = bus.connect().await;
    b.add_agent(&s, "b", "B").await;
    let again = b.next_of("message.send").await;
    assert_eq!(text_of(&again), format!("{:>10} {filler}", 0));
    assert_eq!(meta_weave(&again, "redelivered"), Some(&json!(true)));
}
