//! Logs and console lines that can never hurt the process that writes them.
//!
//! A daemon's stdout and stderr are often pipes to something that goes away (`weaved 2>&1 |
//! head -1`) or stops reading. Rust's `println!`/`eprintln!` panic on a closed pipe, and a plain
//! `write` to a full pipe blocks the thread that logs — here, the engine. So:
//! - log lines go through a bounded queue to a writer thread ([`init_logs`]); when the queue is
//!   full, lines are dropped (counted by `tracing-appender`), never waited for;
//! - that thread, and the console lines ([`say`], [`complain`], from the socket transport that
//!   every client shares), ignore every write error.
//!
//! Nothing the daemon does, shutdown included, depends on a log line being written.

use std::io::Write;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};

/// Log lines held for the writer thread before new ones are dropped.
pub const LOG_QUEUE_LINES: usize = 16 * 1024;

/// Installs the global subscriber: `RUST_LOG` (else `default_filter`) to stderr, lossy and
/// non-blocking. Keep the guard until the end of `main`: dropping it flushes what is queued
/// (waiting at most about a second for a stuck reader).
pub fn init_logs(default_filter: &str) -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("weave-log")
        .finish(Quiet(std::io::stderr()));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .init();
    guard
}

pub use codex_weave_transport_uds::console::{complain, say};

/// A writer that reports success whatever happens underneath: a log line that cannot be
/// written is lost, and nothing else happens.
struct Quiet<W>(W);

impl<W: Write> Write for Quiet<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn a_broken_writer_is_reported_as_written() {
        let mut w = Quiet(Broken);
        assert_eq!(w.write(b"line\n").unwrap(), 5);
        w.flush().unwrap();
    }
}
