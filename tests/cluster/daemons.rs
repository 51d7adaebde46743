//! Several daemons with `--cluster` (`weaved`, and `weave-bus` where only the socket matters),
//! each on its own home and socket, on a real 3-server NATS cluster: one leads (runs the engine), the others carry their clients' connections to
//! it. Agents on different daemons converse, relay and read one event log; when the leader is
//! killed the lease moves and nothing acknowledged is lost or repeated; a daemon cut off from
//! NATS stops writing.

use std::path::Path;
use std::time::{Duration, Instant};

use codex_weave_transport_uds::Envelope;
use serde_json::{json, Value};
use weave_test_kit::*;

fn args<'a>(urls: &'a str, name: &'a str) -> Vec<&'a str> {
    vec!["--cluster", urls, "--cluster-name", name]
}

/// Connects to `socket` and adds agent `id` until the cluster serves it (a lease changing hands
/// refuses connections or writes for a few seconds); returns the connection and the answer.
async fn join(socket: &Path, s: &str, id: &str, name: &str, within: Duration) -> (Conn, Envelope) {
    let deadline = Deadline::after(within);
    loop {
        if let Ok(c) = tokio::time::timeout(Duration::from_secs(20), Conn::open(socket)).await {
            let env = envelope("agent.add", Some(s), id, json!({ "id": id, "name": name }));
            if let Ok(Ok(answer)) =
                tokio::time::timeout(Duration::from_secs(20), c.client.request(env)).await
            {
                if answer.error.is_none() {
                    return (c, answer);
                }
            }
        }
        deadline
            .tick(&format!("{id} joins through {}", socket.display()))
            .await;
    }
}

/// Sends note `n` until acknowledged (its idempotency key makes a retry count once).
async fn send_acknowledged(conn: &Conn, s: &str, from: &str, to: &str, n: usize) -> bool {
    let mut env = message(s, from, to, &format!("note {n}"));
    env.idempotency_key = Some(format!("note-{n}"));
    match tokio::time::timeout(Duration::from_secs(20), conn.client.request(env)).await {
        Ok(Ok(answer)) => answer.error.is_none(),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_on_two_daemons_converse_relay_and_read_one_log() {
    let Some(cluster) = NatsCluster::start(3).await else {
        return;
    };
    let urls = cluster.urls();
    let a = Weaved::start_with(&args(&urls, "converse"), None);
    let admin = Conn::open(&a.socket()).await;
    let s = admin.create_session("across").await;
    let mut ann = Conn::open(&a.socket()).await;
    ann.add_agent(&s, "a1", "Ann").await;
    // B starts once A leads: it follows, and carries Bob's connection to A.
    let b = Weaved::start_with(&args(&urls, "converse"), None);
    let mut bob = Conn::open(&b.socket()).await;
    bob.add_agent(&s, "b1", "Bob").await;

    let sent = ann.send(&s, "a1", "Bob", "hello from A").await;
    assert_eq!(sent.error, None);
    let got = bob.next_of("message.send").await;
    assert_eq!(text_of(&got), "hello from A");
    bob.ack(&s, "b1", &got);
    let reply = bob.send(&s, "b1", "Ann", "hello from B").await;
    assert_eq!(reply.error, None);
    let got = ann.next_of("message.send").await;
    assert_eq!(text_of(&got), "hello from B");
    ann.ack(&s, "a1", &got);

    // A relay from Ann to Bob, across the daemons: one brain decides its lifecycle.
    let submitted = ann
        .call(envelope(
            "relay.submit",
            Some(&s),
            "a1",
            json!({ "relay_id": "r1", "targets": ["b1"], "actions": [
                { "type": "message", "dst": "b1", "text": "review it", "expects_reply": true }
            ] }),
        ))
        .await;
    assert_eq!(submitted.payload.unwrap()["status"], "accepted");
    let step = bob.next_of("action.submit").await;
    assert_eq!(
        step.payload.as_ref().unwrap()["actions"][0]["text"],
        "review it"
    );
    let done = ann
        .call(envelope(
            "relay.submit",
            Some(&s),
            "a1",
            json!({ "relay_id": "r1", "done": { "relay_id": "r1", "summary": "reviewed" } }),
        ))
        .await;
    assert_eq!(done.error, None);
    assert_eq!(
        bob.next_of("relay.done").await.payload.unwrap()["summary"],
        "reviewed"
    );

    // One event log, the same seqs through either daemon.
    let via_a = ann
        .ok("events.history", Some(&s), "a1", json!({ "limit": 100 }))
        .await;
    let via_b = bob
        .ok("events.history", Some(&s), "b1", json!({ "limit": 100 }))
        .await;
    let (via_a, via_b) = (via_a.payload.unwrap(), via_b.payload.unwrap());
    assert_eq!(via_a, via_b);
    assert!(via_a.to_string().contains("hello from B"), "{via_a}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_moves_when_the_leader_is_killed_and_nothing_acknowledged_is_lost() {
    let Some(mut cluster) = NatsCluster::start(3).await else {
        return;
    };
    let urls = cluster.urls();
    let mut a = Weaved::start_with(&args(&urls, "failover"), None);
    let admin = Conn::open(&a.socket()).await;
    let s = admin.create_session("failover").await;
    let ann = Conn::open(&a.socket()).await;
    ann.add_agent(&s, "a1", "Ann").await;
    let b = Weaved::start_with(&args(&urls, "failover"), None);
    let (mut bob, _) = join(&b.socket(), &s, "b1", "Bob", WAIT).await;

    // Bob receives and acks the first 10 while Ann sends; then the leader and a NATS server die.
    for n in 0..20 {
        assert!(
            send_acknowledged(&ann, &s, "a1", "Bob", n).await,
            "note {n}"
        );
        if n < 10 {
            let got = bob.next_of("message.send").await;
            assert_eq!(text_of(&got), format!("note {n}"));
            bob.ack(&s, "b1", &got);
        }
    }
    // Bob's acks are requests without answers: one more request makes sure they landed.
    bob.ok("events.history", Some(&s), "b1", json!({ "limit": 1 }))
        .await;
    let killed = Instant::now();
    a.kill9();
    cluster.kill9(2);
    drop((ann, admin));

    // Bob's connection through B ends; B takes the lease and serves.
    let (mut bob, added) = join(&b.socket(), &s, "b1", "Bob", Duration::from_secs(60)).await;
    let moved = killed.elapsed();
    assert!(
        moved < Duration::from_secs(30),
        "the lease moved in {moved:?}"
    );
    eprintln!("the lease moved and Bob was back in {moved:?}");
    assert_eq!(added.payload.unwrap_or(Value::Null)["queued"], 10);
    let (ann, _) = join(&b.socket(), &s, "a1", "Ann", WAIT).await;
    for n in 10..30 {
        let deadline = Deadline::after(Duration::from_secs(60));
        while !send_acknowledged(&ann, &s, "a1", "Bob", n).await {
            deadline.tick(&format!("note {n} acknowledged")).await;
        }
    }
    for n in 10..30 {
        let got = bob.next_of("message.send").await;
        assert_eq!(text_of(&got), format!("note {n}"), "once each, in order");
        bob.ack(&s, "b1", &got);
    }
    bob.none_of("message.send", Duration::from_millis(500))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_cut_off_from_nats_stops_writing_and_another_leads() {
    let Some(cluster) = NatsCluster::start(3).await else {
        return;
    };
    let mut relays = Vec::new();
    for i in 0..3 {
        relays.push(Cuttable::start(cluster.url(i).trim_start_matches("nats://")).await);
    }
    let through: String = relays
        .iter()
        .map(Cuttable::url)
        .collect::<Vec<_>>()
        .join(",");
    let urls = cluster.urls();
    let a = BusProcess::start_with(&args(&through, "split"));
    let admin = a.connect().await;
    let s = admin.create_session("split").await;
    let b = BusProcess::start_with(&args(&urls, "split"));
    let (carol, _) = join(&b.socket(), &s, "c1", "Carol", WAIT).await;

    for relay in &relays {
        relay.cut();
    }
    let cut = Instant::now();
    // A no longer writes: its own client's write is refused, or its connection ends.
    let deadline = Deadline::after(Duration::from_secs(60));
    loop {
        let env = envelope(
            "agent.add",
            Some(&s),
            "a1",
            json!({ "id": "a1", "name": "Ann" }),
        );
        match tokio::time::timeout(Duration::from_secs(40), admin.client.request(env)).await {
            Ok(Ok(answer)) if answer.error.is_none() => {
                // Accepted before the cut took hold: remove it and try again.
                admin
                    .ok("agent.remove", Some(&s), "a1", json!({ "id": "a1" }))
                    .await;
            }
            Ok(Ok(answer)) => {
                assert_eq!(answer.error.unwrap().code, "store_unavailable");
                break;
            }
            Ok(Err(_)) | Err(_) => break,
        }
        deadline.tick("A refuses writes once cut off").await;
    }
    eprintln!("A stopped writing {:?} after the cut", cut.elapsed());
    // B leads: Carol's connection through B came back on B's own engine.
    let (_dave, _) = join(&b.socket(), &s, "d1", "Dave", Duration::from_secs(60)).await;
    eprintln!("B leads {:?} after the cut", cut.elapsed());
    drop(carol);

    // Healed, A follows B: a connection to A sees what B wrote.
    for relay in &relays {
        relay.heal();
    }
    let (erin, _) = join(&a.socket(), &s, "e1", "Erin", Duration::from_secs(60)).await;
    let agents = erin.ok("agent.list", Some(&s), "e1", json!({})).await;
    let text = agents.payload.unwrap_or(Value::Null).to_string();
    assert!(text.contains("Dave") && text.contains("Erin"), "{text}");
}

/// `weaved --cluster`: every daemon serves the HTTP API over the engine that leads — the leader
/// its own, a follower through the leader, as it carries its socket clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weaved_serves_http_on_every_daemon_over_the_one_engine() {
    let Some(cluster) = NatsCluster::start(3).await else {
        return;
    };
    let urls = cluster.urls();
    let flags = ["--cluster", urls.as_str(), "--cluster-name", "web"];
    let a = Weaved::start_with(&flags, None);
    let deadline = Deadline::new();
    while a.get("/api/health").send().await.unwrap().status() != 200 {
        deadline
            .tick("the first weaved leads and serves HTTP")
            .await;
    }
    let on_a = a.create_session("on-a").await;

    // B follows: its HTTP API (its own token) answers from A's engine, and writes through it.
    let b = Weaved::start_with(&flags, None);
    let deadline = Deadline::new();
    let listed = loop {
        let resp = b.get("/api/sessions").send().await.unwrap();
        if resp.status() == 200 {
            break resp.json::<Value>().await.unwrap();
        }
        deadline.tick("the follower's HTTP API answers").await;
    };
    assert!(listed.to_string().contains(&on_a), "{listed}");
    let on_b = b.create_session("on-b").await;
    let through_a = Conn::open(&a.socket()).await;
    let sessions = through_a
        .ok("session.list", None, "cli", json!({}))
        .await
        .payload
        .unwrap();
    assert!(sessions.to_string().contains(&on_b), "{sessions}");
    // B's SSE stream of a session carries what A's clients do there.
    let s = on_a.as_str();
    let mut stream = SseReader::open(b.get(&format!("/api/sessions/{s}/events/stream"))).await;
    through_a.add_agent(s, "z1", "Zoe").await;
    // Bounded as a whole: keep-alive comments would keep a per-event wait going forever.
    let zoe = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let event = stream
                .next_within(Duration::from_secs(60))
                .await
                .expect("the stream goes on");
            if event.data.contains("Zoe") {
                break;
            }
        }
    });
    zoe.await
        .expect("Zoe's join reaches B's SSE stream within 60 s");
    // Without B's token, B's API refuses: the follower checks its own credentials.
    let anonymous = reqwest::get(b.url("/api/sessions")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// A client on a follower that stops reading: the connection's window (1 MiB) fills, the
/// leader's engine holds its deliveries back as for a local client, other clients carry on,
/// and once it reads again it gets all 8 MB, whole and in order — no byte dropped on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_on_a_follower_loses_nothing_and_stalls_nobody() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let Some(cluster) = NatsCluster::start(3).await else {
        return;
    };
    let urls = cluster.urls();
    let mut flags = args(&urls, "window");
    flags.extend([
        "--max-queue-per-agent",
        "5000",
        "--max-inflight-per-agent",
        "5000",
    ]);
    let a = BusProcess::start_with(&flags);
    let ann = a.connect().await;
    let s = ann.create_session("window").await;
    ann.add_agent(&s, "a1", "Ann").await;
    let b = BusProcess::start_with(&flags);
    let mut stuck = tokio::net::UnixStream::connect(b.socket()).await.unwrap();
    let add = json!({ "payload": { "id": "stuck", "name": "Stuck" } });
    stuck
        .write_all(&request_line("agent.add", &s, "stuck", add))
        .await
        .unwrap();
    ann.wait_status(&s, "stuck", "online").await;
    let mut dan = b.connect().await;
    dan.add_agent(&s, "d1", "Dan").await;

    let text = "x".repeat(4000);
    for i in 0..2000 {
        let sent = ann.send(&s, "a1", "stuck", &format!("{i}:{text}")).await;
        assert_eq!(sent.error, None, "message {i}");
        if i % 400 == 0 {
            ann.send(&s, "a1", "d1", &format!("healthy {i}")).await;
            assert_eq!(
                text_of(&dan.next_of("message.send").await),
                format!("healthy {i}")
            );
        }
    }
    let mut lines = tokio::io::BufReader::new(stuck);
    let mut next = 0;
    while next < 2000 {
        let mut line = String::new();
        tokio::time::timeout(WAIT, lines.read_line(&mut line))
            .await
            .expect("the backlog arrives")
            .unwrap();
        let env: Value = serde_json::from_str(&line).expect("a whole line");
        if env["type"] == "message.send" {
            let text = env["payload"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(text.starts_with(&format!("{next}:")), "in order: {next}");
            next += 1;
        }
    }
}

/// Two daemons started at the same moment: exactly one takes the lease (the other's write at
/// the same sequence is refused), so both serve one engine and nothing is fenced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_started_at_once_agree_on_one_leader() {
    let Some(cluster) = NatsCluster::start(3).await else {
        return;
    };
    let urls = cluster.urls();
    let flags = args(&urls, "race");
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| BusProcess::start_with(&flags));
        let b = s.spawn(|| BusProcess::start_with(&flags));
        (a.join().unwrap(), b.join().unwrap())
    });
    let admin = join_anywhere(&a).await;
    let s = admin.create_session("race").await;
    let (ann, _) = join(&a.socket(), &s, "a1", "Ann", WAIT).await;
    let (mut bob, _) = join(&b.socket(), &s, "b1", "Bob", WAIT).await;
    for n in 0..20 {
        let sent = ann.send(&s, "a1", "Bob", &format!("note {n}")).await;
        assert_eq!(sent.error, None, "note {n}: no daemon was fenced");
        let got = bob.next_of("message.send").await;
        assert_eq!(text_of(&got), format!("note {n}"));
        bob.ack(&s, "b1", &got);
    }
}

/// A connection to `bus` once the cluster serves it (it may still be choosing its leader).
async fn join_anywhere(bus: &BusProcess) -> Conn {
    let deadline = Deadline::after(Duration::from_secs(30));
    loop {
        let c = bus.connect().await;
        let probe = envelope("session.list", None, "probe", json!({}));
        if let Ok(Ok(answer)) =
            tokio::time::timeout(Duration::from_secs(20), c.client.request(probe)).await
        {
            if answer.error.is_none() {
                return c;
            }
        }
        deadline.tick("the cluster serves").await;
    }
}
