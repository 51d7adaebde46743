//! Soak: agents in sessions exchanging messages and relays against a real `weaved` for a
//! while. Every agent sends to a random peer of its session about 5 times a second and
//! answers every relay step it gets; each session's first agent runs relays to three peers in a
//! row. Every 30 s a sample: the daemon's RSS, open file descriptors, store size (database and
//! WAL) and what was exchanged. At the end: growth of each, and store bytes per record (the
//! store grows with the data it keeps; memory and descriptors should not).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_weave_transport_uds::{Agent, AgentOptions, Envelope};
use serde_json::json;

use crate::daemon::Daemon;

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    received: AtomicU64,
    relays_done: AtomicU64,
    errors: AtomicU64,
    /// Requests not answered within [`ANSWER_WITHIN`] (also counted in `errors`).
    timeouts: AtomicU64,
    /// Error responses by code.
    refused: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

/// How long an agent waits for a response before counting it lost and going on.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// `true` when the request was answered `ok` in time.
async fn answered(
    request: impl std::future::Future<Output = Result<Envelope, codex_weave_transport_uds::ClientError>>,
    counts: &Counts,
) -> bool {
    match tokio::time::timeout(ANSWER_WITHIN, request).await {
        Ok(Ok(resp)) => match resp.error {
            None => true,
            Some(e) => {
                if std::env::var_os("SOAK_DEBUG").is_some() {
                    eprintln!("refused: {}: {}", e.code, e.message);
                }
                *counts.refused.lock().unwrap().entry(e.code).or_default() += 1;
                false
            }
        },
        Ok(Err(_)) => false,
        Err(_) => {
            counts.timeouts.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

struct Sample {
    at: u64,
    rss_mb: f64,
    fds: usize,
    store_mb: f64,
    sent: u64,
    received: u64,
    relays: u64,
    /// From `bus.stats`: deliveries not yet acked, runtime memory entries, idempotency keys.
    pending: u64,
    remembered: u64,
    idem_keys: u64,
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn store_mb(home: &Path) -> f64 {
    ["weave.db", "weave.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(home.join(f)).ok())
        .map(|m| m.len() as f64 / 1e6)
        .sum()
}

pub async fn run(weaved: &Path, seconds: u64, sessions: usize, per_session: usize) {
    #![allow(clippy::print_stdout)] // the soak's report is its output
    let daemon = Daemon::start(weaved);
    let socket = daemon.home.join("coord.sock");
    let counts = Arc::new(Counts::default());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    let mut joined = Vec::new();
    for s in 0..sessions {
        let (admin, mut events) = codex_weave_transport_uds::Client::connect(&socket)
            .await
            .expect("connect");
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        let sid = crate::ops::create_session(&admin, &format!("soak-{s}")).await;
        let ids: Vec<String> = (0..per_session).map(|i| format!("s{s}a{i}")).collect();
        for id in &ids {
            let opts = AgentOptions::new(&socket, &sid, id).name(id);
            joined.push((
                Agent::connect(opts).await.expect("agent joins"),
                ids.clone(),
            ));
        }
    }
    // Everyone has joined before anyone sends: a message to an agent not yet added would be
    // refused `unknown_agent`, rightly, and count as an error of the soak itself.
    for (agent, ids) in joined {
        let me = ids.iter().position(|i| i == agent.id()).expect("own id");
        tasks.push(tokio::spawn(agent_loop(
            agent,
            ids,
            me,
            counts.clone(),
            deadline,
        )));
    }
    eprintln!(
        "soak: {} agents in {sessions} sessions on {} for {seconds} s",
        sessions * per_session,
        daemon.home.display()
    );
    let started = Instant::now();
    let mut samples = Vec::new();
    let (stats_client, _) = codex_weave_transport_uds::Client::connect(&socket)
        .await
        .expect("connect");
    let bus_stats = || async {
        let stats = Envelope::new("bus.stats", String::new(), String::new(), "soak");
        let payload = tokio::time::timeout(ANSWER_WITHIN, stats_client.call(stats))
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|r| r.payload)
            .unwrap_or_default();
        let n = |k: &str| payload[k].as_u64().unwrap_or(0);
        (
            n("pending_deliveries"),
            n("runtime_remembered"),
            n("idempotency_keys"),
        )
    };
    let sample = |at: u64, (pending, remembered, idem_keys): (u64, u64, u64)| Sample {
        at,
        pending,
        remembered,
        idem_keys,
        rss_mb: daemon.rss_mb(),
        fds: fds(daemon.child.id()),
        store_mb: store_mb(&daemon.home),
        sent: counts.sent.load(Ordering::Relaxed),
        received: counts.received.load(Ordering::Relaxed),
        relays: counts.relays_done.load(Ordering::Relaxed),
    };
    samples.push(sample(0, bus_stats().await));
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(30).min(deadline - Instant::now())).await;
        let s = sample(started.elapsed().as_secs(), bus_stats().await);
        eprintln!(
            "  {:>4} s: RSS {:.1} MB, {} fds, store {:.1} MB, {} sent, {} received, {} relays, {} pending",
            s.at, s.rss_mb, s.fds, s.store_mb, s.sent, s.received, s.relays, s.pending
        );
        samples.push(s);
    }
    for t in tasks {
        let _ = t.await;
    }
    println!("weave-bench soak: `cargo run --release -p weave-bench -- soak --seconds {seconds} --sessions {sessions} --agents-per-session {per_session}`");
    println!();
    println!("| t (s) | RSS (MB) | fds | store (MB) | sent | received | relays done | pending deliveries | runtime entries | idempotency keys |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in &samples {
        println!(
            "| {} | {:.1} | {} | {:.1} | {} | {} | {} | {} | {} | {} |",
            s.at,
            s.rss_mb,
            s.fds,
            s.store_mb,
            s.sent,
            s.received,
            s.relays,
            s.pending,
            s.remembered,
            s.idem_keys
        );
    }
    let (first, warm, last) = (
        &samples[0],
        &samples[1.min(samples.len() - 1)],
        &samples[samples.len() - 1],
    );
    let records = last.sent.max(1) as f64;
    println!();
    println!(
        "RSS {:.1} → {:.1} MB after the first sample (warm-up) → {:.1} MB at the end; fds {} → {} → {}; \
         store {:.1} → {:.1} MB ({:.0} bytes per message sent, records and their deliveries included); \
         errors {} ({} unanswered within {} s; refused by code: {:?})",
        first.rss_mb,
        warm.rss_mb,
        last.rss_mb,
        first.fds,
        warm.fds,
        last.fds,
        first.store_mb,
        last.store_mb,
        (last.store_mb - first.store_mb) * 1e6 / records,
        counts.errors.load(Ordering::Relaxed),
        counts.timeouts.load(Ordering::Relaxed),
        ANSWER_WITHIN.as_secs(),
        counts.refused.lock().unwrap()
    );
    // Flat apart from the data kept: over the second half of the run, memory per message
    // exchanged, and descriptors. A soak that stalled or leaked fails (exit status 1).
    let half = &samples[(samples.len() - 1) / 2];
    let per_100k = (last.rss_mb - half.rss_mb) * 1e5 / (last.sent - half.sent).max(1) as f64;
    let stalled = last.sent <= half.sent;
    let leaked_fds = last.fds > first.fds + 5;
    let lost = counts.timeouts.load(Ordering::Relaxed);
    println!(
        "second half: RSS {:.1} → {:.1} MB ({per_100k:+.1} MB per 100,000 messages), pending deliveries {} → {}, fds {} → {}{}",
        half.rss_mb,
        last.rss_mb,
        half.pending,
        last.pending,
        half.fds,
        last.fds,
        if stalled || leaked_fds || lost > 0 {
            " — FAILED (stalled, descriptors leaked or requests unanswered)"
        } else {
            ""
        }
    );
    if stalled || leaked_fds || lost > 0 {
        std::process::exit(1);
    }
}

async fn agent_loop(
    mut agent: Agent,
    peers: Vec<String>,
    me: usize,
    counts: Arc<Counts>,
    deadline: Instant,
) {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (me as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut relay = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    while Instant::now() < deadline {
        tick.tick().await;
        let to = &peers[(me + 1 + next(peers.len() as u64 - 1) as usize) % peers.len()];
        let ok = answered(agent.send_text(to, "soak"), &counts).await;
        counts.sent.fetch_add(u64::from(ok), Ordering::Relaxed);
        counts.errors.fetch_add(u64::from(!ok), Ordering::Relaxed);
        if me == 0 && next(10) == 0 {
            // Each relay in turn: the previous one ends, a new one goes to three peers.
            if relay > 0 {
                let mut done = Envelope::new("relay.submit", String::new(), String::new(), "");
                done.payload = Some(
                    json!({ "relay_id": format!("{}-r{}", agent.id(), relay - 1), "done": {} }),
                );
                if answered(agent.request(done), &counts).await {
                    counts.relays_done.fetch_add(1, Ordering::Relaxed);
                }
            }
            let targets: Vec<&String> = peers.iter().skip(1).take(3).collect();
            let actions: Vec<_> = targets
                .iter()
                .map(|t| json!({ "type": "message", "dst": t, "text": "step" }))
                .collect();
            let mut submit = Envelope::new("relay.submit", String::new(), String::new(), "");
            submit.payload = Some(
                json!({ "relay_id": format!("{}-r{relay}", agent.id()), "targets": targets, "actions": actions }),
            );
            let ok = answered(agent.request(submit), &counts).await;
            counts.errors.fetch_add(u64::from(!ok), Ordering::Relaxed);
            relay += 1;
        }
        // Take what arrived: count messages, answer relay steps.
        while let Some(d) = agent
            .recv_kind(&["message.send", "action.submit"], Duration::ZERO)
            .await
        {
            if d.kind() == "message.send" {
                counts.received.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let payload = d.0.payload.clone().unwrap_or_default();
            for a in payload["actions"].as_array().into_iter().flatten() {
                let mut reply = Envelope::new("message.send", String::new(), String::new(), "");
                reply.dst = Some(d.0.src.clone());
                reply.payload = Some(
                    json!({ "text": "done", "kind": "reply", "reply_to_action_id": a["action_id"] }),
                );
                let ok = answered(agent.request(reply), &counts).await;
                counts.errors.fetch_add(u64::from(!ok), Ordering::Relaxed);
            }
            // Handled: a step is acked once answered, as a real agent does.
            let _ = agent.ack(&d);
        }
    }
}
