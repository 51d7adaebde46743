//! `relay.submit`: start, continue, finish or cancel a relay. The runtime decides everything;
//! the bus resolves the agents the payload names, records the request, and applies the effects.

use codex_weave_runtime::{Envelope, RelayReply};
use serde_json::{json, Value};

use super::{payload_bool, payload_object, Reply};
use crate::conn::ConnId;
use crate::engine::{Answer, Engine};

impl Engine {
    pub(super) fn relay_submit(&mut self, conn: ConnId, env: &Envelope) -> Reply {
        let sid = self.open_session(env)?;
        self.check_sender(conn, &sid, &env.src)?;
        let mut payload = Value::Object(payload_object(env)?.clone());
        // Names become agent ids; the ids known now are listed so a replay decides the same.
        let session = &self.registry.sessions[&sid];
        let mut resolved: Vec<String> = Vec::new();
        let mut resolve = |v: &mut Value| {
            if let Some(id) = v.as_str().and_then(|name| session.resolve(name)) {
                if !resolved.iter().any(|r| r == id) {
                    resolved.push(id.to_owned());
                }
                *v = json!(id);
            }
        };
        if let Some(targets) = payload.get_mut("targets").and_then(Value::as_array_mut) {
            targets.iter_mut().for_each(&mut resolve);
        }
        for action in payload
            .get_mut("actions")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(dst) = action.get_mut("dst") {
                resolve(dst);
            }
            if let Some(targets) = action.get_mut("targets").and_then(Value::as_array_mut) {
                targets.iter_mut().for_each(&mut resolve);
            }
        }
        let mut record = env.clone();
        record.session = Some(sid.clone());
        record.payload = Some(payload);
        record.meta = Some(json!({ "weave": { "resolved": resolved } }));
        self.stamp_origin(&sid, &mut record);
        let consulted = self.admit(&sid, &mut record)?;
        let blocked = consulted.reply.as_ref().is_some_and(RelayReply::is_blocked);
        let reply = consulted.reply.map_or_else(|| json!({}), |r| r.to_value());
        if !blocked {
            self.record(&sid, record);
        }
        self.apply_effects(&sid, consulted.effects);
        let mut answer = Answer::payload(reply);
        answer.transient = blocked;
        Ok(answer)
    }

    /// The session's relays (open ones with `open_only`), each with its tasks and actions.
    pub(super) fn relays_list(&self, env: &Envelope) -> Reply {
        let sid = self.known_session(env)?;
        let open_only = payload_bool(env, "open_only")?;
        let mut relays: Vec<&codex_weave_runtime::Relay> = self
            .runtime
            .relays(&sid)
            .filter(|r| !open_only || r.is_active())
            .collect();
        relays.sort_by(|a, b| a.relay_id.cmp(&b.relay_id));
        let list: Vec<Value> = relays
            .into_iter()
            .map(|r| {
                let tasks: Vec<Value> = r
                    .target_order
                    .iter()
                    .map(|t| {
                        let task = &r.targets[t];
                        json!({ "agent_id": t, "task_id": task.task_id, "context_id": task.context_id, "status": task.status })
                    })
                    .collect();
                json!({
                    "relay_id": r.relay_id,
                    "owner_id": r.owner,
                    "status": r.status,
                    "summary": r.summary,
                    "tasks": tasks,
                    "actions": r.actions,
                })
            })
            .collect();
        Ok(Answer::payload(json!({ "relays": list })))
    }
}
