//! Operational figures: cold start, memory per idle agent connection, and recovery time with a
//! large store.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_weave_transport_uds::{Client, Envelope};
use serde_json::json;
use tokio::sync::Semaphore;

/// Creates a session named `name` on `client`; its id.
pub async fn create_session(client: &Client, name: &str) -> String {
    let mut create = Envelope::new("session.create", String::new(), String::new(), "bench");
    create.payload = Some(json!({ "name": name }));
    client
        .call(create)
        .await
        .expect("session")
        .session
        .expect("id")
}

fn rss_kb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn spawn(bin: &Path, home: &Path, extra: &[&str]) -> Child {
    Command::new(bin)
        .arg("--home")
        .arg(home)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()))
}

/// Time from spawning `bin` until its socket accepts a connection and answers a request.
/// The child is returned to the caller, who stops and waits for it (`stop`); clippy cannot see
/// through the return.
#[allow(clippy::zombie_processes)]
async fn until_serving(bin: &Path, home: &Path, extra: &[&str]) -> (Child, Duration) {
    let started = Instant::now();
    let mut child = spawn(bin, home, extra);
    let socket = home.join("coord.sock");
    loop {
        if let Ok((c, _)) = Client::connect(&socket).await {
            if c.request(Envelope::new(
                "session.list",
                String::new(),
                String::new(),
                "bench",
            ))
            .await
            .is_ok()
            {
                return (child, started.elapsed());
            }
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} never served", bin.display());
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

fn stop(mut child: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `weaved` launch to socket answering (fresh home, median of 5), and `weavectl status` wall time.
pub async fn cold_start(weaved: &Path, weavectl: &Path) -> (Duration, Duration) {
    let mut starts = Vec::new();
    let mut status = Vec::new();
    for _ in 0..5 {
        let dir = tempfile::TempDir::new().expect("tmp");
        let home = dir.path().join("home");
        let (child, took) = until_serving(weaved, &home, &["--http", "127.0.0.1:0"]).await;
        starts.push(took);
        let t = Instant::now();
        let out = Command::new(weavectl)
            .arg("--home")
            .arg(&home)
            .arg("status")
            .output()
            .expect("weavectl");
        assert!(out.status.success(), "weavectl status failed");
        status.push(t.elapsed());
        stop(child);
    }
    (median(starts), median(status))
}

/// RSS of an idle bus, and per idle agent connection with `n` of them.
pub async fn idle_memory(bus: &Path, n: usize) -> (f64, f64) {
    let dir = tempfile::TempDir::new().expect("tmp");
    let home = dir.path().join("home");
    let (child, _) = until_serving(bus, &home, &[]).await;
    let socket = home.join("coord.sock");
    let (admin, _) = Client::connect(&socket).await.expect("connect");
    let s = create_session(&admin, "idle").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = rss_kb(child.id());
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let (c, events) = Client::connect(&socket).await.expect("connect");
        let id = format!("idle-{i}");
        let mut add = Envelope::new("agent.add", String::new(), String::new(), id.clone());
        add.session = Some(s.clone());
        add.payload = Some(json!({ "id": id }));
        c.request(add).await.expect("agent.add");
        held.push((c, events));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let with = rss_kb(child.id());
    drop(held);
    stop(child);
    (idle / 1024.0, (with - idle) / n as f64)
}

/// Writes `records` records to a session, stops the bus, and times the restart until it serves.
/// Restart times with `records` in the store: after `kill -9` (the runtime replays what followed
/// its last periodic snapshot), then after SIGTERM (it starts from the shutdown snapshot).
pub async fn recovery(bus: &Path, records: usize) -> (Duration, Duration, String) {
    let dir = tempfile::TempDir::new().expect("tmp");
    let home = dir.path().join("home");
    let (child, _) = until_serving(bus, &home, &[]).await;
    let socket = home.join("coord.sock");
    let (c, mut events) = Client::connect(&socket).await.expect("connect");
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let s = create_session(&c, "big").await;
    let mut add = Envelope::new("agent.add", String::new(), String::new(), "w");
    add.session = Some(s.clone());
    add.payload = Some(json!({ "id": "w" }));
    c.request(add).await.expect("agent.add");
    let window = Arc::new(Semaphore::new(2000));
    let mut tasks = Vec::new();
    for i in 0..records {
        let permit = window.clone().acquire_owned().await.expect("open");
        let mut m = Envelope::new("message.send", String::new(), String::new(), "w");
        m.session = Some(s.clone());
        m.dst = Some("w".into());
        m.ack = Some(codex_weave_runtime::Ack {
            mode: Some(codex_weave_runtime::AckMode::None),
            timeout_ms: None,
        });
        m.payload = Some(json!({ "text": format!("record {i}") }));
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let _ = c.request(m).await;
            drop(permit);
        }));
        if tasks.len() >= 10_000 {
            for t in tasks.drain(..) {
                let _ = t.await;
            }
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let stats = Envelope::new("bus.stats", String::new(), String::new(), "w");
    let stats = c
        .request(stats)
        .await
        .expect("bus.stats")
        .payload
        .unwrap_or_default();
    let counters = &stats["counters"];
    let snapshots = format!(
        "{} snapshots while writing, the last {:.0} MB, the longest {:.0} ms",
        counters["snapshots"],
        counters["snapshot_bytes"].as_f64().unwrap_or(0.0) / 1e6,
        counters["snapshot_micros_max"].as_f64().unwrap_or(0.0) / 1e3
    );
    let mut child = child;
    let _ = child.kill();
    let _ = child.wait();
    let (child, after_kill) = until_serving(bus, &home, &[]).await;
    stop(child);
    let db_mb = std::fs::metadata(home.join("weave.db"))
        .map(|m| m.len() as f64 / 1e6)
        .unwrap_or(0.0);
    let (child, after_stop) = until_serving(bus, &home, &[]).await;
    stop(child);
    (
        after_kill,
        after_stop,
        format!("{records} records, store {db_mb:.0} MB; {snapshots}"),
    )
}
