//! One session's state, and where a session's state is found.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use hashbrown::hash_map::Entry;

use crate::guard::Guard;
use crate::ids::{Id, Map};
use crate::memory::Fresh;
use crate::model::{Conversation, Relay};

/// One session's state. Conversations, message nodes (guard and reference), pair runs, and relays
/// are remembered within the runtime's memory budget (see [`crate::memory`]): a follow-up in a
/// forgotten conversation starts a new one; a reply to a forgotten action is a plain reply.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Session {
    /// Where the runtime's memory queue finds this session (`Runtime::slots`).
    pub slot: u32,
    pub conversations: Map<Id, Conversation>,
    /// Ordered by id: whatever walks the relays (an agent leaving) does so in one order,
    /// so a replay gives the same outputs as the live run.
    pub relays: BTreeMap<String, Relay>,
    pub guard: Guard,
    /// The conversation an agent answers into when its reply names none.
    pub pending_reply: Map<Id, Id>,
    /// Agents that are people (kind `human`): their messages never count toward the loop
    /// guard, and each starts a fresh chain for the agents it answers.
    #[serde(default)]
    pub persons: std::collections::BTreeSet<String>,
    /// One shared [`Id`] per agent id seen (rebuilt as agents are seen again after a restart).
    #[serde(skip)]
    pub agents: hashbrown::HashSet<Id, foldhash::fast::RandomState>,
    /// What this input made the session remember, for the runtime's memory queue (always empty
    /// between two inputs).
    #[serde(skip)]
    pub fresh: Vec<Fresh>,
}

impl Session {
    /// The shared id of agent `agent`.
    pub(crate) fn intern(&mut self, agent: &str) -> Id {
        if let Some(id) = self.agents.get(agent) {
            return id.clone();
        }
        let id: Id = agent.into();
        self.agents.insert(id.clone());
        id
    }

    pub(crate) fn add_conversation(&mut self, conv: Conversation) {
        let id = conv.context_id.clone();
        if self.conversations.insert(id.clone(), conv).is_none() {
            self.fresh.push(Fresh::Conversation(id));
        }
    }

    pub(crate) fn add_relay(&mut self, relay: Relay) {
        let id = relay.relay_id.clone();
        if self.relays.insert(id.clone(), relay).is_none() {
            self.fresh.push(Fresh::Relay(id));
        }
    }

    /// Forgets one remembered thing; `false` when it is still in use (an active relay or its
    /// conversation) and must stay.
    pub(super) fn forget(&mut self, what: &Fresh) -> bool {
        let active = |relays: &BTreeMap<String, Relay>, id: Option<&str>| {
            id.is_some_and(|r| relays.get(r).is_some_and(Relay::is_active))
        };
        match what {
            Fresh::Conversation(id) => {
                // One lookup: the entry is kept, or removed, where it was found.
                if let Entry::Occupied(found) = self.conversations.entry(id.clone()) {
                    if active(&self.relays, found.get().relay_id.as_deref()) {
                        return false;
                    }
                    found.remove();
                }
            }
            Fresh::Relay(id) => {
                if active(&self.relays, Some(id.as_str())) {
                    return false;
                }
                self.relays.remove(id);
            }
            Fresh::Node(id) => self.guard.forget_node(id),
            Fresh::Run(key, number) => self.guard.forget_run(key, *number),
        }
        true
    }
}

/// The state of session `name`, created (with the next slot) on first use.
pub(crate) fn open<'a>(
    sessions: &'a mut Map<String, Session>,
    slots: &mut Vec<String>,
    name: &str,
) -> &'a mut Session {
    sessions.entry_ref(name).or_insert_with(|| {
        slots.push(name.to_owned());
        Session {
            slot: (slots.len() - 1) as u32,
            ..Session::default()
        }
    })
}
