//! The engine's memory of sessions, their agents and connections (pending deliveries are in
//! [`super::inboxes`]). The store holds the same facts durably; this is what requests are
//! decided against.

use crate::conn::ConnId;

/// The engine's hash map: foldhash (fast, seeded per process) instead of SipHash, which showed
/// up at 5% of the engine's time hashing ids.
pub type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug)]
pub struct Session {
    /// The store's integer key for this session.
    pub key: i64,
    pub id: String,
    pub name: Option<String>,
    pub created_at: String,
    pub closed: bool,
    /// Sequence number of the last record written.
    pub last_seq: u64,
    /// Sequence number of the oldest record still kept (older ones were pruned).
    pub first_seq: u64,
    pub agents: Map<String, Agent>,
    /// Lower-cased name → agent id; names are unique per session, case-insensitively.
    pub names: Map<String, String>,
    /// Connections following this session's records (`events.stream`).
    pub watchers: Vec<Watcher>,
    /// Records were written that the search index has not taken in yet (it catches up when
    /// the bus is quiet, and before every search).
    pub unindexed: bool,
}

/// A connection following a session's records (`events.stream`); see `engine/followers.rs`.
#[derive(Debug, Clone)]
pub struct Watcher {
    pub conn: ConnId,
    /// The stream request's id (`corr` of its lines).
    pub corr: String,
    /// `None`: live, sent each record as it is written. `Some(seq)`: it has been sent the
    /// records through `seq` and takes the rest from the log as its connection drains.
    pub behind: Option<u64>,
    /// A stream without `follow`: it ends (with its `ok`) once sent the records through this.
    pub until: Option<u64>,
    /// The `since` it asked for (echoed in its final `ok`).
    pub since: u64,
}

impl Session {
    /// Resolves an agent by id, else by name (case-insensitive).
    pub fn resolve(&self, id_or_name: &str) -> Option<&str> {
        if let Some(a) = self.agents.get(id_or_name) {
            return Some(&a.id);
        }
        self.names
            .get(&id_or_name.to_lowercase())
            .map(String::as_str)
    }

    pub fn summary(&self) -> serde_json::Value {
        let online = self.agents.values().filter(|a| a.conn.is_some()).count();
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "status": if self.closed { "closed" } else { "open" },
            "created_at": self.created_at,
            "agent_count": self.agents.len(),
            "online_count": online,
            "last_seq": self.last_seq,
            "first_seq": self.first_seq,
        })
    }
}

#[derive(Debug)]
pub struct Agent {
    pub id: String,
    pub name: Option<String>,
    /// `agent` (terminal), `human` (browser) or `sdk`.
    pub kind: String,
    /// Place in the operator\'s order (`None`: after the ordered ones).
    pub position: Option<i64>,
    /// The connection that added the agent, while it is connected.
    pub conn: Option<ConnId>,
    /// What the agent said it is doing (`agent.activity`): busy with what, or idle. Reset to
    /// idle when its connection goes.
    pub busy: Option<String>,
    /// The client's instance key (`agent.add` `payload.instance`): the same agent, should it
    /// come back under a new id.
    pub instance: Option<String>,
    /// The proof that lets a connection take the agent over while another one holds it
    /// (returned by the `agent.add` that registered it).
    pub secret: Option<String>,
}

impl Agent {
    pub fn new(id: String, name: Option<String>, kind: String) -> Self {
        Self {
            id,
            name,
            kind,
            position: None,
            conn: None,
            busy: None,
            instance: None,
            secret: None,
        }
    }

    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    /// The agent as listings show it, with its (queued, unacked) deliveries.
    pub fn summary(&self, (queued, unacked): (usize, usize)) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "status": if self.conn.is_some() { "online" } else { "offline" },
            "queued": queued,
            "unacked": unacked,
            "activity": if self.busy.is_some() { "busy" } else { "idle" },
            "doing": self.busy,
        })
    }
}

/// Who a connection speaks for.
#[derive(Debug)]
pub struct Conn {
    pub out: crate::conn::ConnOut,
    /// (session id, agent id) of agents this connection added.
    pub agents: Vec<(String, String)>,
    /// Sessions this connection follows with `events.stream`.
    pub watching: Vec<String>,
    /// The HTTP facade acting for the operator: may rename or remove any agent.
    pub operator: bool,
}
