//! The bus runs: the real `weave-bus` binary on a temporary home, driven by the same lean
//! clients as the baseline.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_weave_transport_uds::Framing;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::baseline::send_windowed;
use crate::lines::{self, Reader, Writer};
use crate::stats::{thread_cpu, Latencies, Throughput};

struct RunningBus {
    child: Child,
    dir: tempfile::TempDir,
}

impl RunningBus {
    fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("home/coord.sock")
    }
}

impl Drop for RunningBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &Path, durability: &str) -> RunningBus {
    let dir = tempfile::TempDir::new().expect("tmp");
    let mut child = Command::new(bin)
        .arg("--home")
        .arg(dir.path().join("home"))
        .arg("--durability")
        .arg(durability)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e} (build it: cargo build --release -p weave-bus)",
                bin.display()
            )
        });
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    assert!(line.contains("listening"), "bus did not start: {line}");
    RunningBus { child, dir }
}

/// Sends a request and reads lines until its response.
async fn call(
    r: &mut Reader,
    w: &mut Writer,
    env: codex_weave_runtime::Envelope,
) -> codex_weave_runtime::Envelope {
    let id = env.id.clone();
    w.line(&env).await;
    w.flush().await;
    loop {
        let frame = r.next().await.expect("response");
        let got = r.parse(&frame);
        if got.corr.as_deref() == Some(id.as_str()) && got.status.is_some() {
            assert!(got.error.is_none(), "refused: {:?}", got.error);
            return got;
        }
    }
}

/// A session with agents `a` and `b`, each on its own connection in `framing`.
async fn setup(
    bus: &RunningBus,
    framing: Framing,
) -> (String, (Reader, Writer), (Reader, Writer), (Reader, Writer)) {
    let (mut r, mut w) = lines::connect(&bus.socket()).await;
    let mut create = lines::request("session.create", None, "bench");
    create.payload = Some(json!({ "name": "bench" }));
    let s = call(&mut r, &mut w, create)
        .await
        .session
        .expect("session id");
    let agent = |id: &'static str| {
        let mut add = lines::request("agent.add", Some(&s), id);
        add.payload = Some(json!({ "id": id, "name": id }));
        add
    };
    let (add_a, add_b) = (agent("a"), agent("b"));
    let (mut ar, mut aw) = lines::connect_framed(&bus.socket(), framing).await;
    call(&mut ar, &mut aw, add_a).await;
    let (mut br, mut bw) = lines::connect_framed(&bus.socket(), framing).await;
    call(&mut br, &mut bw, add_b).await;
    (s, (r, w), (ar, aw), (br, bw))
}

/// Agents `a` and `b` on a running bus: A sends, B acks and answers; for round trips.
pub struct PingPong {
    bus: RunningBus,
    s: String,
    admin: (Reader, Writer),
    ar: Reader,
    aw: Writer,
    echo: tokio::task::JoinHandle<(usize, usize)>,
    next: usize,
    in_order: bool,
}

impl PingPong {
    pub async fn start(bin: &Path, durability: &str, framing: Framing) -> PingPong {
        let bus = start(bin, durability);
        let (s, admin, (ar, aw), (mut br, mut bw)) = setup(&bus, framing).await;
        let sb = s.clone();
        let echo = tokio::spawn(async move {
            let mut seen = HashSet::new();
            let mut dups = 0usize;
            while let Some(line) = br.next().await {
                let got = br.parse(&line);
                if got.kind != "message.send" {
                    continue;
                }
                let n = lines::number(&got);
                if !seen.insert(n) {
                    dups += 1;
                }
                bw.line(&lines::ack(&sb, "b", &got)).await;
                bw.line(&lines::reply(&sb, "b", "a", &got, "ok")).await;
                bw.flush().await;
            }
            (seen.len(), dups)
        });
        PingPong {
            bus,
            s,
            admin,
            ar,
            aw,
            echo,
            next: 0,
            in_order: true,
        }
    }

    /// `n` round trips A → bus → B → bus → A with one message in flight.
    pub async fn trips(&mut self, text: &str, n: usize, lat: &mut Latencies) {
        for _ in 0..n {
            let i = self.next;
            self.next += 1;
            let t0 = Instant::now();
            self.aw
                .line(&lines::message(&self.s, "a", "b", i, text))
                .await;
            self.aw.flush().await;
            let reply = loop {
                let frame = self.ar.next().await.expect("bus alive");
                let got = self.ar.parse(&frame);
                if got.kind == "message.send" {
                    break got;
                }
            };
            lat.push(t0.elapsed());
            self.in_order &= lines::number(&reply) == i;
            // Acked; the ack goes out with the next message.
            self.aw.line(&lines::ack(&self.s, "a", &reply)).await;
        }
    }

    /// Stops the bus and reports: every trip delivered exactly once and in order, plus the
    /// bus's own commit figures.
    pub async fn finish(mut self) -> String {
        self.aw.flush().await;
        let commit = commit_figures(&mut self.admin.0, &mut self.admin.1).await;
        drop(self.bus);
        let (seen, dups) = self.echo.await.expect("echo");
        format!(
            "{seen}/{} once, {dups} dup, in order: {}; {commit}",
            self.next,
            if self.in_order { "yes" } else { "NO" }
        )
    }
}

pub async fn throughput(
    bin: &Path,
    durability: &str,
    framing: Framing,
    text: &str,
    count: usize,
    window: usize,
) -> Throughput {
    let bus = start(bin, durability);
    let (s, (mut r, mut w), (mut ar, mut aw), (mut br, mut bw)) = setup(&bus, framing).await;
    let sb = s.clone();
    let receiver = tokio::spawn(async move {
        let mut seen = HashSet::with_capacity(count);
        let mut dups = 0;
        while seen.len() < count {
            let Some(line) = br.next().await else { break };
            let mut batch = vec![line];
            while let Some(l) = br.ready() {
                batch.push(l);
            }
            for line in batch {
                let got = br.parse(&line);
                if got.kind != "message.send" {
                    continue;
                }
                if !seen.insert(lines::number(&got)) {
                    dups += 1;
                }
                bw.line(&lines::ack(&sb, "b", &got)).await;
            }
            bw.flush().await;
        }
        bw.flush().await;
        (seen.len(), dups, br, bw)
    });
    let permits = Arc::new(Semaphore::new(window));
    let oks = {
        let permits = permits.clone();
        tokio::spawn(async move {
            let (mut ok, mut refused) = (0, 0);
            while ok + refused < count {
                let Some(line) = ar.next().await else { break };
                let mut batch = vec![line];
                while let Some(l) = ar.ready() {
                    batch.push(l);
                }
                for line in batch {
                    let got = ar.parse(&line);
                    if got.status.is_some() {
                        if got.error.is_some() {
                            refused += 1;
                        } else {
                            ok += 1;
                        }
                        permits.add_permits(1);
                    }
                }
            }
            (ok, refused)
        })
    };
    let pid = bus.child.id();
    let cpu_before = thread_cpu(pid);
    let started = Instant::now();
    send_windowed(&mut aw, &permits, count, |i| {
        lines::message(&s, "a", "b", i, text)
    })
    .await;
    let (ok, refused) = oks.await.expect("oks");
    let (received, dups, _br, _bw) = receiver.await.expect("receiver");
    let elapsed = started.elapsed();
    let cpu = thread_cpu(pid)
        .into_iter()
        .map(|(name, total)| {
            let before = cpu_before.get(&name).copied().unwrap_or_default();
            let per = total.saturating_sub(before).as_secs_f64() * 1e6 / count as f64;
            (name, per)
        })
        .collect();
    // Every delivery acked: the bus holds nothing pending any more.
    let deadline = Instant::now() + Duration::from_secs(20);
    let pending = loop {
        let stats = call(&mut r, &mut w, lines::request("bus.stats", None, "bench")).await;
        let pending = stats
            .payload
            .as_ref()
            .and_then(|p| p.get("pending_deliveries"))
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        if pending == 0 || Instant::now() > deadline {
            break pending;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let commit = commit_figures(&mut r, &mut w).await;
    Throughput {
        rate: count as f64 / elapsed.as_secs_f64(),
        check: format!(
            "{ok}/{count} ok, {refused} refused, {received} received once, {dups} dup, {pending} unacked; {commit}"
        ),
        cpu,
    }
}

/// The bus's own view: mean store commit time and inputs per group commit.
async fn commit_figures(r: &mut Reader, w: &mut Writer) -> String {
    let stats = call(r, w, lines::request("bus.stats", None, "bench")).await;
    let c = &stats.payload.unwrap_or_default()["counters"];
    let n = |k: &str| c[k].as_f64().unwrap_or(0.0);
    let batches = n("batches").max(1.0);
    format!(
        "commit mean {:.0} µs, max {:.0} µs, {:.1} inputs per batch",
        n("commit_micros_total") / batches,
        n("commit_micros_max"),
        n("batched_inputs") / batches
    )
}

/// The many-pairs throughput row alone, with the CPU per message of the bus (by thread) and of
/// this process, which runs the clients.
pub async fn pairs_only(bin: &Path, pairs: usize, count: usize, window: usize) {
    #![allow(clippy::print_stdout)]
    let bus = start(bin, "normal");
    let (bus_before, own_before) = (thread_cpu(bus.child.id()), thread_cpu(std::process::id()));
    let (rate, check) = crate::fanout::pairs_throughput(&bus.socket(), pairs, count, window).await;
    let spent = |before: &std::collections::BTreeMap<String, Duration>, pid: u32| {
        let after: Duration = thread_cpu(pid).values().sum();
        (after - before.values().sum::<Duration>()).as_secs_f64() * 1e6 / count as f64
    };
    let (bus_us, own_us) = (
        spent(&bus_before, bus.child.id()),
        spent(&own_before, std::process::id()),
    );
    println!(
        "{pairs} pairs: {rate:.0} msg/s ({check}); CPU per message: bus {bus_us:.1} µs, clients {own_us:.1} µs"
    );
}
