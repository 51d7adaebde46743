//! `message.send` and `message.ack`.

use codex_weave_runtime::{Ack, AckMode, Envelope, ErrorCode, RawRequest};
use serde_json::{json, Value};

use super::{bad, Reply};
use crate::conn::ConnId;
use crate::engine::recorded::Recorded;
use crate::engine::stamp::{message_input, stamp_chain, stamp_payload_text, MessageFields};
use crate::engine::{Answer, Engine};
use crate::refusal::Refusal;

const NEEDS_TEXT: &str = "message.send needs `payload.text` (a string)";

impl Engine {
    /// Records a message and queues it for its target: `dst` (id or name) or `topic`
    /// `agent.<id or name>.inbox`. Once admitted, the request's envelope becomes the record
    /// (only its `id` and `session` are left for the response). The payload stays the JSON text
    /// it came in, the conversation's keys added where the sender named none.
    pub(super) fn message_send(&mut self, conn: ConnId, env: &mut RawRequest) -> Reply {
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
        let Some(sent) = env.payload.take() else {
            return Err(bad(NEEDS_TEXT));
        };
        let sent: Box<str> = sent.into();
        let mut canonical: Option<Box<str>> = None;
        let (text, fields) = match MessageFields::of_text(&sent) {
            Some(fields) => (&*sent, fields),
            None => {
                // A key twice: the last one counts, as when the payload is read as a value.
                let value: Value = serde_json::from_str(&sent).unwrap_or(Value::Null);
                let text = &**canonical.insert(value.to_string().into());
                (text, MessageFields::of_text(text).unwrap_or_default())
            }
        };
        if !fields.valid {
            return Err(bad(NEEDS_TEXT));
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
        let input = message_input(&sid, &record.id, &record.src, Some(&target), &fields);
        // A reply naming an action given to the sender completes it.
        let completes = fields
            .reply_to_action_id
            .as_deref()
            .map(|a| (record.src.clone(), a.to_owned(), target.clone()));
        let consulted = self.admit_input(&sid, input)?;
        let first = consulted.stamps.first();
        let stamped = first.and_then(|first| stamp_payload_text(text, &fields, first));
        let payload = stamped.unwrap_or_else(|| canonical.unwrap_or(sent));
        let origin = self.origin_name(&sid, &record.src);
        let answerer = consulted
            .stamps
            .iter()
            .any(|s| s.answers.is_some())
            .then(|| record.src.clone());
        let recorded = match record.meta.take() {
            // What nearly every sender does: the bus's meta is written directly.
            None => Recorded::with_weave(
                record.map(|_| (), |_| ()),
                payload,
                &origin,
                first.map(|f| (f.chain_id.as_str(), f.hop)),
            ),
            Some(meta) => {
                let mut record = record.map(|_| (), |m| m);
                record.meta = Some(meta);
                stamp_origin_name(&mut record.meta, origin);
                if let Some(first) = first {
                    stamp_chain(&mut record.meta, first);
                }
                Recorded::with_payload(record, Some(payload))
            }
        };
        let (seq, record) = self.append(&sid, recorded);
        self.enqueue(&sid, &target, seq, record);
        if let Some((from, action_id, giver)) = completes {
            self.complete_action(&sid, &from, &action_id, &giver);
        }
        if let Some(from) = answerer {
            self.receipts_answered(&sid, &from, &consulted.stamps);
        }
        self.apply_effects(&sid, consulted.effects);
        /// Keys in the order `json!` gives them (sorted), as clients have always seen them.
        #[derive(serde::Serialize)]
        struct Sent<'a> {
            dst: &'a str,
            id: &'a str,
            seq: u64,
        }
        Ok(Answer::of(&Sent {
            dst: &target,
            id: &env.id,
            seq,
        }))
    }

    /// Marks a delivery acknowledged. Not answered (as clients expect; an ack that matches
    /// nothing is logged and ignored) unless its payload asks `want_response: true`: then it is
    /// answered after the batch that removes the delivery commits, `ok` or why not.
    pub(super) fn message_ack(&mut self, conn: ConnId, env: &RawRequest) {
        let outcome = self.settle_ack(conn, env);
        if wants_response(env) {
            let reply = outcome.map(|corr| Answer::payload(json!({ "corr": corr, "acked": true })));
            self.respond(conn, &env.id, env.session.as_deref(), reply);
        } else if let Err(why) = outcome {
            tracing::debug!(id = %env.id, reason = %why.message, "message.ack ignored");
        }
    }

    /// What [`Engine::message_ack`] does: settles one delivery, or says why it could not.
    fn settle_ack(&mut self, conn: ConnId, env: &RawRequest) -> Result<String, Refusal> {
        let sid = self.known_session(env)?;
        self.check_sender(conn, &sid, &env.src)?;
        let corr = env
            .corr
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| bad("message.ack needs `corr`, the delivery's corr"))?;
        // The ack may name the message's sender (`dst`, an id or a name): two senders may
        // have chosen the same envelope id.
        let sender = env
            .dst
            .as_deref()
            .and_then(|d| self.registry.sessions[&sid].resolve(d));
        let sender = sender.map(str::to_owned);
        if !self.acknowledge(&sid, &env.src, corr, sender.as_deref()) {
            return Err(Refusal::new(
                ErrorCode::NotPending,
                format!("nothing pending for {} under `{corr}` (already acked, given up after max_deliver, or never delivered to it)", env.src),
            ));
        }
        Ok(corr.to_owned())
    }

    /// Resolves an id or name to an agent id of the session.
    pub(super) fn resolve_target(&self, sid: &str, wanted: &str) -> Result<String, Refusal> {
        self.registry.sessions[sid]
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
        let (queued, unacked) = self.inboxes.counts(sid, target);
        let pending = queued + unacked;
        let limit = self.cfg.limits.max_queue_per_agent;
        if pending >= limit {
            return Err(Refusal::new(
                ErrorCode::InboxFull,
                format!("agent `{target}` has {pending} deliveries waiting, the limit (max_queue_per_agent)"),
            ));
        }
        let bytes = self.inboxes.bytes(sid, target);
        let limit = self.cfg.limits.max_queue_bytes_per_agent;
        if bytes >= limit {
            return Err(Refusal::new(
                ErrorCode::InboxFull,
                format!("agent `{target}` has {bytes} bytes of deliveries waiting, the limit (max_queue_bytes_per_agent = {limit})"),
            ));
        }
        Ok(())
    }

    /// Adds `meta.weave.origin_src_name`: the sender's display name, shown to the receiver.
    pub(in crate::engine) fn stamp_origin(&self, sid: &str, record: &mut Envelope) {
        let name = self.origin_name(sid, &record.src);
        stamp_origin_name(&mut record.meta, name);
    }

    /// The sender's display name (its id if it has none, or is not an agent).
    fn origin_name(&self, sid: &str, src: &str) -> String {
        self.registry.sessions[sid]
            .agents
            .get(src)
            .map_or(src, |a| a.display_name())
            .to_owned()
    }
}

fn stamp_origin_name(meta: &mut Option<Value>, name: String) {
    let meta = meta.get_or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({ "original": meta.clone() });
    }
    let weave = &mut meta["weave"];
    if !weave.is_object() {
        *weave = json!({});
    }
    weave["origin_src_name"] = Value::String(name);
}

/// `agent.<x>.inbox` → `x`.
fn inbox_of(topic: &str) -> Option<&str> {
    topic
        .strip_prefix("agent.")?
        .strip_suffix(".inbox")
        .filter(|x| !x.is_empty())
}

/// Whether a `message.ack` asks to be answered: `payload.want_response: true`.
fn wants_response(env: &RawRequest) -> bool {
    #[derive(serde::Deserialize)]
    struct AckPayload {
        #[serde(default)]
        want_response: bool,
    }
    env.payload
        .as_ref()
        .and_then(|p| serde_json::from_str::<AckPayload>(p.get()).ok())
        .is_some_and(|p| p.want_response)
}
