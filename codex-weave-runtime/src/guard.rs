//! The loop guard: every message belongs to a causal chain; chains are bounded by hop count and
//! by the length of a strict ping-pong between two agents. Deterministic — no timers.
//!
//! A message's parent is, in order: the message it names (`parent_message_id`, or the action
//! behind `reply_to_action_id`) if that is in the same conversation; else the newest new-work
//! message delivered to the sender that it has not answered yet (the first thing an agent sends
//! after receiving work answers it); else, for a follow-up in an existing conversation, the
//! newest message of that conversation delivered to the sender. No parent: a new chain, hop 1.

use serde::{Deserialize, Serialize};

use crate::ids::{Id, Map, PairKey};
use crate::memory::Fresh;

/// Which rule stopped a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    MaxHops,
    PingPong,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::MaxHops => "max_hops",
            Rule::PingPong => "ping_pong",
        }
    }
}

/// An admitted message (or relay action) as remembered: its place in a chain, and what a reply
/// or result naming it refers to (its conversation, relay and first target). One entry per
/// message keeps the runtime's memory and its evictions to one map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub chain: Id,
    pub hop: u32,
    pub from: Id,
    pub conversation: Option<Id>,
    pub relay_id: Option<Id>,
    pub target: Option<Id>,
}

/// What the guard decided for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The chain joined; `None`: a new chain named after the message itself.
    pub chain: Option<Id>,
    pub hop: u32,
    /// Length of the strict alternation this message extends (new work only).
    pub run: u32,
    pub stop: Option<Rule>,
}

impl Verdict {
    /// The chain's id: the one joined, or `id` (the message's own) for a new chain.
    pub fn chain_id<'a>(&'a self, id: &'a str) -> &'a str {
        self.chain.as_deref().unwrap_or(id)
    }
}

/// A message as the guard sees it.
#[derive(Debug, Clone)]
pub struct Probe<'a> {
    pub id: &'a str,
    pub from: &'a str,
    pub to: &'a [String],
    pub new_work: bool,
    pub conversation: Option<&'a str>,
    /// The conversation existed before this message (a follow-up).
    pub follow_up: bool,
    pub explicit_parent: Option<&'a str>,
    /// The sender is a person: a new chain, never a ping-pong run.
    pub person: bool,
}

/// An admitted message, with its ids shared (see [`crate::ids::Id`]).
pub(crate) struct Admitted<'a> {
    pub id: &'a Id,
    pub from: &'a Id,
    pub to: &'a [Id],
    pub new_work: bool,
    /// The sender is a person (see [`Probe::person`]).
    pub person: bool,
    pub conversation: Option<&'a Id>,
    pub relay_id: Option<Id>,
}

/// A [`PairKey`] borrowed: hashes as the tuple does (field by field, in order).
#[derive(Hash)]
struct PairRef<'a>(&'a str, &'a str, &'a str);

impl hashbrown::Equivalent<PairKey> for PairRef<'_> {
    fn equivalent(&self, key: &PairKey) -> bool {
        (self.0, self.1, self.2) == (&*key.0, &*key.1, &*key.2)
    }
}

/// The guard of one session. What it remembers (nodes, pair runs) is bounded by the runtime's
/// memory budget: a forgotten parent starts a new chain, a forgotten run starts again at one.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Guard {
    nodes: Map<Id, Node>,
    /// Newest unanswered new-work message delivered to each agent.
    unanswered: Map<Id, Id>,
    /// Pair → (who sent the last new work, run length, the number of the update that set it).
    #[serde(with = "crate::pairs")]
    runs: Map<PairKey, (Id, u32, u64)>,
    run_updates: u64,
}

impl Guard {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id)
    }

    /// The newest new-work message delivered to `agent` that it has not answered yet.
    pub fn unanswered_by(&self, agent: &str) -> Option<&str> {
        self.unanswered.get(agent).map(|id| &**id)
    }

    /// Decides without changing anything.
    pub fn evaluate(
        &self,
        probe: &Probe<'_>,
        conversation_tip: Option<&str>,
        max_hops: u32,
        max_ping_pong: u32,
    ) -> Verdict {
        if probe.person {
            // A person's word starts a fresh budget for the agents it answers.
            return Verdict {
                chain: None,
                hop: 1,
                run: 0,
                stop: None,
            };
        }
        let explicit = probe.explicit_parent.filter(|p| {
            self.nodes
                .get(*p)
                .is_some_and(|n| n.conversation.as_deref() == probe.conversation)
        });
        let parent = explicit
            .or_else(|| self.unanswered.get(probe.from).map(|p| &**p))
            .or(if probe.follow_up {
                conversation_tip
            } else {
                None
            })
            .filter(|p| self.nodes.contains_key(*p));
        let (chain, hop) = match parent.and_then(|p| self.nodes.get(p)) {
            Some(n) => (Some(n.chain.clone()), n.hop + 1),
            None => (None, 1),
        };
        let mut run = 0;
        if probe.new_work {
            let chain_id = chain.as_deref().unwrap_or(probe.id);
            // A message to oneself is not a ping-pong between two agents.
            for to in probe.to.iter().filter(|t| *t != probe.from) {
                let r = match self.run(chain_id, probe.from, to) {
                    Some((last_from, r, _)) if **last_from == **to => r + 1,
                    _ => 1,
                };
                run = run.max(r);
            }
        }
        let stop = if hop > max_hops {
            Some(Rule::MaxHops)
        } else if probe.new_work && run >= max_ping_pong {
            Some(Rule::PingPong)
        } else {
            None
        };
        Verdict {
            chain,
            hop,
            run,
            stop,
        }
    }

    /// The run of the pair `a`, `b` in `chain`, looked up without building its key.
    fn run(&self, chain: &str, a: &str, b: &str) -> Option<&(Id, u32, u64)> {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        self.runs.get(&PairRef(chain, lo, hi))
    }

    /// Records an admitted message; what it now remembers goes to `fresh`.
    pub(crate) fn commit(&mut self, m: &Admitted<'_>, verdict: &Verdict, fresh: &mut Vec<Fresh>) {
        // The first thing an agent sends after receiving work answers it.
        self.unanswered.remove(&**m.from);
        let chain = verdict.chain.as_ref().unwrap_or(m.id);
        if m.new_work {
            for to in m.to.iter().filter(|t| *t != m.from) {
                self.unanswered.insert(to.clone(), m.id.clone());
                if m.person {
                    continue;
                }
                let (lo, hi) = if m.from <= to {
                    (m.from, to)
                } else {
                    (to, m.from)
                };
                self.run_updates += 1;
                let key: PairKey = (chain.clone(), lo.clone(), hi.clone());
                fresh.push(Fresh::Run(key.clone(), self.run_updates));
                // One lookup: the run is read and set through its entry.
                let set = (m.from.clone(), 1, self.run_updates);
                match self.runs.entry(key) {
                    hashbrown::hash_map::Entry::Occupied(mut e) => {
                        let run = match e.get() {
                            (last_from, r, _) if last_from == to => r + 1,
                            _ => 1,
                        };
                        e.insert((set.0, run, set.2));
                    }
                    hashbrown::hash_map::Entry::Vacant(e) => {
                        e.insert(set);
                    }
                }
            }
        }
        let node = Node {
            chain: chain.clone(),
            hop: verdict.hop,
            from: m.from.clone(),
            conversation: m.conversation.cloned(),
            relay_id: m.relay_id.clone(),
            target: m.to.first().cloned(),
        };
        if self.nodes.insert(m.id.clone(), node).is_none() {
            fresh.push(Fresh::Node(m.id.clone()));
        }
    }

    pub(crate) fn forget_node(&mut self, id: &Id) {
        self.nodes.remove(id);
    }

    /// Forgets a pair run unless a later update set it again.
    pub(crate) fn forget_run(&mut self, key: &PairKey, number: u64) {
        if let hashbrown::hash_map::Entry::Occupied(run) = self.runs.entry(key.clone()) {
            if run.get().2 == number {
                run.remove();
            }
        }
    }

    /// How many pair runs are remembered.
    pub fn run_count(&self) -> usize {
        self.runs.len()
    }

    /// How many message nodes are remembered.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Forgets an agent that left (it answers nothing any more).
    pub fn forget_agent(&mut self, agent: &str) {
        self.unanswered.remove(agent);
    }
}
