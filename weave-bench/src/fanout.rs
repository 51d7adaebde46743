//! Many senders at once, and relays: throughput with N sender/receiver pairs sharing the window,
//! and the time per complete relay of an owner to 8 agents who each reply.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_weave_transport_uds::{Agent, AgentOptions, Client, Envelope};
use serde_json::json;
use tokio::sync::Semaphore;

async fn session(socket: &Path, name: &str) -> String {
    let (c, _) = Client::connect(socket).await.expect("connect");
    crate::ops::create_session(&c, name).await
}

/// `pairs` senders each sending `count / pairs` messages to their own receiver, `window` in
/// flight in all; every delivery acked. Messages per second, and a check.
pub async fn pairs_throughput(
    bus_socket: &Path,
    pairs: usize,
    count: usize,
    window: usize,
) -> (f64, String) {
    let s = session(bus_socket, "pairs").await;
    let per = count / pairs;
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for i in 0..pairs {
        let mut rx = Agent::connect(AgentOptions::new(bus_socket, &s, &format!("r{i}")))
            .await
            .expect("receiver");
        receivers.push(tokio::spawn(async move {
            let mut n = 0;
            while n < per {
                match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
                    Ok(Some(d)) if d.kind() == "message.send" => n += 1, // auto-acked by the agent
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
            n
        }));
        senders.push(
            Agent::connect(AgentOptions::new(bus_socket, &s, &format!("s{i}")))
                .await
                .expect("sender"),
        );
    }
    let permits = Arc::new(Semaphore::new(window));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, sender) in senders.into_iter().enumerate() {
        let permits = permits.clone();
        tasks.push(tokio::spawn(async move {
            let mut inflight = Vec::with_capacity(per);
            let sender = Arc::new(sender);
            for k in 0..per {
                let permit = permits.clone().acquire_owned().await.expect("open");
                let sender = sender.clone();
                inflight.push(tokio::spawn(async move {
                    let ok = sender
                        .send_text(&format!("r{i}"), &format!("{k}"))
                        .await
                        .map(|r| r.error.is_none())
                        .unwrap_or(false);
                    drop(permit);
                    ok
                }));
            }
            let mut ok = 0;
            for t in inflight {
                ok += usize::from(t.await.unwrap_or(false));
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap_or(0);
    }
    let mut received = 0;
    for r in receivers {
        received += r.await.unwrap_or(0);
    }
    let rate = (per * pairs) as f64 / started.elapsed().as_secs_f64();
    (
        rate,
        format!(
            "{ok}/{} ok, {received} received ({pairs} pairs × {per})",
            per * pairs
        ),
    )
}

/// An owner relays to 8 agents who each reply; the owner finishes the relay; repeated `relays`
/// times. Mean time per complete relay (submit → 8 replies → done answered).
pub async fn relay_fanout(bus_socket: &Path, relays: usize) -> (Duration, String) {
    let s = session(bus_socket, "relays").await;
    let targets: Vec<String> = (0..8).map(|i| format!("w{i}")).collect();
    let mut workers = Vec::new();
    for t in &targets {
        let mut w = Agent::connect(AgentOptions::new(bus_socket, &s, t))
            .await
            .expect("worker");
        workers.push(tokio::spawn(async move {
            let mut replied = 0;
            while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(60), w.recv()).await {
                if d.kind() != "action.submit" {
                    continue;
                }
                let action =
                    d.0.payload
                        .as_ref()
                        .and_then(|p| p["actions"][0]["action_id"].as_str())
                        .unwrap_or_default()
                        .to_owned();
                let mut reply = Envelope::new("message.send", String::new(), String::new(), "");
                reply.dst = Some("o".into());
                reply.payload =
                    Some(json!({ "text": "done", "kind": "reply", "reply_to_action_id": action }));
                if w.request(reply)
                    .await
                    .map(|r| r.error.is_none())
                    .unwrap_or(false)
                {
                    replied += 1;
                }
            }
            replied
        }));
    }
    let mut owner = Agent::connect(AgentOptions::new(bus_socket, &s, "o"))
        .await
        .expect("owner");
    let started = Instant::now();
    let mut completed = 0;
    for r in 0..relays {
        let actions: Vec<_> = targets
            .iter()
            .map(|t| json!({ "type": "message", "dst": t, "text": "go" }))
            .collect();
        let mut submit = Envelope::new("relay.submit", String::new(), String::new(), "");
        submit.payload =
            Some(json!({ "relay_id": format!("r{r}"), "targets": targets, "actions": actions }));
        let accepted = owner.request(submit).await.expect("relay.submit");
        if accepted.error.is_some() {
            break;
        }
        let mut replies = 0;
        while replies < targets.len() {
            match owner
                .recv_kind(&["message.send"], Duration::from_secs(30))
                .await
            {
                Some(_) => replies += 1,
                None => break,
            }
        }
        let mut done = Envelope::new("relay.submit", String::new(), String::new(), "");
        done.payload = Some(json!({ "relay_id": format!("r{r}"), "done": { "summary": "ok" } }));
        if owner
            .request(done)
            .await
            .map(|d| d.error.is_none())
            .unwrap_or(false)
            && replies == targets.len()
        {
            completed += 1;
        }
    }
    let per = started.elapsed() / relays.max(1) as u32;
    drop(owner);
    for w in workers {
        w.abort();
    }
    (
        per,
        format!("{completed}/{relays} relays completed, 8 targets each, every target replied"),
    )
}
