//! Waiting with a bound: a test polls for the state it expects until a deadline, and fails
//! saying what never happened. No test sleeps to "let things settle".

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// A point in time a wait must not pass.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(Instant);

impl Deadline {
    /// [`crate::WAIT`] from now.
    pub fn new() -> Deadline {
        Deadline::after(crate::WAIT)
    }

    pub fn after(within: Duration) -> Deadline {
        Deadline(Instant::now() + within)
    }

    pub fn passed(&self) -> bool {
        Instant::now() >= self.0
    }

    /// Panics with `what` once the deadline has passed; else waits one polling step.
    pub async fn tick(&self, what: &str) {
        assert!(!self.passed(), "{what}: not within the deadline");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl Default for Deadline {
    fn default() -> Self {
        Deadline::new()
    }
}

/// Polls `check` until it returns `Some`, within [`crate::WAIT`]; panics with `what` if it
/// never does.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Deadline::new();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        deadline.tick(what).await;
    }
}
