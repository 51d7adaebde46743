//! A store replicated through NATS JetStream (issue 18; `docs/weave/cluster.md`). The local
//! SQLite store is a mirror that serves every read; every transaction is also one message on a
//! JetStream stream, appended (fenced on the sequence of the one before it) before the mirror
//! commits, so a commit is acknowledged only once the cluster holds it. A store opened with an
//! empty or older mirror — a standby on another machine, a daemon back from a crash — first
//! applies the transactions it has not seen. A second writer is refused by the fence.
//!
//! Carried by the log: everything the seam writes (records, deliveries, receipts, remembered
//! responses, sessions, agents, dead letters, pruning). Kept per mirror: the search index, the
//! runtime's snapshot (a standby without one replays the log), checkpoints.

mod log;
mod op;

use std::cell::{Cell, Ref, RefCell};
use std::path::Path;

use tokio_util::sync::CancellationToken;

use self::log::Log;
use self::op::{apply, Op};
use crate::config::{Durability, LogConfig};
use crate::store::backend::*;
use crate::store::Store;

pub struct Replicated {
    mirror: RefCell<Store>,
    log: Log,
    /// The mutations of the open transaction, applied to the mirror before a read and at
    /// commit, appended to the log at commit.
    ops: RefCell<Vec<Op>>,
    in_txn: bool,
    /// How many of `ops` the mirror has (in its own open transaction): a read inside a
    /// transaction sees what it wrote, as on SQLite.
    applied: Cell<usize>,
    /// Stream sequence of the last transaction on the log: the fence of the next append.
    last: Cell<u64>,
    /// Counts this writer's transactions, for their message ids.
    appended: Cell<u64>,
    writer: String,
}

impl Replicated {
    /// Opens the mirror at `path` and the log, and applies what the mirror has not seen. Once
    /// `deposed` is cancelled (the daemon lost its cluster's lease), every append and read
    /// fails at once instead of waiting for the cluster.
    pub fn open(
        path: &Path,
        durability: Durability,
        cfg: &LogConfig,
        deposed: CancellationToken,
    ) -> StoreResult<Replicated> {
        let mirror = Store::open(path, durability)?;
        let log = Log::open(&cfg.urls, &cfg.stream, &cfg.subject, cfg.replicas, deposed)?;
        let store = Replicated {
            mirror: RefCell::new(mirror),
            log,
            ops: RefCell::new(Vec::new()),
            in_txn: false,
            applied: Cell::new(0),
            last: Cell::new(0),
            appended: Cell::new(0),
            writer: uuid::Uuid::new_v4().simple().to_string(),
        };
        store.catch_up()?;
        Ok(store)
    }

    /// Applies the log's transactions after what the mirror holds, each in a transaction of
    /// the mirror with its new position. A transaction whose parts did not all land (its
    /// writer died between them, and never acknowledged it) is skipped.
    pub fn catch_up(&self) -> StoreResult<()> {
        let last = self.log.last()?;
        let mut mirror = self.mirror.borrow_mut();
        let mut body = Vec::new();
        let mut txn = String::new();
        for part in self.log.after(mirror.replicated_through()?, last)? {
            if part.index == 1 {
                body.clear();
                txn.clone_from(&part.txn);
            } else if part.txn != txn || body.is_empty() {
                continue; // the rest of a transaction whose beginning was skipped
            }
            body.extend_from_slice(&part.body);
            if part.index < part.count {
                continue;
            }
            let ops: Vec<Op> = serde_json::from_slice(&body)?;
            body.clear();
            mirror.begin()?;
            let applied =
                apply(&*mirror, &ops).and_then(|()| mirror.set_replicated_through(part.seq));
            if let Err(e) = applied {
                mirror.rollback();
                return Err(e);
            }
            mirror.commit()?;
        }
        self.last.set(last);
        Ok(())
    }

    /// Appends `ops` as one transaction, then commits them to the mirror (already begun, with
    /// the first `applied` of them in it).
    fn append_and_commit(&self, mirror: &mut Store, ops: &[Op], applied: usize) -> StoreResult<()> {
        let written = (|| {
            apply(&*mirror, &ops[applied..])?;
            self.appended.set(self.appended.get() + 1);
            let txn = format!("{}:{}", self.writer, self.appended.get());
            let body = serde_json::to_vec(ops)?;
            let seq = self.log.append(&txn, self.last.get(), &body)?;
            self.last.set(seq);
            mirror.set_replicated_through(seq)
        })();
        match written {
            Ok(()) => mirror.commit(),
            Err(e) => {
                mirror.rollback();
                Err(e)
            }
        }
    }

    /// A mutation: recorded in the open transaction, or a transaction of its own.
    fn mutate(&self, op: Op) -> StoreResult<()> {
        if self.in_txn {
            self.ops.borrow_mut().push(op);
            return Ok(());
        }
        let mut mirror = self.mirror.borrow_mut();
        mirror.begin()?;
        self.append_and_commit(&mut mirror, &[op], 0)
    }

    /// The mirror for a read: inside a transaction, with its mutations so far applied (in the
    /// mirror's own open transaction, begun by the first of them).
    fn mirror(&self) -> StoreResult<Ref<'_, Store>> {
        let ops = self.ops.borrow();
        let applied = self.applied.get();
        if self.in_txn && ops.len() > applied {
            let mut mirror = self.mirror.borrow_mut();
            if applied == 0 {
                mirror.begin()?;
            }
            if let Err(e) = apply(&*mirror, &ops[applied..]) {
                // All of it again, from a clean mirror, by the next read or the commit.
                mirror.rollback();
                self.applied.set(0);
                return Err(e);
            }
            self.applied.set(ops.len());
        }
        Ok(self.mirror.borrow())
    }
}

/// The open transaction's rows, recorded.
struct Recording<'a> {
    ops: &'a RefCell<Vec<Op>>,
}

impl RowWriter for Recording<'_> {
    fn insert_event(
        &mut self,
        session: i64,
        seq: u64,
        ts: &str,
        envelope: &str,
    ) -> StoreResult<()> {
        self.ops.borrow_mut().push(Op::Event {
            session,
            seq,
            ts: ts.to_owned(),
            envelope: envelope.to_owned(),
        });
        Ok(())
    }

    fn put_delivery(
        &mut self,
        id: u64,
        session: i64,
        target: &str,
        seq: u64,
        count: u32,
        addressed: Option<&str>,
    ) -> StoreResult<()> {
        self.ops.borrow_mut().push(Op::Delivery {
            id,
            session,
            target: target.to_owned(),
            seq,
            count,
            addressed: addressed.map(str::to_owned),
        });
        Ok(())
    }

    fn delete_delivery(&mut self, id: u64) -> StoreResult<()> {
        self.ops.borrow_mut().push(Op::Undelivery { id });
        Ok(())
    }

    fn put_receipt(
        &mut self,
        session: i64,
        message: &str,
        agent: &str,
        seq: u64,
        state: i64,
    ) -> StoreResult<()> {
        self.ops.borrow_mut().push(Op::Receipt {
            session,
            message: message.to_owned(),
            agent: agent.to_owned(),
            seq,
            state,
        });
        Ok(())
    }

    fn put_idempotency(&mut self, entries: &[IdempotencyRef<'_>]) -> StoreResult<()> {
        self.ops.borrow_mut().push(Op::idempotency(entries));
        Ok(())
    }
}

impl Transactions for Replicated {
    fn begin(&mut self) -> StoreResult<()> {
        self.in_txn = true;
        Ok(())
    }

    fn commit(&mut self) -> StoreResult<()> {
        if !std::mem::take(&mut self.in_txn) {
            return Ok(());
        }
        let ops = std::mem::take(&mut *self.ops.borrow_mut());
        let applied = self.applied.replace(0);
        if ops.is_empty() {
            return Ok(());
        }
        let mut mirror = self.mirror.borrow_mut();
        if applied == 0 {
            mirror.begin()?;
        }
        self.append_and_commit(&mut mirror, &ops, applied)
    }

    fn rollback(&mut self) {
        self.in_txn = false;
        self.ops.borrow_mut().clear();
        if self.applied.replace(0) > 0 {
            self.mirror.borrow_mut().rollback();
        }
    }

    fn checkpoint(&self) -> StoreResult<()> {
        self.mirror.borrow().checkpoint()
    }

    fn rows(&self) -> StoreResult<Box<dyn RowWriter + '_>> {
        Ok(Box::new(Recording { ops: &self.ops }))
    }
}

impl EventLog for Replicated {
    fn records_after(
        &self,
        session: i64,
        since: u64,
        limit: usize,
    ) -> StoreResult<Vec<StoredRecord>> {
        self.mirror()?.records_after(session, since, limit)
    }

    fn latest_records(&self, session: i64, limit: usize) -> StoreResult<Vec<StoredRecord>> {
        self.mirror()?.latest_records(session, limit)
    }

    fn prune_events(&self, session: i64, through: u64) -> StoreResult<()> {
        self.mutate(Op::PruneEvents { session, through })
    }
}

impl DeliveryQueue for Replicated {
    fn insert_dead_letter(&self, dead: DeadLetter<'_>) -> StoreResult<()> {
        self.mutate(Op::dead_letter(&dead))
    }

    fn dead_letters(&self, session: i64, limit: usize) -> StoreResult<Vec<DeadLetterRow>> {
        self.mirror()?.dead_letters(session, limit)
    }
}

impl State for Replicated {
    fn load(&self) -> StoreResult<Loaded> {
        self.mirror()?.load()
    }

    fn insert_session(
        &self,
        key: i64,
        id: &str,
        name: Option<&str>,
        created_at: &str,
    ) -> StoreResult<()> {
        self.mutate(Op::InsertSession {
            key,
            id: id.to_owned(),
            name: name.map(str::to_owned),
            created_at: created_at.to_owned(),
        })
    }

    fn close_session(&self, key: i64, at: &str) -> StoreResult<()> {
        self.mutate(Op::CloseSession {
            key,
            at: at.to_owned(),
        })
    }

    fn upsert_agent(
        &self,
        session: i64,
        id: &str,
        name: Option<&str>,
        kind: &str,
    ) -> StoreResult<()> {
        self.mutate(Op::UpsertAgent {
            session,
            id: id.to_owned(),
            name: name.map(str::to_owned),
            kind: kind.to_owned(),
        })
    }

    fn set_agent_instance(
        &self,
        session: i64,
        id: &str,
        instance: Option<&str>,
    ) -> StoreResult<()> {
        self.mutate(Op::AgentInstance {
            session,
            id: id.to_owned(),
            instance: instance.map(str::to_owned),
        })
    }

    fn set_agent_secret(&self, session: i64, id: &str, secret: &str) -> StoreResult<()> {
        self.mutate(Op::AgentSecret {
            session,
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    fn set_agent_position(&self, session: i64, id: &str, position: Option<i64>) -> StoreResult<()> {
        self.mutate(Op::AgentPosition {
            session,
            id: id.to_owned(),
            position,
        })
    }

    fn delete_agent(&self, session: i64, id: &str) -> StoreResult<()> {
        self.mutate(Op::DeleteAgent {
            session,
            id: id.to_owned(),
        })
    }

    fn delete_idempotency_through(&self, id: i64) -> StoreResult<()> {
        self.mutate(Op::ForgetIdempotencyThrough { id })
    }

    /// Local: each mirror keeps its own snapshot (one without replays the log).
    fn put_runtime_snapshot(&self, through: &str, state: &[u8]) -> StoreResult<()> {
        self.mirror.borrow().put_runtime_snapshot(through, state)
    }

    fn runtime_snapshot(&self) -> StoreResult<Option<(String, Vec<u8>)>> {
        self.mirror()?.runtime_snapshot()
    }
}

impl Receipts for Replicated {
    fn receipts_of(&self, session: i64, messages: &[String]) -> StoreResult<Vec<ReceiptRow>> {
        self.mirror()?.receipts_of(session, messages)
    }

    fn receipts_for(
        &self,
        session: i64,
        agent: &str,
        messages: &[String],
    ) -> StoreResult<Vec<ReceiptRow>> {
        self.mirror()?.receipts_for(session, agent, messages)
    }

    fn unread(
        &self,
        session: i64,
        agent: &str,
        below: i64,
        limit: usize,
    ) -> StoreResult<(Vec<UnreadRow>, u64)> {
        self.mirror()?.unread(session, agent, below, limit)
    }
}

/// Local: each mirror indexes what it holds.
impl Search for Replicated {
    fn index_search(&self, session: i64, max: u64) -> StoreResult<u64> {
        self.mirror()?.index_search(session, max)
    }

    fn search(&self, session: i64, q: &SearchQuery) -> StoreResult<Vec<StoredRecord>> {
        self.mirror()?.search(session, q)
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command, Stdio};

    use super::*;

    /// A `nats-server` with JetStream on a free loopback port, killed when dropped; `None`
    /// (saying so) where it is not installed.
    struct Server {
        child: Child,
        url: String,
        _dir: tempfile::TempDir,
    }

    impl Server {
        fn start() -> Option<Server> {
            let Ok(version) = Command::new("nats-server").arg("--version").output() else {
                eprintln!("skipped: nats-server is not installed (scripts/test installs Debian's)");
                return None;
            };
            eprintln!("{}", String::from_utf8_lossy(&version.stdout).trim());
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let dir = tempfile::tempdir().expect("a directory");
            let child = Command::new("nats-server")
                .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nats-server starts");
            let server = Server {
                child,
                url: format!("nats://127.0.0.1:{port}"),
                _dir: dir,
            };
            for _ in 0..200 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(server);
                }
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            panic!("nats-server did not listen on {}", server.url);
        }

        /// The log of one store: its subject named after `name`.
        fn log(&self, name: &str) -> LogConfig {
            LogConfig {
                urls: self.url.clone(),
                stream: "WEAVE_STORE".into(),
                subject: name
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect(),
                replicas: 1,
            }
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn open(dir: &Path, log: &LogConfig) -> Replicated {
        Replicated::open(
            &dir.join("mirror.db"),
            Durability::Normal,
            log,
            CancellationToken::new(),
        )
        .unwrap()
    }

    #[test]
    fn the_replicated_store_passes_the_backend_conformance_suite() {
        let Some(server) = Server::start() else {
            return;
        };
        crate::store::conformance::run(&|dir| {
            let log = server.log(&dir.display().to_string());
            Box::new(open(dir, &log))
        });
    }

    #[test]
    fn a_standby_on_another_mirror_holds_what_was_committed_and_a_stale_writer_is_fenced() {
        let Some(server) = Server::start() else {
            return;
        };
        let log = server.log("standby");
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut a = open(a_dir.path(), &log);
        a.insert_session(1, "s1", None, "t").unwrap();
        a.begin().unwrap();
        a.rows()
            .unwrap()
            .insert_event(1, 1, "t", "{\"n\":1}")
            .unwrap();
        a.commit().unwrap();
        a.begin().unwrap();
        a.rows()
            .unwrap()
            .insert_event(1, 2, "t", "{\"n\":2}")
            .unwrap();
        a.rollback();
        // A standby with an empty mirror: the session and record 1, not the rolled-back 2.
        let mut b = open(b_dir.path(), &log);
        assert_eq!(b.load().unwrap().sessions.len(), 1);
        let seqs = |s: &Replicated| -> Vec<u64> {
            s.records_after(1, 0, 10)
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect()
        };
        assert_eq!(seqs(&b), [1]);
        // b takes over and writes; a, which still believes it writes, is refused, and its
        // mirror keeps nothing of the refused transaction.
        b.begin().unwrap();
        b.rows()
            .unwrap()
            .insert_event(1, 2, "t", "{\"n\":2,\"by\":\"b\"}")
            .unwrap();
        b.commit().unwrap();
        a.begin().unwrap();
        a.rows()
            .unwrap()
            .insert_event(1, 2, "t", "{\"n\":2,\"by\":\"a\"}")
            .unwrap();
        let refused = a.commit().expect_err("a stale writer is fenced");
        assert!(refused.to_string().contains("fenced"), "{refused}");
        assert_eq!(seqs(&a), [1]);
        // a catches up: it holds b's record 2.
        a.catch_up().unwrap();
        let records = a.records_after(1, 0, 10).unwrap();
        assert_eq!(records.len(), 2);
        assert!(records[1].envelope.contains("\"by\":\"b\""));
    }

    #[test]
    fn a_transaction_past_the_message_size_goes_in_parts_and_a_torn_one_is_skipped() {
        let Some(server) = Server::start() else {
            return;
        };
        let log = server.log("parts");
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut a = open(a_dir.path(), &log);
        a.log.part_bytes = 256;
        a.insert_session(1, "s1", None, "t").unwrap();
        let big = format!("{{\"text\":\"{}\"}}", "x".repeat(5000));
        a.begin().unwrap();
        a.rows().unwrap().insert_event(1, 1, "t", &big).unwrap();
        a.commit().unwrap();
        // A writer that died after the first of two parts: never acknowledged, never applied.
        let torn = a
            .log
            .publish("dead:1", 1, 2, a.last.get(), b"[{\"op\":")
            .unwrap();
        a.last.set(torn);
        a.begin().unwrap();
        a.rows().unwrap().insert_event(1, 2, "t", "{}").unwrap();
        a.commit().unwrap();
        let b = open(b_dir.path(), &log);
        let records = b.records_after(1, 0, 10).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].envelope, big);
    }
}
