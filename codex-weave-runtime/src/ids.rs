//! The runtime's shared vocabulary of names: the shared id every map and queue holds, the hash
//! map they are kept in, and the key a ping-pong run is counted under. A leaf: it names no other
//! module, so the guard, the memory and the runtime can all use it.

use std::rc::Rc;

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

/// (chain, lower agent, higher agent): the pair a ping-pong run is counted for.
pub(crate) type PairKey = (Id, Id, Id);
