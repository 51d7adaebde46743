//! The runtime's limits: the loop guard's, the relay scheduler's and its memory budget.

/// Limits of the loop guard and the relay scheduler.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// A message at hop `max_hops + 1` of its causal chain is stopped.
    pub max_hops: u32,
    /// The new-work message completing this many strict alternations between two agents in
    /// one chain is stopped.
    pub max_ping_pong: u32,
    /// Suggested wait before retrying a blocked relay.
    pub blocked_retry_ms: u64,
    /// Conversations, message nodes (guard and reference), pair runs, and relays remembered across
    /// all sessions; past it the oldest are forgotten (see [`crate::memory`]).
    pub memory_budget: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_hops: 16,
            max_ping_pong: 6,
            blocked_retry_ms: 2_000,
            memory_budget: crate::memory::DEFAULT_MEMORY_BUDGET,
        }
    }
}
