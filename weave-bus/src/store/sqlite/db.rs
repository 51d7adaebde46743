//! The SQLite store's connection: opening (file mode, pragmas, migrations) and checkpoints. Written through this one connection only — by the store's writer thread, or by
//! the engine itself for a small batch while the writer is idle (`engine/writer.rs`).

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::migrations;
use crate::config::Durability;
use crate::store::backend::{StoreResult, StoredRecord};

pub struct Store {
    pub(super) conn: Connection,
    pub(super) in_txn: bool,
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
             PRAGMA foreign_keys=OFF;
             PRAGMA temp_store=MEMORY;
             PRAGMA cache_size=-16384;"
        ))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        migrations::run(&conn)?;
        migrations::ensure_search_index(&conn)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Store {
            conn,
            in_txn: false,
        })
    }
}

pub(super) fn record_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRecord> {
    Ok(StoredRecord {
        seq: r.get::<_, i64>(0)? as u64,
        ts: r.get(1)?,
        envelope: r.get(2)?,
    })
}

/// Runs passive WAL checkpoints on its own connection every `every`, until `stop` is set.
/// Passive checkpoints never block the writer.
pub fn spawn_checkpointer(
    path: &Path,
    every: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let path = path.to_owned();
    std::thread::Builder::new()
        .name("weave-checkpoint".into())
        .spawn(move || {
            let Ok(conn) = Connection::open(&path) else {
                return;
            };
            let _ = conn.busy_timeout(Duration::from_millis(100));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(every);
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "checkpoint skipped");
                }
            }
        })
}
