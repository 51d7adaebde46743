//! The SQLite store's connection: opening (file mode, pragmas, migrations) and checkpoints. Written through this one connection only — by the store's writer thread, or by
//! the engine itself for a small batch while the writer is idle (`engine/writer.rs`).

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::message_index::{MessageIndex, LAG_LIMIT};
use super::migrations;
use crate::config::Durability;
use crate::store::backend::{StoreResult, StoredRecord};

/// How large the write-ahead log may grow under sustained writes before the writer folds the
/// rest of it into the database itself, so that the next transaction starts it over; and the
/// size it is truncated to when it starts over. Checkpoints in the background (every 500 ms,
/// never blocking the writer) do the bulk of the folding; but while commits keep coming they
/// never catch up with the last frame, and SQLite only starts a log over that is wholly folded:
/// without this, 100,000 messages of 1 KB left a 440 MB log behind. A fold stalls the writer
/// for 10–150 ms on this project's VM (copying what the background has not copied yet, and
/// syncing the database file): at 64 MiB the folds cost 20% of the acked throughput, at 256 MiB
/// nothing measurable (docs/weave/benchmarks.md).
pub const WAL_LIMIT_BYTES: u64 = 256 * 1024 * 1024;

thread_local! {
    /// Pages in the write-ahead log after the last commit on this thread (SQLite's WAL hook runs
    /// on the committing thread, right after the commit).
    static WAL_PAGES: Cell<u64> = const { Cell::new(0) };
}

fn note_wal_pages(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.set(pages.max(0) as u64);
    Ok(())
}

pub struct Store {
    pub(super) conn: Connection,
    pub(super) in_txn: bool,
    /// [`WAL_LIMIT_BYTES`] in pages.
    wal_limit_pages: u64,
    /// Which records carried a message, for the ids not in `message_seqs` yet.
    pub(super) messages: RefCell<MessageIndex>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating and migrating) the store at `path`.
    pub fn open(path: &Path, durability: Durability) -> StoreResult<Store> {
        // Create the file private to the user; SQLite gives its -wal and -shm files the same mode.
        {
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path);
        }
        let conn = Connection::open(path)?;
        let sync = match durability {
            Durability::Normal => "NORMAL",
            Durability::Fsync => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous={sync};
             PRAGMA wal_autocheckpoint=0;
             PRAGMA journal_size_limit={WAL_LIMIT_BYTES};
             PRAGMA foreign_keys=OFF;
             PRAGMA temp_store=MEMORY;
             PRAGMA cache_size=-16384;"
        ))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        migrations::run(&conn)?;
        migrations::ensure_search_index(&conn)?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.wal_hook(Some(note_wal_pages));
        let page: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let messages = RefCell::new(MessageIndex::load(&conn, LAG_LIMIT)?);
        Ok(Store {
            conn,
            in_txn: false,
            wal_limit_pages: WAL_LIMIT_BYTES / page.max(512),
            messages,
        })
    }

    /// After a rollback: the message ids that wait are read back from what was committed.
    pub(super) fn reload_message_index(&self) {
        let limit = self.messages.borrow().limit;
        match MessageIndex::load(&self.conn, limit) {
            Ok(index) => *self.messages.borrow_mut() = index,
            Err(e) => tracing::error!(error = %e, "message index not reloaded after a rollback"),
        }
    }

    /// After a commit: a log past [`WAL_LIMIT_BYTES`] is folded to its end here (no other
    /// writer exists, so this completes unless a background checkpoint runs at that moment;
    /// then the next commit tries again), and the next transaction starts it over.
    pub(super) fn fold_wal_if_over(&self) {
        if WAL_PAGES.get() <= self.wal_limit_pages {
            return;
        }
        match passive_checkpoint(&self.conn) {
            Ok((false, log, folded)) if log == folded => WAL_PAGES.set(0),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "checkpoint after commit skipped"),
        }
    }
}

/// Runs passive WAL checkpoints on a connection of its own every `every`, until `stop` is set.
/// Passive checkpoints never block the writer.
pub fn spawn_checkpointer(
    path: &Path,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let path = path.to_owned();
    std::thread::Builder::new()
        .name("weave-checkpoint".into())
        .spawn(move || {
            let Ok(conn) = Connection::open(&path) else {
                return;
            };
            let _ = conn.busy_timeout(Duration::from_millis(100));
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(every);
                if let Err(e) = passive_checkpoint(&conn) {
                    tracing::debug!(error = %e, "checkpoint skipped");
                }
            }
        })
}

/// `PRAGMA wal_checkpoint(PASSIVE)`: (busy, frames in the log, frames folded).
fn passive_checkpoint(conn: &Connection) -> rusqlite::Result<(bool, u64, u64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)? != 0,
            r.get::<_, i64>(1)?.max(0) as u64,
            r.get::<_, i64>(2)?.max(0) as u64,
        ))
    })
}

pub(super) fn record_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRecord> {
    Ok(StoredRecord {
        seq: r.get::<_, i64>(0)? as u64,
        ts: r.get(1)?,
        envelope: r.get(2)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::prelude::*;

    /// Commits that never pause (no background checkpointer at all here) keep the log within
    /// its limit: past it, the writer folds the log after a commit and the next one starts it
    /// over, truncated to the limit.
    #[test]
    fn the_write_ahead_log_stays_bounded_under_commits_that_never_pause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut store = Store::open(&path, Durability::Normal).unwrap();
        store
            .insert_session(1, "s", None, "2026-01-01T00:00:00Z")
            .unwrap();
        let text = format!(
            r#"{{"v":1,"type":"message.send","payload":"{}"}}"#,
            "x".repeat(8000)
        );
        let (mut seq, mut largest) = (0, 0);
        // Twice the limit, 256 records of 8 KB per commit.
        for _ in 0..(2 * WAL_LIMIT_BYTES / (256 * 8000)) {
            store.begin().unwrap();
            {
                let mut rows = store.rows().unwrap();
                for _ in 0..256 {
                    seq += 1;
                    rows.insert_event(1, seq, "2026-01-01T00:00:00Z", &text)
                        .unwrap();
                }
            }
            store.commit().unwrap();
            let wal = std::fs::metadata(path.with_extension("db-wal"))
                .unwrap()
                .len();
            largest = largest.max(wal);
        }
        // The limit, plus the commit that crossed it (2 MB of records and their index pages).
        assert!(
            largest < WAL_LIMIT_BYTES + 8 * 1024 * 1024,
            "the log reached {largest} bytes"
        );
        assert_eq!(
            store.records_after(1, 0, usize::MAX).unwrap().len() as u64,
            seq
        );
    }
}
