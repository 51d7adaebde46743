//! What the runtime remembers beyond live state — conversations, message and action nodes,
//! loop-guard nodes and pair runs, relays — bounded for all sessions together. Each new entry
//! joins one queue, oldest first; past the budget the oldest is forgotten wherever it lives
//! (an entry still in use, such as the conversation of an active relay, goes to the back
//! instead). So the runtime's memory is flat however many sessions there are and however long
//! the daemon runs.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

use crate::ids::{Id, PairKey};

/// Entries remembered across all sessions by default (about 3 per message: its node, a pair
/// run, often a conversation).
pub const DEFAULT_MEMORY_BUDGET: usize = 75_000;

/// One remembered thing of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Fresh {
    Conversation(Id),
    /// A message's guard node, which is also what replies and results naming it refer to.
    Node(Id),
    /// A pair run and the number of the update that set it (a later update supersedes it).
    Run(PairKey, u64),
    Relay(String),
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The session's slot (see `Runtime::slots`).
    pub session: u32,
    pub what: Fresh,
}

/// The queue of everything remembered, oldest first.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Memory {
    pub queue: VecDeque<Entry>,
}

impl Memory {
    pub fn len(&self) -> usize {
        self.queue.len()
    }
}
