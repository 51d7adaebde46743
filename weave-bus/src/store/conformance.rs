//! The conformance suite every backend must pass: what the engine relies on, checked through
//! the [`Backend`] traits alone. `run(open)` runs every check, each on a fresh directory;
//! `open(dir)` opens the backend whose data lives there (called again on the same directory
//! to check what survives a restart). The SQLite store runs it below; a new backend adds one
//! test that calls [`run`].

use std::path::Path;

use super::backend::{Backend, DeadLetter, IdempotencyRef, RowWriter, SearchQuery};

type Open<'a> = &'a dyn Fn(&Path) -> Box<dyn Backend>;
type Check = fn(Open<'_>, &Path);

/// Every check, each on its own fresh directory.
pub fn run(open: Open<'_>) {
    let checks: [(&str, Check); 9] = [
        ("the log is read back in seq order", log_in_order),
        (
            "a rollback leaves nothing, a commit survives a restart",
            transactions,
        ),
        (
            "a read inside a transaction sees what it wrote so far",
            reads_see_the_open_transaction,
        ),
        (
            "deliveries are written, updated and settled by id",
            delivery_queue,
        ),
        ("dead letters are kept in order", dead_letters),
        ("sessions, agents and the runtime snapshot", key_value_state),
        (
            "remembered responses come back as written",
            remembered_responses,
        ),
        (
            "receipts only move forward and are pruned with the log",
            receipts,
        ),
        ("search finds a record's words until it is pruned", search),
    ];
    for (what, check) in checks {
        let dir = tempfile::tempdir().expect("a temporary directory");
        eprintln!("conformance: {what}");
        check(open, dir.path());
    }
}

const TS: &str = "2026-01-01T00:00:00Z";

fn envelope(seq: u64, text: &str) -> String {
    format!(
        r#"{{"v":1,"type":"message.send","id":"m{seq}","ts":"{TS}","src":"a","payload":{{"text":"{text}"}}}}"#
    )
}

/// One committed transaction of `f`'s rows.
fn batch(b: &mut dyn Backend, f: impl FnOnce(&mut dyn RowWriter)) {
    b.begin().unwrap();
    {
        let mut rows = b.rows().unwrap();
        f(&mut *rows);
    }
    b.commit().unwrap();
}

/// A backend with session 1 ("s1") holding records 1..=n.
fn with_log(open: Open<'_>, dir: &Path, n: u64) -> Box<dyn Backend> {
    let mut b = open(dir);
    b.begin().unwrap();
    b.insert_session(1, "s1", Some("one"), TS).unwrap();
    b.insert_session(2, "s2", None, TS).unwrap();
    b.commit().unwrap();
    batch(&mut *b, |r| {
        for seq in 1..=n {
            r.insert_event(1, seq, TS, &envelope(seq, &format!("word{seq}")))
                .unwrap();
        }
        r.insert_event(2, 1, TS, &envelope(1, "other")).unwrap();
    });
    b
}

fn seqs(records: &[super::StoredRecord]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

fn log_in_order(open: Open<'_>, dir: &Path) {
    let b = with_log(open, dir, 10);
    assert_eq!(
        seqs(&b.records_after(1, 0, 100).unwrap()),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(seqs(&b.records_after(1, 4, 3).unwrap()), [5, 6, 7]);
    assert_eq!(seqs(&b.latest_records(1, 3).unwrap()), [8, 9, 10]);
    assert_eq!(seqs(&b.records_after(2, 0, 100).unwrap()), [1]);
    let r = &b.records_after(1, 1, 1).unwrap()[0];
    assert_eq!(
        (r.ts.as_str(), r.envelope.clone()),
        (TS, envelope(2, "word2"))
    );
    b.prune_events(1, 4).unwrap();
    assert_eq!(seqs(&b.records_after(1, 0, 100).unwrap())[0], 5);
    let loaded = b.load().unwrap();
    let s1 = loaded.sessions.iter().find(|s| s.key == 1).unwrap();
    assert_eq!((s1.first_seq, s1.last_seq), (5, 10));
}

fn transactions(open: Open<'_>, dir: &Path) {
    let mut b = with_log(open, dir, 3);
    b.begin().unwrap();
    {
        let mut rows = b.rows().unwrap();
        rows.insert_event(1, 4, TS, &envelope(4, "lost")).unwrap();
    }
    b.rollback();
    assert_eq!(seqs(&b.records_after(1, 0, 100).unwrap()), [1, 2, 3]);
    b.checkpoint().unwrap();
    drop(b);
    let b = open(dir);
    assert_eq!(seqs(&b.records_after(1, 0, 100).unwrap()), [1, 2, 3]);
    let loaded = b.load().unwrap();
    let names: Vec<_> = loaded
        .sessions
        .iter()
        .map(|s| (s.key, s.id.as_str(), s.name.as_deref()))
        .collect();
    assert_eq!(names, [(1, "s1", Some("one")), (2, "s2", None)]);
}

/// The engine reads in the middle of a batch (a new follower's replay, an inbox) and must see
/// the batch's rows: a record written and then read in one transaction is there.
fn reads_see_the_open_transaction(open: Open<'_>, dir: &Path) {
    let mut b = with_log(open, dir, 3);
    b.begin().unwrap();
    {
        let mut rows = b.rows().unwrap();
        rows.insert_event(1, 4, TS, &envelope(4, "fresh")).unwrap();
        rows.put_receipt(1, "m4", "b", 4, 1).unwrap();
    }
    assert_eq!(seqs(&b.records_after(1, 3, 10).unwrap()), [4]);
    assert_eq!(b.receipts_for(1, "b", &["m4".into()]).unwrap().len(), 1);
    // Written after that read, and read again.
    {
        let mut rows = b.rows().unwrap();
        rows.insert_event(1, 5, TS, &envelope(5, "later")).unwrap();
    }
    assert_eq!(seqs(&b.records_after(1, 3, 10).unwrap()), [4, 5]);
    b.commit().unwrap();
    assert_eq!(seqs(&b.records_after(1, 0, 10).unwrap()), [1, 2, 3, 4, 5]);
    // A rollback after a read takes back what the read saw.
    b.begin().unwrap();
    {
        let mut rows = b.rows().unwrap();
        rows.insert_event(1, 6, TS, &envelope(6, "lost")).unwrap();
    }
    assert_eq!(seqs(&b.records_after(1, 5, 10).unwrap()), [6]);
    b.rollback();
    assert_eq!(seqs(&b.records_after(1, 0, 10).unwrap()), [1, 2, 3, 4, 5]);
    drop(b);
    let b = open(dir);
    assert_eq!(seqs(&b.records_after(1, 0, 10).unwrap()), [1, 2, 3, 4, 5]);
}

fn delivery_queue(open: Open<'_>, dir: &Path) {
    let mut b = with_log(open, dir, 3);
    batch(&mut *b, |r| {
        r.put_delivery(1, 1, "b", 1, 1, None).unwrap();
        r.put_delivery(2, 1, "b", 2, 1, None).unwrap();
        r.put_delivery(3, 1, "c", 3, 1, None).unwrap();
    });
    batch(&mut *b, |r| {
        r.put_delivery(2, 1, "d", 2, 3, Some("b")).unwrap();
        r.delete_delivery(1).unwrap();
    });
    drop(b);
    let loaded = open(dir).load().unwrap();
    let rows: Vec<_> = loaded
        .deliveries
        .iter()
        .map(|d| {
            (
                d.id,
                d.target.as_str(),
                d.seq,
                d.count,
                d.addressed.as_deref(),
            )
        })
        .collect();
    assert_eq!(rows, [(2, "d", 2, 3, Some("b")), (3, "c", 3, 1, None)]);
    assert_eq!(loaded.deliveries[0].envelope, envelope(2, "word2"));
    assert!(loaded.next_delivery_id > 3);
}

fn dead_letters(open: Open<'_>, dir: &Path) {
    let mut b = with_log(open, dir, 3);
    b.begin().unwrap();
    for (id, seq) in [(7, 2), (8, 3)] {
        let env = envelope(seq, "gone");
        b.insert_dead_letter(DeadLetter {
            id,
            session: 1,
            target: "b",
            seq,
            count: 5,
            reason: "max_deliver",
            ts: TS,
            envelope: &env,
        })
        .unwrap();
    }
    b.commit().unwrap();
    let all = b.dead_letters(1, 10).unwrap();
    let got: Vec<_> = all
        .iter()
        .map(|d| (d.id, d.seq, d.count, d.reason.as_str()))
        .collect();
    assert_eq!(got, [(7, 2, 5, "max_deliver"), (8, 3, 5, "max_deliver")]);
    assert_eq!(all[1].envelope, envelope(3, "gone"));
    assert_eq!(b.dead_letters(1, 1).unwrap().len(), 1);
    assert!(b.dead_letters(2, 10).unwrap().is_empty());
}

fn key_value_state(open: Open<'_>, dir: &Path) {
    let mut b = with_log(open, dir, 1);
    b.begin().unwrap();
    b.upsert_agent(1, "a", Some("A"), "agent").unwrap();
    b.upsert_agent(1, "b", None, "agent").unwrap();
    b.upsert_agent(1, "a", Some("Alice"), "human").unwrap();
    b.set_agent_instance(1, "a", Some("inst-1")).unwrap();
    b.set_agent_secret(1, "b", "s-b").unwrap();
    b.set_agent_position(1, "b", Some(3)).unwrap();
    b.upsert_agent(2, "c", None, "agent").unwrap();
    b.delete_agent(2, "c").unwrap();
    b.close_session(2, TS).unwrap();
    b.put_runtime_snapshot("{}", b"first").unwrap();
    b.put_runtime_snapshot(r#"{"1":1}"#, b"second").unwrap();
    b.commit().unwrap();
    drop(b);
    let b = open(dir);
    let loaded = b.load().unwrap();
    let agents: Vec<_> = loaded
        .agents
        .iter()
        .map(|a| {
            (
                a.session_key,
                a.id.as_str(),
                a.name.as_deref(),
                a.kind.as_str(),
                a.position,
                a.instance.as_deref(),
                a.secret.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        agents,
        [
            (1, "a", Some("Alice"), "human", None, Some("inst-1"), None),
            (1, "b", None, "agent", Some(3), None, Some("s-b"))
        ]
    );
    let closed: Vec<_> = loaded.sessions.iter().map(|s| s.closed).collect();
    assert_eq!(closed, [false, true]);
    assert_eq!(
        b.runtime_snapshot().unwrap(),
        Some((r#"{"1":1}"#.to_owned(), b"second".to_vec()))
    );
}

fn remembered_responses(open: Open<'_>, dir: &Path) {
    let mut b = open(dir);
    let entry = |id: i64, key: &'static str, response: &'static str| IdempotencyRef {
        id,
        session: "s\"1",
        src: "a\u{e9}",
        key,
        response,
        created_ms: 1_700_000_000_000 + id,
    };
    let batches = [
        vec![
            entry(1, "i:m1", r#"{"id":"m1","seq":1}"#),
            entry(2, "k:\n", "null"),
        ],
        vec![entry(
            3,
            "i:m3",
            r#"{"dst":"b","id":"m3","seq":[1,{"x":"\""}]}"#,
        )],
    ];
    for entries in &batches {
        batch(&mut *b, |r| r.put_idempotency(entries).unwrap());
    }
    batch(&mut *b, |r| r.put_idempotency(&[]).unwrap());
    drop(b);
    let b = open(dir);
    let rows = b.load().unwrap().idempotency;
    let want: Vec<_> = batches.iter().flatten().collect();
    assert_eq!(rows.len(), want.len());
    for (row, e) in rows.iter().zip(want) {
        assert_eq!(
            (
                row.id,
                row.session.as_str(),
                row.src.as_str(),
                row.key.as_str(),
                row.response.as_str(),
                row.created_ms
            ),
            (e.id, e.session, e.src, e.key, e.response, e.created_ms)
        );
    }
    b.delete_idempotency_through(2).unwrap();
    let left: Vec<_> = b.load().unwrap().idempotency.iter().map(|r| r.id).collect();
    assert_eq!(left, [3]);
}

fn receipts(open: Open<'_>, dir: &Path) {
    let mut b = with_log(open, dir, 4);
    batch(&mut *b, |r| {
        for (m, agent, seq, state) in [
            ("m1", "b", 1, 1),
            ("m1", "c", 1, 2),
            ("m2", "b", 2, 1),
            ("m3", "b", 3, 1),
        ] {
            r.put_receipt(1, m, agent, seq, state).unwrap();
        }
    });
    batch(&mut *b, |r| {
        r.put_receipt(1, "m1", "b", 1, 3).unwrap();
        r.put_receipt(1, "m1", "c", 1, 1).unwrap(); // never back
    });
    let of: Vec<_> = b
        .receipts_of(1, &["m1".into(), "m2".into()])
        .unwrap()
        .into_iter()
        .map(|r| (r.message, r.agent, r.state))
        .collect();
    assert_eq!(
        of,
        [
            ("m1".into(), "b".into(), 3),
            ("m1".into(), "c".into(), 2),
            ("m2".into(), "b".into(), 1)
        ]
    );
    let mine = b.receipts_for(1, "b", &["m2".into(), "m9".into()]).unwrap();
    assert_eq!(
        mine.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(),
        ["m2"]
    );
    let (unread, total) = b.unread(1, "b", 2, 1).unwrap();
    assert_eq!((unread.len(), total), (1, 2));
    assert_eq!((unread[0].message.as_str(), unread[0].seq), ("m2", 2));
    assert_eq!(unread[0].envelope, envelope(2, "word2"));
    b.prune_events(1, 2).unwrap();
    assert!(b
        .receipts_of(1, &["m1".into(), "m2".into()])
        .unwrap()
        .is_empty());
    assert_eq!(b.unread(1, "b", 2, 10).unwrap().1, 1);
}

fn search(open: Open<'_>, dir: &Path) {
    let b = with_log(open, dir, 5);
    let q = |text: &str| SearchQuery {
        text: Some(text.into()),
        limit: 10,
        ..SearchQuery::default()
    };
    assert_eq!(seqs(&b.search(1, &q("word3")).unwrap()), [3]);
    assert!(b.search(1, &q("other")).unwrap().is_empty());
    assert_eq!(seqs(&b.search(2, &q("other")).unwrap()), [1]);
    b.prune_events(1, 3).unwrap();
    assert!(b.search(1, &q("word3")).unwrap().is_empty());
    assert_eq!(b.index_search(1, 100).unwrap(), 0);
}

#[cfg(test)]
mod tests {
    use crate::config::Durability;
    use crate::store::Store;

    #[test]
    fn sqlite_passes_the_backend_conformance_suite() {
        super::run(&|dir| {
            Box::new(Store::open(&dir.join("store.db"), Durability::Normal).unwrap())
        });
    }
}
