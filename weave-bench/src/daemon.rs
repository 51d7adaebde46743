//! Daemon figures against a real `weaved`: SSE fan-out (N clients following one session while
//! messages flow at a fixed rate: latency from the send on the socket to the record at each
//! client, and the daemon's RSS) and `POST .../messages` throughput.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_weave_transport_uds::{Agent, AgentOptions, Client, Envelope};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::stats::{thread_cpu, Latencies};

pub(crate) struct Daemon {
    pub(crate) child: Child,
    _dir: tempfile::TempDir,
    pub(crate) home: std::path::PathBuf,
    base: String,
    token: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    pub(crate) fn start(bin: &Path) -> Daemon {
        let dir = tempfile::TempDir::new().expect("tmp");
        let home = dir.path().join("home");
        let mut child = Command::new(bin)
            .arg("--home")
            .arg(&home)
            .arg("--http")
            .arg("127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} (cargo build --release -p weave-codex-daemon)",
                    bin.display()
                )
            });
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut lines = Vec::new();
        for _ in 0..3 {
            let mut l = String::new();
            out.read_line(&mut l).expect("weaved prints its addresses");
            lines.push(l.trim().to_owned());
        }
        let base = lines[1].trim_start_matches("weaved: http ").to_owned();
        let token = std::fs::read_to_string(home.join("token"))
            .expect("token")
            .trim()
            .to_owned();
        Daemon {
            child,
            _dir: dir,
            home,
            base,
            token,
        }
    }

    pub(crate) fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    }

    async fn session(&self, http: &reqwest::Client) -> String {
        let created: Value = http
            .post(format!("{}/api/sessions", self.base))
            .bearer_auth(&self.token)
            .json(&json!({ "name": "bench" }))
            .send()
            .await
            .expect("create")
            .json()
            .await
            .expect("session json");
        created["id"].as_str().expect("id").to_owned()
    }
}

pub struct Fanout {
    pub latencies: Latencies,
    pub rss_mb: f64,
    pub check: String,
    /// CPU the daemon and this process (the SSE clients and the senders) spent per record
    /// received by an SSE client, in µs.
    pub cpu_us: (f64, f64),
}

/// The fan-out run: `clients` SSE streams on one session, `rate` messages per second sent to it
/// for `seconds`; beside it `busy` other sessions, each a socket agent sending `busy_rate`
/// messages per second to another that acks them.
#[derive(Clone, Copy, Debug)]
pub struct FanoutLoad {
    pub clients: usize,
    pub rate: u32,
    pub seconds: u32,
    pub busy: usize,
    pub busy_rate: u32,
}

impl FanoutLoad {
    pub fn describe(&self) -> String {
        format!(
            "weaved, {} SSE clients on one session, {} msg/s × {} s sent on the socket, send → record at each client; beside it {} busy sessions, each {} msg/s sent and acked",
            self.clients, self.rate, self.seconds, self.busy, self.busy_rate
        )
    }
}

/// One busy session beside the fan-out: `rate` messages per second from one socket agent to
/// another that acks each, until `stop`. Returns how many were sent and received.
async fn busy_session(
    d: &Daemon,
    http: &reqwest::Client,
    rate: u32,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<(usize, usize)> {
    let s = d.session(http).await;
    let socket = d.home.join("coord.sock");
    let mut rx = Agent::connect(AgentOptions::new(&socket, &s, "r"))
        .await
        .expect("busy receiver");
    let tx = Arc::new(
        Agent::connect(AgentOptions::new(&socket, &s, "s"))
            .await
            .expect("busy sender"),
    );
    tokio::spawn(async move {
        let received = tokio::spawn(async move {
            let mut n = 0;
            // Auto-acked by the agent.
            while let Ok(Some(got)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await
            {
                n += usize::from(got.kind() == "message.send");
            }
            n
        });
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
        let mut sent = 0;
        while !stop.is_cancelled() {
            tick.tick().await;
            let tx = tx.clone();
            tokio::spawn(async move { tx.send_text("r", "busy").await });
            sent += 1;
        }
        (sent, received.await.unwrap_or(0))
    })
}

/// See [`FanoutLoad`].
pub async fn sse_fanout(bin: &Path, load: FanoutLoad) -> Fanout {
    let FanoutLoad {
        clients,
        rate,
        seconds,
        busy,
        busy_rate,
    } = load;
    let d = Daemon::start(bin);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let s = d.session(&http).await;
    let messages = (rate * seconds) as usize;
    let base = Instant::now();
    let ready = Arc::new(Semaphore::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let req = http
            .get(format!("{}/api/sessions/{s}/events/stream", d.base))
            .bearer_auth(&d.token);
        let ready = ready.clone();
        tasks.push(tokio::spawn(async move {
            let resp = req.send().await.expect("sse");
            let mut body = resp.bytes_stream();
            let mut buf = Vec::<u8>::new();
            let mut lat = Vec::with_capacity(messages);
            let mut signalled = false;
            while lat.len() < messages {
                let Ok(Some(Ok(chunk))) =
                    tokio::time::timeout(Duration::from_secs(20), body.next()).await
                else {
                    break;
                };
                buf.extend_from_slice(&chunk);
                if !signalled {
                    signalled = true;
                    ready.add_permits(1); // the snapshot arrived: subscribed
                }
                // Each message's text is `t:<micros since base>`.
                while let Some(pos) = find(&buf, b"\"text\":\"t:") {
                    let rest = &buf[pos + 10..];
                    let end = rest
                        .iter()
                        .position(|b| !b.is_ascii_digit())
                        .unwrap_or(rest.len());
                    if end == rest.len() {
                        break; // the number continues in the next chunk
                    }
                    let sent: u64 = std::str::from_utf8(&rest[..end])
                        .ok()
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(0);
                    lat.push(base.elapsed().as_micros() as u64 - sent);
                    buf.drain(..pos + 10 + end);
                }
            }
            lat
        }));
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), ready.acquire_many(clients as u32)).await;
    let rss_before = d.rss_mb();
    let (sender, mut own) = Client::connect(d.home.join("coord.sock"))
        .await
        .expect("socket");
    tokio::spawn(async move { while own.recv().await.is_some() {} });
    let mut add = Envelope::new("agent.add", String::new(), String::new(), "src");
    add.session = Some(s.clone());
    add.payload = Some(json!({ "id": "src" }));
    sender.call(add).await.expect("agent.add");
    let stop_busy = tokio_util::sync::CancellationToken::new();
    let mut busy_tasks = Vec::new();
    for _ in 0..busy {
        busy_tasks.push(busy_session(&d, &http, busy_rate, stop_busy.clone()).await);
    }
    let cpu = || {
        let sum = |pid: u32| thread_cpu(pid).values().sum::<Duration>();
        (sum(d.child.id()), sum(std::process::id()))
    };
    let cpu_before = cpu();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    let mut rss_during: f64 = 0.0;
    for i in 0..messages {
        tick.tick().await;
        let mut m = Envelope::new("message.send", String::new(), String::new(), "src");
        m.session = Some(s.clone());
        m.dst = Some("src".into());
        m.ack = Some(codex_weave_runtime::Ack {
            mode: Some(codex_weave_runtime::AckMode::None),
            timeout_ms: None,
        });
        m.payload = Some(json!({ "text": format!("t:{}", base.elapsed().as_micros()) }));
        let client = sender.clone();
        tokio::spawn(async move { client.request(m).await });
        if i % rate as usize == 0 {
            rss_during = rss_during.max(d.rss_mb());
        }
    }
    let mut all = Latencies::default();
    let mut received = 0usize;
    for t in tasks {
        let lat = t.await.unwrap_or_default();
        received += lat.len();
        for us in lat {
            all.push(Duration::from_micros(us));
        }
    }
    let cpu_after = cpu();
    stop_busy.cancel();
    let (mut busy_sent, mut busy_received) = (0, 0);
    for t in busy_tasks {
        let (s, r) = t.await.unwrap_or_default();
        busy_sent += s;
        busy_received += r;
    }
    let per_record =
        |a: Duration, b: Duration| (a - b).as_secs_f64() * 1e6 / received.max(1) as f64;
    let rss = rss_during.max(d.rss_mb());
    Fanout {
        latencies: all,
        rss_mb: rss,
        check: format!(
            "{received}/{} records received ({clients} clients × {messages} messages); busy sessions {busy_received}/{busy_sent} received; RSS {rss_before:.0} MB with clients idle, {rss:.0} MB max",
            clients * messages
        ),
        cpu_us: (
            per_record(cpu_after.0, cpu_before.0),
            per_record(cpu_after.1, cpu_before.1),
        ),
    }
}

/// `weave-bench fanout`: the SSE fan-out rows alone, with the CPU per record received.
pub async fn fanout_only(bin: &Path, load: FanoutLoad) {
    #![allow(clippy::print_stdout)]
    let fan = sse_fanout(bin, load).await;
    println!(
        "{}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; CPU per record received: weaved {:.1} µs, clients {:.1} µs ({})",
        load.describe(),
        fan.latencies.quantile(0.5) / 1000.0,
        fan.latencies.quantile(0.99) / 1000.0,
        fan.latencies.quantile(1.0) / 1000.0,
        fan.cpu_us.0,
        fan.cpu_us.1,
        fan.check
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `POST .../messages` from an HTTP (sdk) agent to a socket agent that acks, `concurrency` in
/// flight; messages per second.
pub async fn http_throughput(bin: &Path, count: usize, concurrency: usize) -> (f64, String) {
    let d = Daemon::start(bin);
    let http = reqwest::Client::new();
    let s = d.session(&http).await;
    http.post(format!("{}/api/sessions/{s}/agents", d.base))
        .bearer_auth(&d.token)
        .json(&json!({ "id": "h", "name": "H", "kind": "sdk" }))
        .send()
        .await
        .expect("register");
    let mut receiver =
        Agent::connect(AgentOptions::new(d.home.join("coord.sock"), &s, "r").name("R"))
            .await
            .expect("receiver");
    let counter = tokio::spawn(async move {
        let mut n = 0;
        while n < count {
            match tokio::time::timeout(Duration::from_secs(30), receiver.recv()).await {
                Ok(Some(d)) if d.kind() == "message.send" => n += 1,
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        n
    });
    let permits = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut posts = Vec::with_capacity(count);
    for i in 0..count {
        let permit = permits.clone().acquire_owned().await.expect("open");
        let req = http
            .post(format!("{}/api/sessions/{s}/messages", d.base))
            .bearer_auth(&d.token)
            .json(&json!({ "from": "h", "text": format!("m{i}"), "agent_ids": ["r"] }));
        posts.push(tokio::spawn(async move {
            let ok = req
                .send()
                .await
                .map(|r| r.status().as_u16() == 202)
                .unwrap_or(false);
            drop(permit);
            ok
        }));
    }
    let mut accepted = 0;
    for p in posts {
        accepted += usize::from(p.await.unwrap_or(false));
    }
    let received = counter.await.unwrap_or(0);
    let rate = count as f64 / started.elapsed().as_secs_f64();
    (
        rate,
        format!("{accepted}/{count} answered 202, {received} delivered to the socket agent"),
    )
}
