//! The store's disk fills up: the bus's home is a small tmpfs, filled by a ballast file while
//! agents keep sending. Requests fail with `store_unavailable`, the bus stays up and keeps
//! serving reads, nothing it said `ok` to is lost, nothing it refused is delivered, and once the
//! ballast is gone it carries on by itself, without a restart.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use weave_test_kit::*;

/// What the receiving agent saw: message numbers in order of arrival, and how many came again
/// unmarked (a redelivery must say so).
#[derive(Default)]
struct Seen {
    arrivals: Vec<u64>,
    unmarked_repeats: Vec<u64>,
}

/// Message numbers in order of first arrival (a redelivery repeats a number).
fn first_arrivals(arrivals: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut firsts = Vec::new();
    for n in arrivals {
        if !firsts.contains(&n) {
            firsts.push(n);
        }
    }
    firsts
}

/// Fills the filesystem holding `dir` with a ballast file until it is full.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("ballast");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xA5u8; 64 * 1024];
    loop {
        if let Err(e) = f.write_all(&chunk).and_then(|_| f.sync_all()) {
            assert_eq!(e.raw_os_error(), Some(nix::libc::ENOSPC), "{e}");
            break;
        }
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_clearly_loses_nothing_and_recovers_by_itself() {
    let bus = BusProcess::start_on_tmpfs("8m");
    let (s, c, b) = bus.pair("full").await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let rx = tokio::spawn({
        let (seen, s) = (seen.clone(), s.clone());
        let mut b = b;
        async move {
            loop {
                let env = b.next_of("message.send").await;
                let n: u64 = text_of(&env).split(':').next().unwrap().parse().unwrap();
                {
                    let mut seen = seen.lock().unwrap();
                    let marked = meta_weave(&env, "redelivered") == Some(&Value::Bool(true));
                    if seen.arrivals.contains(&n) && !marked {
                        seen.unmarked_repeats.push(n);
                    }
                    seen.arrivals.push(n);
                }
                b.ack(&s, "b1", &env);
            }
        }
    });
    let pad = "p".repeat(2000);
    let mut oked = Vec::new();
    let mut refused = Vec::new();
    let mut n = 0u64;
    let send = |n: u64| message(&s, "a1", "b1", &format!("{n}:{pad}"));
    for _ in 0..50 {
        assert_eq!(c.call(send(n)).await.error, None);
        oked.push(n);
        n += 1;
    }

    let ballast = fill(&bus.view(bus.home.parent().unwrap()));
    let mut first_refusal = None;
    for _ in 0..20_000 {
        let resp = c.call(send(n)).await;
        match resp.error {
            None => oked.push(n),
            Some(e) => {
                assert_eq!(e.code, "store_unavailable", "{}", e.message);
                refused.push(n);
                first_refusal.get_or_insert(e.message);
            }
        }
        n += 1;
        if refused.len() >= 20 {
            break;
        }
    }
    let message = first_refusal.expect("a full disk refuses writes");
    assert!(
        message.contains("full"),
        "the error says what is wrong: {message}"
    );
    // The bus is up and answers what needs no write (a read that shares a batch with a failing
    // write is refused with it; alone, it is answered).
    let deadline = tokio::time::Instant::now() + WAIT;
    let stats = loop {
        let resp = c.req("bus.stats", None, "t", Value::Null).await;
        match resp.error {
            None => break resp.payload.unwrap(),
            Some(e) => assert_eq!(e.code, "store_unavailable"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reads never answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(stats["counters"]["store_errors"].as_u64().unwrap() > 0);

    // Space returns: the bus carries on by itself.
    std::fs::remove_file(&ballast).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let resp = c.call(send(n)).await;
        n += 1;
        match resp.error {
            None => {
                oked.push(n - 1);
                break;
            }
            Some(e) => {
                assert_eq!(e.code, "store_unavailable");
                refused.push(n - 1);
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..50 {
        assert_eq!(c.call(send(n)).await.error, None);
        oked.push(n);
        n += 1;
    }

    // Everything said ok arrives, in order of sending; nothing refused ever arrives.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let firsts = first_arrivals(seen.lock().unwrap().arrivals.iter().copied());
        if firsts == oked {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivered {} of {} ok'd messages, refused {}; first arrivals {firsts:?}",
            firsts.len(),
            oked.len(),
            refused.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rx.abort();
    let seen = seen.lock().unwrap();
    assert!(refused.iter().all(|r| !seen.arrivals.contains(r)));
    assert_eq!(seen.unmarked_repeats, Vec::<u64>::new());
    eprintln!(
        "disk full: {} ok, {} refused store_unavailable, {} deliveries",
        oked.len(),
        refused.len(),
        seen.arrivals.len()
    );
}

/// The same under load: 64 senders keep requests in flight, so batches are large and commit on
/// the store's writer thread while the engine applies the next ones. When a commit fails, the
/// batches applied on top of it are refused too; whatever was answered `ok` is delivered, in
/// each sender's order, and nothing refused ever is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_load_refuses_what_depends_on_a_failed_commit_and_loses_nothing() {
    const SENDERS: u64 = 64;
    let bus = BusProcess::start_on_tmpfs("8m");
    let (s, c, b) = bus.pair("full-load").await;
    let arrivals = Arc::new(Mutex::new(Vec::<(u64, u64)>::new()));
    let rx = tokio::spawn({
        let (arrivals, s) = (arrivals.clone(), s.clone());
        let mut b = b;
        async move {
            loop {
                let env = b.next_of("message.send").await;
                let mut parts = text_of(&env).split(':');
                let sender: u64 = parts.next().unwrap().parse().unwrap();
                let n: u64 = parts.next().unwrap().parse().unwrap();
                arrivals.lock().unwrap().push((sender, n));
                b.ack(&s, "b1", &env);
            }
        }
    });
    let pad = "p".repeat(2000);
    // Each sender: (number, ok) for every request it made, until told to stop.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let behind_a_failed_commit = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let (client, s, pad) = (c.client.clone(), s.clone(), pad.clone());
            let (stop, behind) = (stop.clone(), behind_a_failed_commit.clone());
            tokio::spawn(async move {
                let mut results = Vec::new();
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let env = message(&s, "a1", "b1", &format!("{sender}:{n}:{pad}"));
                    let resp = tokio::time::timeout(WAIT, client.request(env))
                        .await
                        .expect("answered in time")
                        .expect("answered");
                    if let Some(e) = &resp.error {
                        assert_eq!(e.code, "store_unavailable", "{}", e.message);
                        if e.message.contains("earlier batch") {
                            behind.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    results.push((n, resp.error.is_none()));
                    n += 1;
                }
                results
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ballast = fill(&bus.view(bus.home.parent().unwrap()));
    // Let the full disk refuse for a while, then give the space back.
    tokio::time::sleep(Duration::from_millis(700)).await;
    std::fs::remove_file(&ballast).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut oked = std::collections::BTreeSet::new();
    let mut refused = std::collections::BTreeSet::new();
    for (sender, task) in senders.into_iter().enumerate() {
        for (n, ok) in task.await.unwrap() {
            if ok {
                oked.insert((sender as u64, n));
            } else {
                refused.insert((sender as u64, n));
            }
        }
    }
    assert!(!refused.is_empty(), "the full disk refused nothing");
    // Recovered: the last request of every sender after the space came back was answered ok.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let delivered: std::collections::BTreeSet<(u64, u64)> =
            arrivals.lock().unwrap().iter().copied().collect();
        if delivered == oked {
            break;
        }
        assert!(
            refused.iter().all(|r| !delivered.contains(r)),
            "a refused message was delivered"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivered {} of {} ok'd messages ({} refused)",
            delivered.len(),
            oked.len(),
            refused.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rx.abort();
    // Each sender's messages arrived in the order it sent them.
    let arrivals = arrivals.lock().unwrap();
    for sender in 0..SENDERS {
        let firsts = first_arrivals(
            arrivals
                .iter()
                .filter(|(s, _)| *s == sender)
                .map(|&(_, n)| n),
        );
        assert!(
            firsts.windows(2).all(|w| w[0] < w[1]),
            "sender {sender}: {firsts:?}"
        );
    }
    eprintln!(
        "disk full under load: {} ok, {} refused store_unavailable ({} of them behind a failed commit)",
        oked.len(),
        refused.len(),
        behind_a_failed_commit.load(std::sync::atomic::Ordering::Relaxed)
    );
}
