//! The baseline: a forwarder process that parses and re-serializes every JSON line between two
//! clients, with nothing else — no store, no registry, no acks of its own.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codex_weave_runtime::Envelope;
use tokio::net::UnixListener;
use tokio::sync::Semaphore;

use crate::lines::{self, Reader, Writer};
use crate::stats::{Latencies, Throughput};

/// Runs the forwarder: the first client to connect is A, the second B; every line from one is
/// parsed, re-serialized and written to the other.
pub async fn forwarder(socket: PathBuf) {
    let listener = UnixListener::bind(&socket).expect("bind");
    let (a, _) = listener.accept().await.expect("accept a");
    let (b, _) = listener.accept().await.expect("accept b");
    let (ar, aw) = lines::split(a);
    let (br, bw) = lines::split(b);
    let one = tokio::spawn(pump(ar, bw));
    let two = tokio::spawn(pump(br, aw));
    let _ = tokio::join!(one, two);
}

async fn pump(mut from: Reader, mut to: Writer) {
    while let Some(line) = from.next().await {
        to.line(&lines::parse(&line)).await;
        while let Some(line) = from.ready() {
            to.line(&lines::parse(&line)).await;
        }
        to.flush().await;
    }
}

struct Forwarder {
    child: Child,
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_forwarder() -> Forwarder {
    let dir = tempfile::TempDir::new().expect("tmp");
    let socket = dir.path().join("fwd.sock");
    let child = Command::new(std::env::current_exe().expect("self"))
        .arg("forwarder")
        .arg(&socket)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn forwarder");
    wait_for_socket(&socket).await;
    Forwarder {
        child,
        _dir: dir,
        socket,
    }
}

pub async fn wait_for_socket(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Two clients of a running forwarder: A sends, B echoes; for round trips.
pub struct PingPong {
    _fwd: Forwarder,
    ar: Reader,
    aw: Writer,
    echo: tokio::task::JoinHandle<()>,
    next: usize,
    in_order: bool,
}

impl PingPong {
    pub async fn start() -> PingPong {
        let fwd = start_forwarder().await;
        let (ar, aw) = lines::connect(&fwd.socket).await;
        let (mut br, mut bw) = lines::connect(&fwd.socket).await;
        let echo = tokio::spawn(async move {
            while let Some(line) = br.next().await {
                let got = lines::parse(&line);
                let reply = lines::message("s", "b", "a", lines::number(&got), "ok");
                bw.line(&reply).await;
                bw.flush().await;
            }
        });
        PingPong {
            _fwd: fwd,
            ar,
            aw,
            echo,
            next: 0,
            in_order: true,
        }
    }

    /// `n` round trips with one message in flight; their latencies go into `lat`.
    pub async fn trips(&mut self, text: &str, n: usize, lat: &mut Latencies) {
        for _ in 0..n {
            let i = self.next;
            self.next += 1;
            let t0 = Instant::now();
            self.aw.line(&lines::message("s", "a", "b", i, text)).await;
            self.aw.flush().await;
            let reply = lines::parse(&self.ar.next().await.expect("reply"));
            lat.push(t0.elapsed());
            self.in_order &= lines::number(&reply) == i;
        }
    }

    pub fn check(&self) -> String {
        format!(
            "baseline trips in order: {}",
            if self.in_order { "yes" } else { "NO" }
        )
    }
}

impl Drop for PingPong {
    fn drop(&mut self) {
        self.echo.abort();
    }
}

pub async fn throughput(text: &str, count: usize, window: usize) -> Throughput {
    let fwd = start_forwarder().await;
    let (mut ar, mut aw) = lines::connect(&fwd.socket).await;
    let (mut br, mut bw) = lines::connect(&fwd.socket).await;
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
                let got = lines::parse(&line);
                if !seen.insert(lines::number(&got)) {
                    dups += 1;
                }
                bw.line(&lines::ack("s", "b", &got)).await;
            }
            bw.flush().await;
        }
        (seen.len(), dups)
    });
    let permits = Arc::new(Semaphore::new(window));
    let acks = {
        let permits = permits.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while n < count {
                let Some(_) = ar.next().await else { break };
                n += 1;
                let mut more = 1;
                while ar.ready().is_some() {
                    more += 1;
                }
                n += more - 1;
                permits.add_permits(more);
            }
            n
        })
    };
    let started = Instant::now();
    send_windowed(&mut aw, &permits, count, |i| {
        lines::message("s", "a", "b", i, text)
    })
    .await;
    let acked = acks.await.expect("acks");
    let elapsed = started.elapsed();
    let (received, dups) = receiver.await.expect("receiver");
    Throughput {
        cpu: Vec::new(),
        rate: count as f64 / elapsed.as_secs_f64(),
        check: format!("baseline {count} sent, {received} received, {dups} dup, {acked} acks"),
    }
}

/// Writes `count` envelopes, never more than the semaphore's permits ahead, flushing whenever
/// the window is used up (and at the end).
pub async fn send_windowed(
    w: &mut Writer,
    permits: &Semaphore,
    count: usize,
    make: impl Fn(usize) -> Envelope,
) {
    for i in 0..count {
        if permits.available_permits() == 0 {
            w.flush().await;
        }
        permits.acquire().await.expect("open").forget();
        w.line(&make(i)).await;
    }
    w.flush().await;
}
