//! Transactions on the SQLite store: one batch, one `BEGIN` … `COMMIT`.

use super::db::Store;
use super::rows::Rows;
use crate::store::backend::{RowWriter, StoreResult, Transactions};

impl Transactions for Store {
    fn begin(&mut self) -> StoreResult<()> {
        if !self.in_txn {
            self.conn.execute_batch("BEGIN")?;
            self.in_txn = true;
        }
        Ok(())
    }

    fn commit(&mut self) -> StoreResult<()> {
        if self.in_txn {
            self.in_txn = false;
            let written = if self.messages.borrow().due() {
                self.messages.borrow_mut().write(&self.conn)
            } else {
                Ok(())
            };
            if let Err(e) = written.and_then(|()| self.conn.execute_batch("COMMIT")) {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.reload_message_index();
                return Err(e.into());
            }
            self.fold_wal_if_over();
        }
        Ok(())
    }

    fn rollback(&mut self) {
        if self.in_txn {
            self.in_txn = false;
            let _ = self.conn.execute_batch("ROLLBACK");
            self.reload_message_index();
        }
    }

    /// Folds the write-ahead log into the database file and truncates it (at shutdown).
    fn checkpoint(&self) -> StoreResult<()> {
        Ok(self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?)
    }

    fn rows(&self) -> StoreResult<Box<dyn RowWriter + '_>> {
        Ok(Box::new(Rows::prepare(&self.conn, &self.messages)?))
    }
}
