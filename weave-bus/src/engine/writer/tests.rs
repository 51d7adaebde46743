//! The writer against a real store: failed commits, poisoning and recovery.

use super::*;
use crate::config::Durability;
use crate::conn::ConnShared;
use crate::store::Store;
use tokio::sync::mpsc;

fn failing() -> Write {
    Write::Other(Box::new(|_| Err(StoreError::other("a failing write"))))
}

fn session(key: i64) -> Write {
    Write::Other(Box::new(move |s| {
        s.insert_session(key, &format!("s{key}"), None, "2026-11-22T00:00:00Z")
    }))
}

fn release(out: &ConnOut, line: &str, request: &str) -> Vec<Release> {
    vec![Release {
        out: out.clone(),
        lines: Bytes::from(format!("{line}\n")),
        requests: vec![request.to_owned()],
    }]
}

fn wait_idle(writer: &Writer) {
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while !writer.idle() {
        assert!(Instant::now() < deadline, "the writer never finished");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// What reached the connection: each line, as text.
fn lines(rx: &mut mpsc::UnboundedReceiver<Bytes>) -> Vec<String> {
    let mut all = String::new();
    while let Ok(bytes) = rx.try_recv() {
        all.push_str(&String::from_utf8_lossy(&bytes));
    }
    all.lines().map(str::to_owned).collect()
}

/// A failed commit refuses its batch and every batch handed over after it, until the engine
/// recovers; nothing of them is written or released; then batches count again.
#[test]
fn a_failed_commit_poisons_the_batches_behind_it_until_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store.db"), Durability::Normal).unwrap();
    let writer = Writer::spawn(Box::new(store), Arc::new(Metrics::default())).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let out = ConnOut::new(tx, Arc::new(ConnShared::default()));

    // Handed over (not inline): a good write then a failing one; then a batch applied on
    // top of it, which on its own would commit.
    writer.commit(
        vec![session(1), failing()],
        release(&out, "one", "r1"),
        false,
    );
    writer.commit(vec![session(2)], release(&out, "two", "r2"), false);
    wait_idle(&writer);
    assert!(writer.poisoned());
    let got = lines(&mut rx);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].contains(r#""corr":"r1""#) && got[0].contains("store_unavailable"));
    assert!(got[0].contains("the store could not commit"), "{}", got[0]);
    assert!(
        got[1].contains(r#""corr":"r2""#) && got[1].contains("earlier batch"),
        "{}",
        got[1]
    );
    let keys = |w: &Writer| {
        w.read(|s| s.load())
            .unwrap()
            .sessions
            .iter()
            .map(|r| r.key)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        keys(&writer),
        Vec::<i64>::new(),
        "nothing of either batch was written"
    );

    // The engine reloaded: batches count again, inline or handed over.
    writer.recover();
    assert!(!writer.poisoned());
    writer.commit(vec![session(3)], release(&out, "three", "r3"), true);
    writer.commit(vec![session(4)], release(&out, "four", "r4"), false);
    wait_idle(&writer);
    assert_eq!(lines(&mut rx), vec!["three", "four"]);
    assert_eq!(keys(&writer), vec![3, 4]);
    writer.stop();
}
