//! `kill -9` of the bus at random points of a 100,000-message run with acks, 10 rounds, while a
//! relay per round waits for its worker's reply:
//! - every message whose sender got `ok` is delivered at least once;
//! - no message is delivered again once its ack was confirmed committed;
//! - first deliveries keep the order of sending;
//! - every accepted relay dispatches its held step after the reply, and ends when its owner
//!   says done.
//!
//! The sender keeps 64 requests in flight; after a restart it retries what was unanswered with
//! the same idempotency key, as a real client would.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_weave_transport_uds::{Client, Envelope};
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;
use weave_test_kit::*;

const TOTAL: u64 = 100_000;
const ROUNDS: u64 = 10;
const WINDOW: usize = 64;
/// The receiver confirms its acks with a request after this many deliveries.
const CONFIRM_EVERY: usize = 50;

#[derive(Default)]
struct Seen {
    /// Message numbers in order of first delivery.
    first_order: Vec<u64>,
    delivered: HashMap<u64, u32>,
    /// Numbers whose ack is known committed.
    confirmed: BTreeSet<u64>,
    /// Relay steps the worker received: (relay, text).
    steps: BTreeSet<(String, String)>,
    notes: Vec<String>,
}

/// Receives as b1 until the connection dies: acks everything, and every [`CONFIRM_EVERY`]
/// deliveries sends a request; its answer proves the acks before it were committed.
async fn receive(
    client: Client,
    mut events: UnboundedReceiver<Envelope>,
    s: String,
    seen: Arc<Mutex<Seen>>,
) {
    let mut unconfirmed = Vec::new();
    loop {
        let env = match tokio::time::timeout(Duration::from_millis(50), events.recv()).await {
            Ok(Some(env)) => Some(env),
            Ok(None) => return,
            Err(_) => None, // quiet: confirm what is pending
        };
        if let Some(env) = env.filter(|e| e.kind == "message.send") {
            let n: u64 = text_of(&env).parse().unwrap();
            {
                let mut seen = seen.lock().unwrap();
                assert!(
                    !seen.confirmed.contains(&n),
                    "message {n} delivered again after its ack was committed"
                );
                let count = seen.delivered.entry(n).or_default();
                *count += 1;
                if *count == 1 {
                    seen.first_order.push(n);
                    let marked = meta_weave(&env, "redelivered").is_some();
                    seen.notes
                        .push(format!("{n}{}", if marked { " (redelivered)" } else { "" }));
                }
            }
            let mut ack = envelope("message.ack", Some(&s), "b1", Value::Null);
            ack.corr = Some(env.corr.clone().unwrap_or(env.id.clone()));
            if client.send(ack).is_err() {
                return;
            }
            unconfirmed.push(n);
            if unconfirmed.len() < CONFIRM_EVERY {
                continue;
            }
        }
        if unconfirmed.is_empty() {
            continue;
        }
        match client
            .request(envelope("agent.list", Some(&s), "b1", Value::Null))
            .await
        {
            Ok(resp) if resp.error.is_none() => {
                seen.lock().unwrap().confirmed.extend(unconfirmed.drain(..));
            }
            _ => return,
        }
    }
}

/// Works as w until the connection dies: answers every relay step with a reply.
async fn work(
    client: Client,
    mut events: UnboundedReceiver<Envelope>,
    s: String,
    seen: Arc<Mutex<Seen>>,
) {
    while let Some(env) = events.recv().await {
        if env.kind != "action.submit" {
            continue;
        }
        let payload = env.payload.unwrap_or_default();
        let relay = payload["relay_id"].as_str().unwrap_or_default().to_owned();
        for action in payload["actions"].as_array().into_iter().flatten() {
            let text = action["text"].as_str().unwrap_or_default().to_owned();
            seen.lock().unwrap().steps.insert((relay.clone(), text));
            let mut reply = envelope(
                "message.send",
                Some(&s),
                "w",
                json!({ "text": "done", "kind": "reply", "reply_to_action_id": action["action_id"] }),
            );
            reply.dst = Some("o".into());
            if client.request(reply).await.is_err() {
                return;
            }
        }
    }
}

fn keyed(s: &str, n: u64) -> Envelope {
    let mut env = message(s, "a1", "b1", &n.to_string());
    env.idempotency_key = Some(format!("msg-{n}"));
    env
}

fn relay(s: &str, round: u64) -> Envelope {
    let mut env = envelope(
        "relay.submit",
        Some(s),
        "o",
        json!({ "relay_id": format!("r{round}"), "targets": ["w"], "actions": [
            { "type": "message", "dst": "w", "text": "step 1" },
            { "type": "wait" },
            { "type": "message", "dst": "w", "text": "step 2" }
        ] }),
    );
    env.idempotency_key = Some(format!("relay-{round}"));
    env
}

/// Connects as `id` (adding it again) and runs `task` on its lines.
async fn join<F, Fut>(
    bus: &BusProcess,
    s: &str,
    id: &str,
    seen: &Arc<Mutex<Seen>>,
    task: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnOnce(Client, UnboundedReceiver<Envelope>, String, Arc<Mutex<Seen>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let conn = bus.connect().await;
    conn.add_agent(s, id, &id.to_uppercase()).await;
    let (client, events) = conn.into_parts();
    tokio::spawn(task(client, events, s.to_owned(), seen.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_at_random_points_of_a_100k_run_loses_and_repeats_nothing_acknowledged() {
    let mut bus = BusProcess::start();
    let s = bus.connect().await.create_session("load").await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut oked: BTreeMap<u64, String> = BTreeMap::new();
    let mut relays_oked = BTreeSet::new();
    let mut unanswered: Vec<u64> = Vec::new();
    let mut next = 0u64;
    let mut rng = 0x9E3779B97F4A7C15u64;
    for round in 0..ROUNDS {
        let rx = join(&bus, &s, "b1", &seen, receive).await;
        let wk = join(&bus, &s, "w", &seen, work).await;
        let owner = bus.connect().await;
        owner.add_agent(&s, "o", "O").await;
        let sender = bus.connect().await;
        sender.add_agent(&s, "a1", "A").await;
        // What the last kill left unanswered, retried with the same keys.
        unanswered.sort_unstable(); // (collected in order of completion)
        for n in std::mem::take(&mut unanswered) {
            let resp = sender.call(keyed(&s, n)).await;
            assert_eq!(resp.error, None, "retry of {n}");
            oked.insert(n, resp.payload.unwrap()["id"].as_str().unwrap().to_owned());
        }
        for r in 0..round {
            if !relays_oked.contains(&r) && owner.call(relay(&s, r)).await.error.is_none() {
                relays_oked.insert(r);
            }
        }
        if owner.call(relay(&s, round)).await.error.is_none() {
            relays_oked.insert(round);
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let end = (round + 1) * TOTAL / ROUNDS;
        let kill_at = if round + 1 == ROUNDS {
            u64::MAX
        } else {
            next + (end - next) / 4 + rng % ((end - next) / 2)
        };
        eprintln!("round {round}: from message {next}, kill at {kill_at}");
        let pid = nix::unistd::Pid::from_raw(bus.pid() as i32);
        let mut inflight = JoinSet::new();
        let client = sender.client.clone();
        while next < end {
            if next == kill_at {
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
                break;
            }
            while inflight.len() >= WINDOW {
                collect(
                    inflight.join_next().await.unwrap().unwrap(),
                    &mut oked,
                    &mut unanswered,
                );
            }
            // Submitted here, in order; only the wait for the answer runs in the task.
            let (answer, n) = (client.submit(keyed(&s, next)), next);
            inflight.spawn(async move {
                match answer {
                    Ok(answer) => (n, answer.await),
                    Err(e) => (n, Err(e)),
                }
            });
            next += 1;
        }
        while let Some(done) = inflight.join_next().await {
            collect(done.unwrap(), &mut oked, &mut unanswered);
        }
        if kill_at != u64::MAX {
            bus.kill9(); // reap
            for task in [rx, wk] {
                tokio::time::timeout(WAIT, task)
                    .await
                    .expect("ends with the bus")
                    .unwrap();
            }
            bus.spawn().unwrap();
        } else {
            // The last round runs to its end: everything ok'd must arrive.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let missing = oked
                    .keys()
                    .filter(|n| !seen.lock().unwrap().delivered.contains_key(n))
                    .count();
                if missing == 0 {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{missing} ok'd messages never delivered"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Each accepted relay got its held step after the reply, and ends.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            for r in &relays_oked {
                let step2 = (format!("r{r}"), "step 2".to_owned());
                while !seen.lock().unwrap().steps.contains(&step2) {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "relay r{r} never reached step 2"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let done = owner
                    .call(envelope(
                        "relay.submit",
                        Some(&s),
                        "o",
                        json!({ "relay_id": format!("r{r}"), "done": {} }),
                    ))
                    .await;
                assert_eq!(done.payload.unwrap()["status"], "done", "relay r{r}");
            }
            rx.abort();
            wk.abort();
        }
    }
    let seen = seen.lock().unwrap();
    assert!(unanswered.is_empty());
    assert_eq!(oked.len() as u64, TOTAL, "every message ok'd in the end");
    if let Some(w) = seen.first_order.windows(2).position(|w| w[0] > w[1]) {
        panic!(
            "first deliveries out of order at {w}: {:?}",
            &seen.notes[w.saturating_sub(3)..w + 8]
        );
    }
    assert_eq!(relays_oked.len() as u64, ROUNDS);
    let again = seen.delivered.values().filter(|c| **c > 1).count();
    eprintln!(
        "{} messages ok'd over {ROUNDS} rounds ({} kills), {} delivered again before their ack was confirmed, {} acks confirmed",
        oked.len(),
        ROUNDS - 1,
        again,
        seen.confirmed.len()
    );
}

fn collect(
    (n, result): (
        u64,
        Result<Envelope, codex_weave_transport_uds::ClientError>,
    ),
    oked: &mut BTreeMap<u64, String>,
    unanswered: &mut Vec<u64>,
) {
    match result {
        Ok(resp) => {
            assert_eq!(resp.error, None, "message {n}");
            oked.insert(n, resp.payload.unwrap()["id"].as_str().unwrap().to_owned());
        }
        Err(_) => unanswered.push(n),
    }
}
