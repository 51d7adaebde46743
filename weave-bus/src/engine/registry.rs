//! Sessions and agents (registry, presence) and the connections that hold them: what requests
//! are decided against. The store holds the same facts durably.

use super::state::{Conn, Map, Session};
use crate::conn::ConnId;

#[derive(Default)]
pub struct Registry {
    pub sessions: Map<String, Session>,
    /// Store key → session id.
    session_ids: Map<i64, String>,
    pub conns: Map<ConnId, Conn>,
    /// Connections following every session's summary (`sessions.stream`): (conn, request id).
    pub session_watchers: Vec<(ConnId, String)>,
    /// The key the next new session gets: numbered here, not by the store, because the store
    /// writes behind.
    next_session_key: i64,
}

impl Registry {
    /// Adds a session (new or loaded); keys of new sessions continue past it.
    pub fn insert(&mut self, session: Session) {
        self.next_session_key = self.next_session_key.max(session.key + 1);
        self.session_ids.insert(session.key, session.id.clone());
        self.sessions.insert(session.id.clone(), session);
    }

    /// The key for a new session.
    pub fn new_key(&mut self) -> i64 {
        let key = self.next_session_key.max(1);
        self.next_session_key = key + 1;
        key
    }

    /// The id of the session stored under `key`.
    pub fn id_of(&self, key: i64) -> Option<&str> {
        self.session_ids.get(&key).map(String::as_str)
    }

    /// The session stored under `key`.
    pub fn by_key_mut(&mut self, key: i64) -> Option<&mut Session> {
        let id = self.session_ids.get(&key)?;
        self.sessions.get_mut(id)
    }

    /// Forgets every session (before a reload from the store); connections stay.
    pub fn clear_sessions(&mut self) {
        self.sessions.clear();
        self.session_ids.clear();
        self.next_session_key = 1;
    }
}
