//! `kill -9` of the bus the instant an `ok` arrives, 20 times in a row on a running load: every
//! message whose sender got `ok` is delivered, no message whose ack was confirmed is delivered
//! again, a retried send is recognised by its idempotency key, and first deliveries keep the
//! order of sending.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_weave_transport_uds::{Client, Envelope};
use serde_json::Value;
use weave_test_kit::*;

#[derive(Default)]
struct Seen {
    /// message number → original message ids (corr) it was delivered under.
    deliveries: BTreeMap<u64, Vec<String>>,
    /// numbers in order of first delivery.
    first_order: Vec<u64>,
    /// numbers whose ack the bus confirmed (a later request on the same connection was
    /// answered, so the ack was committed before it).
    confirmed: HashSet<u64>,
}

/// Receives as agent b1 until the connection dies, acking each message and confirming the ack.
async fn receive(
    client: Client,
    mut events: tokio::sync::mpsc::UnboundedReceiver<Envelope>,
    s: String,
    seen: Arc<Mutex<Seen>>,
) {
    while let Some(env) = events.recv().await {
        if env.kind != "message.send" {
            continue;
        }
        let n: u64 = text_of(&env).parse().unwrap();
        let corr = env.corr.clone().unwrap();
        {
            let mut seen = seen.lock().unwrap();
            assert!(
                !seen.confirmed.contains(&n),
                "message {n} delivered again after its ack was committed"
            );
            let ids = seen.deliveries.entry(n).or_default();
            if ids.is_empty() {
                seen.first_order.push(n);
            }
            let ids = seen.deliveries.get_mut(&n).unwrap();
            if !ids.contains(&corr) {
                ids.push(corr.clone());
            }
        }
        let mut ack = envelope("message.ack", Some(&s), "b1", Value::Null);
        ack.corr = Some(corr);
        if client.send(ack).is_err() {
            return;
        }
        let probe = envelope("agent.list", Some(&s), "b1", Value::Null);
        match client.request(probe).await {
            Ok(resp) if resp.error.is_none() => {
                seen.lock().unwrap().confirmed.insert(n);
            }
            _ => return,
        }
    }
}

fn keyed(s: &str, n: u64) -> Envelope {
    let mut env = message(s, "a1", "b1", &n.to_string());
    env.idempotency_key = Some(format!("msg-{n}"));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_the_instant_ok_arrives_20_times_loses_nothing_acknowledged() {
    let mut bus = BusProcess::start();
    let s = bus.connect().await.create_session("crash").await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut oked: BTreeMap<u64, Value> = BTreeMap::new();
    let mut next = 0u64;
    let mut rng = 0x2545F4914F6CDD1Du64;
    for round in 0..20 {
        let sender = bus.connect().await;
        sender.add_agent(&s, "a1", "A").await;
        let receiver = bus.connect().await;
        receiver.add_agent(&s, "b1", "B").await;
        let (client, events) = receiver.into_parts();
        let rx_task = tokio::spawn(receive(client, events, s.clone(), seen.clone()));
        if next > 0 {
            // The send that got the fatal ok, retried: same key, same first response.
            let retry = sender.call(keyed(&s, next - 1)).await;
            assert_eq!(
                retry.payload.as_ref(),
                oked.get(&(next - 1)),
                "round {round}: retry not recognised"
            );
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let kill_at = next + 20 + rng % 150;
        let pid = nix::unistd::Pid::from_raw(bus.pid() as i32);
        loop {
            let resp = sender
                .client
                .request(keyed(&s, next))
                .await
                .expect("bus alive until we kill it");
            assert_eq!(resp.error, None);
            oked.insert(next, resp.payload.unwrap());
            next += 1;
            if next - 1 == kill_at {
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
                break;
            }
        }
        bus.kill9(); // reap
        tokio::time::timeout(WAIT, rx_task)
            .await
            .expect("receiver ends with the bus")
            .unwrap();
        bus.spawn().unwrap();
    }
    // Drain: everything the sender got ok for arrives.
    let receiver = bus.connect().await;
    receiver.add_agent(&s, "b1", "B").await;
    let rx_task = tokio::spawn(receive(
        receiver.client.clone(),
        receiver.events,
        s.clone(),
        seen.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let missing: Vec<u64> = {
            let seen = seen.lock().unwrap();
            oked.keys()
                .filter(|n| !seen.deliveries.contains_key(n))
                .copied()
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never delivered: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rx_task.abort();
    let seen = seen.lock().unwrap();
    for (n, ids) in &seen.deliveries {
        assert_eq!(ids.len(), 1, "message {n} was recorded twice: {ids:?}");
        assert_eq!(
            Some(ids[0].as_str()),
            oked[n]["id"].as_str(),
            "message {n} delivered under another id"
        );
    }
    let mut sorted = seen.first_order.clone();
    sorted.sort_unstable();
    assert_eq!(seen.first_order, sorted, "first deliveries out of order");
    assert!(next >= 20 * 20);
}
