//! `session.list`, `session.create`, `session.get`, `session.close`.

use codex_weave_runtime::{Envelope, ErrorCode};
use codex_weave_transport_uds::time::now_rfc3339;
use serde_json::{json, Value};

use super::{bad, payload_bool, valid_name, Reply};
use crate::engine::state::Session;
use crate::engine::{new_id, Answer, Engine};
use crate::refusal::Refusal;

impl Engine {
    pub(super) fn session_list(&self, env: &Envelope) -> Reply {
        let include_closed = payload_bool(env, "include_closed")?;
        let mut sessions: Vec<&Session> = self
            .registry
            .sessions
            .values()
            .filter(|s| include_closed || !s.closed)
            .collect();
        sessions.sort_by_key(|s| s.key);
        let list: Vec<Value> = sessions.iter().map(|s| s.summary()).collect();
        Ok(Answer::payload(json!({ "sessions": list })))
    }

    pub(super) fn session_create(&mut self, env: &Envelope) -> Reply {
        let name = match env.payload.as_ref().and_then(|p| p.get("name")) {
            None | Some(Value::Null) => None,
            Some(Value::String(n)) => Some(valid_name(n)?),
            Some(_) => return Err(bad("`payload.name` must be a string")),
        };
        let open = self
            .registry
            .sessions
            .values()
            .filter(|s| !s.closed)
            .count();
        if open >= self.cfg.limits.max_sessions {
            return Err(Refusal::new(
                ErrorCode::LimitReached,
                format!("{open} sessions are open, the limit (max_sessions)"),
            ));
        }
        let id = new_id();
        let created_at = now_rfc3339();
        let key = self.registry.new_key();
        let (w_id, w_name, w_at) = (id.clone(), name.clone(), created_at.clone());
        self.write(move |s| s.insert_session(key, &w_id, w_name.as_deref(), &w_at));
        self.registry.insert(Session {
            key,
            id: id.clone(),
            name: name.clone(),
            created_at,
            closed: false,
            last_seq: 0,
            first_seq: 1,
            agents: Default::default(),
            names: Default::default(),
            watchers: Vec::new(),
            unindexed: false,
        });
        self.record_event(
            &id,
            "session.created",
            json!({ "id": id, "name": name, "by": env.src }),
        );
        let mut answer = Answer::payload(self.registry.sessions[&id].summary());
        answer.session = Some(id);
        Ok(answer)
    }

    pub(super) fn session_get(&self, env: &Envelope) -> Reply {
        let sid = self.known_session(env)?;
        let session = &self.registry.sessions[&sid];
        let mut agents: Vec<_> = session.agents.values().collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        let agents: Vec<Value> = agents
            .iter()
            .map(|a| a.summary(self.inboxes.counts(&sid, &a.id)))
            .collect();
        Ok(Answer::payload(
            json!({ "session": session.summary(), "agents": agents }),
        ))
    }

    pub(super) fn session_close(&mut self, env: &Envelope) -> Reply {
        let sid = self.open_session(env)?;
        let at = now_rfc3339();
        let key = self.registry.sessions[&sid].key;
        let w_at = at.clone();
        self.write(move |s| s.close_session(key, &w_at));
        if let Some(s) = self.registry.sessions.get_mut(&sid) {
            s.closed = true;
        }
        let (_, record) =
            self.record_event(&sid, "session.closed", json!({ "id": sid, "by": env.src }));
        // Its connected agents hear it now: nothing more can be sent in it.
        self.tell_connected(&sid, None, &record.envelope());
        Ok(Answer::payload(self.registry.sessions[&sid].summary()))
    }
}
