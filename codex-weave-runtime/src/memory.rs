//! What the runtime remembers beyond live state — conversations, message and action nodes,
//! loop-guard nodes and pair runs, relays — bounded for all sessions together. Each new entry
//! joins one queue, oldest first; past the budget the oldest is forgotten wherever it lives
//! (an entry still in use, such as the conversation of an active relay, goes to the back
//! instead). So the runtime's memory is flat however many sessions there are and however long
//! the daemon runs.

use std::collections::VecDeque;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::guard::PairKey;

/// The runtime's internal hash map: foldhash, seeded per process, instead of SipHash (whose
/// hashing showed in the engine's profile). Iteration order is never relied upon. hashbrown's
/// own map for [`hashbrown::Equivalent`]: a pair run is looked up by borrowed strings.
pub(crate) type Map<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;

/// A message, action, conversation or agent id as the runtime remembers it: one allocation
/// shared by every map and queue entry that names it. A message is remembered in three places
/// (its node, its pair run, often its conversation); with owned strings that was some twenty
/// allocations per message, each freed cold when the budget let it go, which dominated the
/// runtime's time under load. Counted without atomics (`Rc`, not `Arc`): a runtime lives on
/// one thread (the bus builds and runs it on its engine thread), and the atomic increments and
/// decrements, some forty per message, cost a sixth of its time.
pub type Id = Rc<str>;

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
