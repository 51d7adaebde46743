//! `agent.list`, `agent.add`, `agent.remove`: the registry of a session's agents and which
//! connection speaks for each (taking an id over, displacing a holder).

use codex_weave_runtime::{Envelope, ErrorCode};
use serde_json::{json, Value};

use super::{bad, payload_str, valid_name, Reply, MAX_ID_BYTES};

/// Kinds of agents: a terminal `agent`, a `human` in the browser, an `sdk` client.
pub const AGENT_KINDS: &[&str] = &["agent", "human", "sdk"];
use crate::conn::ConnId;
use crate::engine::state::Agent;
use crate::engine::{bus_envelope, Answer, Engine};
use crate::refusal::Refusal;

impl Engine {
    pub(super) fn agent_list(&self, env: &Envelope) -> Reply {
        let sid = self.known_session(env)?;
        let mut agents: Vec<&Agent> = self.registry.sessions[&sid].agents.values().collect();
        agents.sort_by_key(|a| (a.position.is_none(), a.position, a.id.clone()));
        let agents: Vec<Value> = agents
            .iter()
            .map(|a| a.summary(self.inboxes.counts(&sid, &a.id)))
            .collect();
        Ok(Answer::payload(json!({ "agents": agents })))
    }

    /// Closes the connections holding `id` or `name` whose clients have already closed them: a
    /// client restarting at once must not find its id busy or its name taken just because
    /// this bus has not read to the end of the old connection yet (crash and restart need no
    /// proof). What that connection still had in flight is dropped, as if it came after the
    /// close; nothing it was answered for is.
    fn close_hung_up_holders(&mut self, conn: ConnId, sid: &str, id: &str, name: Option<&str>) {
        let session = &self.registry.sessions[sid];
        let by_name = name.and_then(|n| session.names.get(&n.to_lowercase()));
        let gone: Vec<ConnId> = [Some(id), by_name.map(String::as_str)]
            .into_iter()
            .flatten()
            .filter_map(|agent| session.agents.get(agent)?.conn)
            .filter(|&c| c != conn)
            .filter(|c| self.registry.conns.get(c).is_some_and(|c| c.out.hung_up()))
            .collect();
        for c in gone {
            self.on_closed(c);
        }
    }

    /// Registers the agent (or takes it over from another connection) on this connection, then
    /// sends it everything waiting for it, oldest first.
    pub(super) fn agent_add(&mut self, conn: ConnId, env: &Envelope) -> Reply {
        let sid = self.open_session(env)?;
        let id = payload_str(env, "id").unwrap_or(&env.src).to_owned();
        if id.is_empty() || id.len() > MAX_ID_BYTES || id == codex_weave_runtime::BUS_SRC {
            return Err(bad(format!(
                "agent id must be 1 to {MAX_ID_BYTES} bytes and not `weave`"
            )));
        }
        let name = match env.payload.as_ref().and_then(|p| p.get("name")) {
            None | Some(Value::Null) => None,
            Some(Value::String(n)) => Some(valid_name(n)?),
            Some(_) => return Err(bad("`payload.name` must be a string")),
        };
        let kind = match env.payload.as_ref().and_then(|p| p.get("kind")) {
            None | Some(Value::Null) => None,
            Some(Value::String(k)) if AGENT_KINDS.contains(&k.as_str()) => Some(k.clone()),
            Some(_) => return Err(bad("`payload.kind` must be `agent`, `human` or `sdk`")),
        };
        let instance = match env.payload.as_ref().and_then(|p| p.get("instance")) {
            None | Some(Value::Null) => None,
            Some(Value::String(k)) if !k.is_empty() && k.len() <= MAX_ID_BYTES => Some(k.clone()),
            Some(_) => {
                return Err(bad(format!(
                    "`payload.instance` must be a string of 1 to {MAX_ID_BYTES} bytes"
                )))
            }
        };
        let secret = match env.payload.as_ref().and_then(|p| p.get("secret")) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_BYTES => Some(s.clone()),
            Some(_) => {
                return Err(bad(format!(
                    "`payload.secret` must be a string of 1 to {MAX_ID_BYTES} bytes"
                )))
            }
        };
        self.close_hung_up_holders(conn, &sid, &id, name.as_deref());
        let session = &self.registry.sessions[&sid];
        // An id held by a live connection is that connection's: another one takes it over
        // only with proof, the agent's secret or the holder's own instance key.
        if let Some(holder) = session.agents.get(&id) {
            if holder.conn.is_some_and(|c| c != conn) {
                let by_secret = secret.is_some() && holder.secret == secret;
                let by_instance = instance.is_some() && holder.instance == instance;
                if !by_secret && !by_instance {
                    return Err(Refusal::new(
                        ErrorCode::AgentBusy,
                        format!("agent `{id}` is connected on another connection; to take it over, add it with its `secret` (returned by the agent.add that registered it) or the same `instance`"),
                    ));
                }
            }
        }
        // A name held by an agent with no live connection can be taken (see `reclaim`).
        let mut reclaim = None;
        if let Some(name) = &name {
            if let Some(owner) = session.names.get(&name.to_lowercase()) {
                let holder = &session.agents[owner];
                if *owner != id && holder.conn.is_some() {
                    return Err(Refusal::new(
                        ErrorCode::NameTaken,
                        format!("name `{name}` is taken in this session by a connected agent"),
                    ));
                }
                if *owner != id {
                    let same = instance.is_some() && holder.instance == instance;
                    reclaim = Some((owner.clone(), same));
                }
            }
        }
        let existing = session.agents.get(&id);
        let frees_one = reclaim.as_ref().is_some_and(|(_, same)| *same);
        if existing.is_none()
            && !frees_one
            && session.agents.len() >= self.cfg.limits.max_agents_per_session
        {
            return Err(Refusal::new(
                ErrorCode::LimitReached,
                format!(
                    "session has {} agents, the limit (max_agents_per_session)",
                    session.agents.len()
                ),
            ));
        }
        let previous_conn = existing.and_then(|a| a.conn);
        let previous_name = existing.map(|a| a.name.clone());
        let key = session.key;

        match previous_name {
            None => {
                let session = self.registry.sessions.get_mut(&sid).expect("checked");
                let kind = kind.clone().unwrap_or_else(|| "agent".to_owned());
                session.agents.insert(
                    id.clone(),
                    Agent::new(id.clone(), name.clone(), kind.clone()),
                );
                if let Some(n) = &name {
                    session.names.insert(n.to_lowercase(), id.clone());
                }
                let (w_id, w_name, w_kind) = (id.clone(), name.clone(), kind.clone());
                self.write(move |s| s.upsert_agent(key, &w_id, w_name.as_deref(), &w_kind));
                let mut record: Envelope = bus_envelope("agent.added", Some(&sid));
                record.payload = Some(json!({ "id": id, "name": name, "kind": kind }));
                let consulted = self.consult(&sid, &record);
                self.record(&sid, record);
                self.apply_effects(&sid, consulted.effects);
            }
            Some(old) if name.is_some() && old != name => self.rename(&sid, &id, old, name.clone()),
            Some(_) => {}
        }
        if let Some((holder, same)) = reclaim {
            self.reclaim(&sid, &holder, &id, same);
        }
        let agent = self
            .registry
            .sessions
            .get_mut(&sid)
            .and_then(|s| s.agents.get_mut(&id))
            .expect("added");
        // The secret: made once (kept in the store) and told to the add that registered the
        // agent, or to one that proved it knows it.
        let told = match &agent.secret {
            None => {
                let made = uuid::Uuid::new_v4().simple().to_string();
                agent.secret = Some(made.clone());
                let (w_id, w_secret) = (id.clone(), made.clone());
                self.write(move |s| s.set_agent_secret(key, &w_id, &w_secret));
                Some(made)
            }
            Some(known) => secret.filter(|s| s == known),
        };
        let agent = self
            .registry
            .sessions
            .get_mut(&sid)
            .and_then(|s| s.agents.get_mut(&id))
            .expect("added");
        if instance.is_some() && agent.instance != instance {
            agent.instance = instance.clone();
            let w_id = id.clone();
            self.write(move |s| s.set_agent_instance(key, &w_id, instance.as_deref()));
        }

        if let Some(old_conn) = previous_conn.filter(|c| *c != conn) {
            self.displace(&sid, &id, old_conn);
        }
        if previous_conn != Some(conn) {
            let agent = self
                .registry
                .sessions
                .get_mut(&sid)
                .and_then(|s| s.agents.get_mut(&id))
                .expect("added");
            agent.conn = Some(conn);
            let name = agent.name.clone();
            if let Some(c) = self.registry.conns.get_mut(&conn) {
                c.agents.push((sid.clone(), id.clone()));
            }
            self.record_event(&sid, "agent.online", json!({ "id": id, "name": name }));
        }
        self.batch.pump.push((sid.clone(), id.clone()));
        let agent = &self.registry.sessions[&sid].agents[&id];
        let (queued, unacked) = self.inboxes.counts(&sid, &id);
        let mut payload = json!({ "id": id, "name": agent.name, "queued": queued + unacked });
        let transient = told.is_some();
        if let Some(secret) = told {
            payload["secret"] = Value::String(secret);
        }
        let mut answer = Answer::payload(payload);
        // A secret is never kept in the table of remembered responses.
        answer.transient = transient;
        Ok(answer)
    }

    /// Agent `taker` takes the name of `holder`, which has no live connection. When both are
    /// the same agent (the same instance key), what was queued for `holder` goes to `taker`
    /// and `holder` leaves (recorded as `agent.removed` with `replaced_by`); otherwise
    /// `holder` stays, without a name (recorded as `agent.updated` with `taken_by`).
    fn reclaim(&mut self, sid: &str, holder: &str, taker: &str, same: bool) {
        let session = self.registry.sessions.get_mut(sid).expect("known session");
        let key = session.key;
        let Some(old) = session.agents.get_mut(holder) else {
            return;
        };
        let name = old.name.take();
        let w_id = holder.to_owned();
        if !same {
            let kind = old.kind.clone();
            self.write(move |s| s.upsert_agent(key, &w_id, None, &kind));
            self.record_event(
                sid,
                "agent.updated",
                json!({ "id": holder, "name": null, "previous_name": name, "taken_by": taker }),
            );
            return;
        }
        let moved = self.move_deliveries(sid, holder, taker);
        self.inboxes.remove_agent(sid, holder);
        if let Some(s) = self.registry.sessions.get_mut(sid) {
            s.agents.remove(holder);
        }
        self.write(move |s| s.delete_agent(key, &w_id));
        let mut record: Envelope = bus_envelope("agent.removed", Some(sid));
        record.payload = Some(json!({
            "id": holder, "name": name, "replaced_by": taker, "moved": moved,
        }));
        let consulted = self.consult(sid, &record);
        self.record(sid, record);
        self.apply_effects(sid, consulted.effects);
    }

    /// Moves an agent off `old_conn`: it gets `agent.displaced` and nothing more for the agent;
    /// what it had not acked is requeued for the new connection.
    fn displace(&mut self, sid: &str, id: &str, old_conn: ConnId) {
        if let Some(c) = self.registry.conns.get_mut(&old_conn) {
            c.agents.retain(|(s, a)| !(s == sid && a == id));
        }
        self.inboxes.handle_disconnect(sid, id);
        let mut notice: Envelope = bus_envelope("agent.displaced", Some(sid));
        notice.dst = Some(id.to_owned());
        notice.payload = Some(json!({
            "id": id,
            "reason": "the agent was added on another connection; this one gets nothing more for it",
        }));
        self.send(old_conn, &notice);
        self.record_event(
            sid,
            "agent.offline",
            json!({ "id": id, "reason": "displaced" }),
        );
    }

    /// An agent leaves for good: off the list, its pending deliveries dead-lettered (each sender
    /// told with `delivery.failed`), later sends to it `unknown_agent`.
    pub(super) fn agent_remove(&mut self, conn: ConnId, env: &Envelope) -> Reply {
        let sid = self.known_session(env)?;
        let id = payload_str(env, "id").unwrap_or(&env.src).to_owned();
        if self.is_operator(conn) {
            if !self.registry.sessions[&sid].agents.contains_key(&id) {
                return Err(Refusal::new(
                    ErrorCode::UnknownAgent,
                    format!("no agent `{id}` in session {sid}"),
                ));
            }
        } else {
            if id != env.src {
                return Err(Refusal::new(
                    ErrorCode::Forbidden,
                    "an agent can only remove itself",
                ));
            }
            self.check_sender(conn, &sid, &id)?;
        }
        if let Some(owner) = self.registry.sessions[&sid].agents[&id].conn {
            if let Some(c) = self.registry.conns.get_mut(&owner) {
                c.agents.retain(|(s, a)| !(*s == sid && *a == id));
            }
        }
        let pending = self.inboxes.pending(&sid, &id);
        let dropped = pending.len();
        for did in pending {
            self.dead_letter(did, "agent_removed");
        }
        self.inboxes.remove_agent(&sid, &id);
        let session = self.registry.sessions.get_mut(&sid).expect("known");
        let agent = session.agents.remove(&id).expect("checked");
        if let Some(n) = &agent.name {
            session.names.remove(&n.to_lowercase());
        }
        let key = session.key;
        let w_id = id.clone();
        self.write(move |s| s.delete_agent(key, &w_id));
        // The runtime learns of the removal from the record, as it does at replay.
        let mut record: Envelope = bus_envelope("agent.removed", Some(&sid));
        record.payload = Some(json!({ "id": id, "name": agent.name }));
        let consulted = self.consult(&sid, &record);
        self.record(&sid, record);
        self.apply_effects(&sid, consulted.effects);
        Ok(Answer::payload(
            json!({ "id": id, "dead_lettered": dropped }),
        ))
    }
}
