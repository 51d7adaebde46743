//! `message.send` and `message.ack`.

use codex_weave_runtime::{Ack, AckMode, Envelope, ErrorCode};
use serde_json::{json, Value};

use super::{bad, Reply};
use crate::conn::ConnId;
use crate::engine::{Answer, Engine};
use crate::refusal::Refusal;

impl Engine {
    /// Records a message and queues it for its target: `dst` (id or name) or `topic`
    /// `agent.<id or name>.inbox`. Once admitted, the request's envelope becomes the record
    /// (only its `id` and `session` are left for the response).
    pub(super) fn message_send(&mut self, conn: ConnId, env: &mut Envelope) -> Reply {
        let sid = self.open_session(env)?;
        self.check_sender(conn, &sid, &env.src)?;
        let wanted = match (&env.dst, &env.topic) {
            (Some(dst), _) if !dst.is_empty() => dst.as_str(),
            (_, Some(topic)) => inbox_of(topic).ok_or_else(|| {
                bad(format!(
                    "topic `{topic}` is not an inbox; use `agent.<id or name>.inbox`"
                ))
            })?,
            _ => return Err(bad("message.send needs `dst` or `topic: agent.<id>.inbox`")),
        };
        match &env.payload {
            Some(Value::String(_)) => {}
            Some(Value::Object(p)) if p.get("text").is_some_and(Value::is_string) => {}
            _ => return Err(bad("message.send needs `payload.text` (a string)")),
        }
        let ack = env.ack.clone().unwrap_or_default();
        if ack.timeout_ms == Some(0) {
            return Err(bad("`ack.timeout_ms` must be at least 1"));
        }
        let target = self.resolve_target(&sid, wanted)?;
        self.check_inbox(&sid, &target)?;

        let mut record = std::mem::take(env);
        env.id = record.id.clone();
        env.session = record.session.clone();
        record.session = Some(sid.clone());
        record.dst = Some(target.clone());
        record.topic = None;
        record.ack = Some(Ack {
            mode: Some(ack.mode.unwrap_or(AckMode::Auto)),
            timeout_ms: ack.timeout_ms,
        });
        self.stamp_origin(&sid, &mut record);
        let consulted = self.admit(&sid, &mut record)?;
        let (seq, record) = self.record(&sid, record);
        self.enqueue(&sid, &target, seq, record);
        self.apply_effects(&sid, consulted.effects);
        let text = |s: &str| serde_json::to_string(s).unwrap_or_default();
        // Keys in the order `json!` gives them (sorted), as clients have always seen them.
        Ok(Answer::raw(format!(
            r#"{{"dst":{},"id":{},"seq":{seq}}}"#,
            text(&target),
            text(&env.id)
        )))
    }

    /// Marks a delivery acknowledged. Never answered (as clients expect); an ack that matches
    /// nothing is logged and ignored.
    pub(super) fn message_ack(&mut self, conn: ConnId, env: &Envelope) {
        let Some(sid) = env
            .session
            .as_deref()
            .filter(|s| self.sessions.contains_key(*s))
        else {
            tracing::debug!(id = %env.id, "message.ack for an unknown session ignored");
            return;
        };
        let sid = sid.to_owned();
        if self.check_sender(conn, &sid, &env.src).is_err() {
            tracing::debug!(src = %env.src, "message.ack from a connection that does not own the agent ignored");
            return;
        }
        let Some(corr) = env.corr.as_deref() else {
            tracing::debug!(id = %env.id, "message.ack without corr ignored");
            return;
        };
        if !self.acknowledge(&sid, &env.src, corr) {
            tracing::debug!(corr, "message.ack for nothing pending ignored");
        }
    }

    /// Resolves an id or name to an agent id of the session.
    pub(super) fn resolve_target(&self, sid: &str, wanted: &str) -> Result<String, Refusal> {
        self.sessions[sid]
            .resolve(wanted)
            .map(str::to_owned)
            .ok_or_else(|| {
                Refusal::new(
                    ErrorCode::UnknownAgent,
                    format!("no agent `{wanted}` in session {sid}"),
                )
            })
    }

    /// Refuses with `inbox_full` when the target already holds its limit of deliveries.
    pub(super) fn check_inbox(&self, sid: &str, target: &str) -> Result<(), Refusal> {
        let pending = self.sessions[sid].agents[target].pending();
        let limit = self.cfg.limits.max_queue_per_agent;
        if pending >= limit {
            return Err(Refusal::new(
                ErrorCode::InboxFull,
                format!("agent `{target}` has {pending} deliveries waiting, the limit (max_queue_per_agent)"),
            ));
        }
        Ok(())
    }

    /// Adds `meta.weave.origin_src_name`: the sender's display name, shown to the receiver.
    pub(in crate::engine) fn stamp_origin(&self, sid: &str, record: &mut Envelope) {
        let name = self.sessions[sid]
            .agents
            .get(&record.src)
            .map(|a| a.display_name().to_owned())
            .unwrap_or_else(|| record.src.clone());
        let meta = record.meta.get_or_insert_with(|| json!({}));
        if !meta.is_object() {
            *meta = json!({ "original": meta.clone() });
        }
        let weave = &mut meta["weave"];
        if !weave.is_object() {
            *weave = json!({});
        }
        weave["origin_src_name"] = Value::String(name);
    }
}

/// `agent.<x>.inbox` → `x`.
fn inbox_of(topic: &str) -> Option<&str> {
    topic
        .strip_prefix("agent.")?
        .strip_suffix(".inbox")
        .filter(|x| !x.is_empty())
}
