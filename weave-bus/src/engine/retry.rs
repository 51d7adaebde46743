//! After a failed commit: agents whose deliveries wait, with a doubling back-off (sending them
//! sooner would fail every batch, reads included, while the store cannot write). Given the time,
//! reads no clock.

use std::time::{Duration, Instant};

/// The first wait after a failed commit, doubling up to [`MAX`] while the store keeps failing.
const MIN: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(2);

pub struct StoreRetry {
    held: Vec<(String, String)>,
    at: Option<Instant>,
    backoff: Duration,
}

impl Default for StoreRetry {
    fn default() -> Self {
        StoreRetry {
            held: Vec::new(),
            at: None,
            backoff: MIN,
        }
    }
}

impl StoreRetry {
    /// Holds these agents' deliveries until the next retry, which backs off further.
    pub fn hold(&mut self, agents: impl IntoIterator<Item = (String, String)>, now: Instant) {
        self.held.extend(agents);
        self.held.sort();
        self.held.dedup();
        self.at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX);
    }

    /// How long until the retry is due, if one is.
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        self.at.map(|at| at.saturating_duration_since(now))
    }

    /// The held agents, once the retry is due.
    pub fn take_due(&mut self, now: Instant) -> Vec<(String, String)> {
        if self.at.is_some_and(|at| at <= now) {
            self.at = None;
            return std::mem::take(&mut self.held);
        }
        Vec::new()
    }

    /// A commit succeeded: the next failure waits the shortest time again.
    pub fn reset(&mut self) {
        self.backoff = MIN;
    }
}
