//! The SQLite backend: one file under the home in WAL mode, written through one connection.
//! Each batch of requests is one transaction, committed once (group commit); nothing is
//! answered before that commit. Checkpoints run on their own thread and connection so they
//! never sit on the request path. The schema is created by numbered migrations.

mod db;
mod log;
mod message_index;
mod migrations;
mod receipts;
mod rows;
mod search;
mod state;
mod transactions;

pub use db::{spawn_checkpointer, Store};
pub use search::match_expression;
