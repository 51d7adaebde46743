//! `agent.update`, `agent.activity`, `agent.order`: what changes about a joined agent — its name
//! and kind, whether it is busy and with what, its place in the session's list.

use codex_weave_runtime::{Envelope, ErrorCode};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{bad, payload_str, valid_name, Reply, MAX_DOING_CHARS};

use crate::conn::ConnId;
use crate::engine::{Answer, Engine};
use crate::refusal::Refusal;

impl Engine {
    pub(super) fn rename(
        &mut self,
        sid: &str,
        id: &str,
        old: Option<String>,
        name: Option<String>,
    ) {
        let session = self.registry.sessions.get_mut(sid).expect("known session");
        if let Some(o) = &old {
            session.names.remove(&o.to_lowercase());
        }
        if let Some(n) = &name {
            session.names.insert(n.to_lowercase(), id.to_owned());
        }
        let key = session.key;
        let mut kind = String::from("agent");
        if let Some(agent) = session.agents.get_mut(id) {
            agent.name = name.clone();
            kind = agent.kind.clone();
        }
        let (w_id, w_name) = (id.to_owned(), name.clone());
        self.write(move |s| s.upsert_agent(key, &w_id, w_name.as_deref(), &kind));
        let (_, env) = self.record_event(
            sid,
            "agent.updated",
            json!({ "id": id, "name": name, "previous_name": old }),
        );
        // Others in the session see the rename live (clients show names, not ids), each
        // addressed by `dst` as clients filter their lines.
        self.tell_connected(sid, Some(id), &env.envelope());
    }

    /// Sends `env` live to every connected agent of the session but `except`, once per agent
    /// with `dst` = that agent (not recorded again: `env` is a record already).
    pub(in crate::engine) fn tell_connected(
        &mut self,
        sid: &str,
        except: Option<&str>,
        env: &Envelope<Box<RawValue>, Box<RawValue>>,
    ) {
        let connected: Vec<(String, ConnId)> = self.registry.sessions[sid]
            .agents
            .values()
            .filter(|a| Some(a.id.as_str()) != except)
            .filter_map(|a| a.conn.map(|c| (a.id.clone(), c)))
            .collect();
        for (agent, conn) in connected {
            let mut env = env.clone();
            env.dst = Some(agent);
            self.send(conn, &env);
        }
    }

    /// Renames the sending agent. Only the agent itself, from its own connection.
    pub(super) fn agent_update(&mut self, conn: ConnId, env: &Envelope) -> Reply {
        let sid = self.open_session(env)?;
        let id = payload_str(env, "id").ok_or_else(|| bad("agent.update needs `payload.id`"))?;
        let operator = self.is_operator(conn);
        if !operator && id != env.src {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "an agent can only rename itself (`payload.id` must equal `src`)",
            ));
        }
        let name =
            payload_str(env, "name").ok_or_else(|| bad("agent.update needs `payload.name`"))?;
        let name = valid_name(name)?;
        if operator {
            if !self.registry.sessions[&sid].agents.contains_key(id) {
                return Err(Refusal::new(
                    ErrorCode::UnknownAgent,
                    format!("no agent `{id}` in session {sid}"),
                ));
            }
        } else {
            self.check_sender(conn, &sid, id)?;
        }
        let session = &self.registry.sessions[&sid];
        if session
            .names
            .get(&name.to_lowercase())
            .is_some_and(|owner| owner != id)
        {
            return Err(Refusal::new(
                ErrorCode::NameTaken,
                format!("name `{name}` is taken in this session"),
            ));
        }
        let old = session.agents[id].name.clone();
        if old.as_deref() != Some(name.as_str()) {
            self.rename(&sid, id, old, Some(name.clone()));
        }
        Ok(Answer::payload(json!({ "id": id, "name": name })))
    }

    /// `{activity: "busy"|"idle", doing?}` from the agent itself: what `agent.list` shows it
    /// doing. Record `agent.activity` `{id, activity, doing}` when it changes.
    pub(super) fn agent_activity(&mut self, conn: ConnId, env: &Envelope) -> Reply {
        let sid = self.open_session(env)?;
        self.check_sender(conn, &sid, &env.src)?;
        let busy = match payload_str(env, "activity") {
            Some("busy") => {
                let doing = payload_str(env, "doing").unwrap_or("working");
                let doing: String = doing
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_DOING_CHARS)
                    .collect();
                Some(doing)
            }
            Some("idle") => None,
            _ => {
                return Err(bad(
                    "agent.activity needs `payload.activity`: \"busy\" or \"idle\"",
                ))
            }
        };
        self.set_busy(&sid, &env.src.clone(), busy)
    }

    fn set_busy(&mut self, sid: &str, id: &str, busy: Option<String>) -> Reply {
        let Some(agent) = self
            .registry
            .sessions
            .get_mut(sid)
            .and_then(|s| s.agents.get_mut(id))
        else {
            return Err(Refusal::new(
                ErrorCode::UnknownAgent,
                format!("no agent `{id}`"),
            ));
        };
        let changed = agent.busy != busy;
        agent.busy = busy.clone();
        let activity = if busy.is_some() { "busy" } else { "idle" };
        let payload = json!({ "id": id, "activity": activity, "doing": busy });
        if changed {
            self.record_event(sid, "agent.activity", payload.clone());
        }
        Ok(Answer::payload(payload))
    }

    /// A connection closed: its agents go offline (staying registered), unacked deliveries
    /// return to their queues, and its streams stop.
    pub(in crate::engine) fn on_closed(&mut self, conn: ConnId) {
        let Some(c) = self.registry.conns.remove(&conn) else {
            return;
        };
        self.batch.closing.insert(conn, c.out);
        self.registry.session_watchers.retain(|(w, _)| *w != conn);
        for (sid, aid) in c.agents {
            self.inboxes.handle_disconnect(&sid, &aid);
            if let Some(agent) = self
                .registry
                .sessions
                .get_mut(&sid)
                .and_then(|s| s.agents.get_mut(&aid))
            {
                if agent.conn == Some(conn) {
                    agent.conn = None;
                    agent.busy = None;
                    self.record_event(
                        &sid,
                        "agent.offline",
                        json!({ "id": aid, "reason": "disconnected" }),
                    );
                }
            }
        }
        for sid in c.watching {
            if let Some(s) = self.registry.sessions.get_mut(&sid) {
                s.watchers.retain(|w| w.conn != conn);
            }
        }
    }

    /// The operator orders the session's agents (`agent.order` `{ids}`): listed ones first, in
    /// that order; the rest after them. Record `agents.ordered`.
    pub(super) fn agent_order(&mut self, conn: ConnId, env: &Envelope) -> Reply {
        let sid = self.known_session(env)?;
        if !self.is_operator(conn) {
            return Err(Refusal::new(
                ErrorCode::Forbidden,
                "only the operator orders agents",
            ));
        }
        let ids: Vec<String> = env
            .payload
            .as_ref()
            .and_then(|p| p.get("ids"))
            .and_then(Value::as_array)
            .ok_or_else(|| bad("agent.order needs `payload.ids`"))?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| bad("`ids` must be agent ids"))
            })
            .collect::<Result<_, _>>()?;
        let session = &self.registry.sessions[&sid];
        if let Some(unknown) = ids.iter().find(|id| !session.agents.contains_key(*id)) {
            return Err(Refusal::new(
                ErrorCode::UnknownAgent,
                format!("no agent `{unknown}` in session {sid}"),
            ));
        }
        let key = session.key;
        let session = self.registry.sessions.get_mut(&sid).expect("known");
        for agent in session.agents.values_mut() {
            agent.position = None;
        }
        for (i, id) in ids.iter().enumerate() {
            if let Some(a) = session.agents.get_mut(id) {
                a.position = Some(i as i64);
            }
        }
        let all: Vec<String> = session.agents.keys().cloned().collect();
        for id in all {
            let position = self.registry.sessions[&sid].agents[&id].position;
            self.write(move |s| s.set_agent_position(key, &id, position));
        }
        self.record_event(&sid, "agents.ordered", json!({ "ids": ids }));
        self.agent_list(env)
    }
}
