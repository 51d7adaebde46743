//! An agent's inbox as the agent sees it: `inbox.unread` (what it has not read yet, oldest
//! first, optionally marking it read; with `waiting`, what it has not answered yet), `message.read` (it read these) and `message.receipts`
//! (how far messages got with each recipient).
//!
//! The two that change state act *for* an agent but, unlike sends, may come from any connection
//! of the socket's user: an agent's hooks run as processes of their own, beside the connection
//! that holds the agent. They only ever move the agent's own receipts to `read`; nothing is sent
//! as the agent.

use codex_weave_runtime::{Envelope, ErrorCode, ReceiptState};
use serde_json::{json, Value};

use super::{bad, payload_bool, payload_str, payload_u64, Reply};
use crate::engine::{Answer, Engine};
use crate::refusal::Refusal;
use crate::store::ReceiptRow;

/// Messages an `inbox.unread` returns when it names no `limit`.
pub const DEFAULT_INBOX_LIMIT: usize = 20;
/// Most messages one `inbox.unread` returns.
pub const MAX_INBOX_LIMIT: usize = 500;
/// Most ids one `message.read` or `message.receipts` names.
pub const MAX_RECEIPT_IDS: usize = 1000;

impl Engine {
    /// `{agent, limit?, mark_read?, waiting?}` → `{messages: [{id, seq, ts, state, envelope}],
    /// total, more}`: the agent's messages not read yet (queued or delivered), oldest first —
    /// with `waiting: true`, not answered yet (read ones too). With `mark_read: true` the
    /// returned ones are read from now on.
    pub(super) fn inbox_unread(&mut self, env: &Envelope) -> Reply {
        let sid = self.known_session(env)?;
        let agent = self.inbox_agent(&sid, env)?;
        let limit = payload_u64(env, "limit")?
            .map(|l| l as usize)
            .unwrap_or(DEFAULT_INBOX_LIMIT)
            .clamp(1, MAX_INBOX_LIMIT);
        let mark = payload_bool(env, "mark_read")?;
        let below = if payload_bool(env, "waiting")? {
            ReceiptState::Answered
        } else {
            ReceiptState::Read
        };
        let key = self.registry.sessions[&sid].key;
        let who = agent.clone();
        let (rows, total) = self
            .read(move |s| s.unread(key, &who, below.code(), limit))
            .map_err(unreadable)?;
        let mut messages = Vec::with_capacity(rows.len());
        for row in &rows {
            let envelope: Value = serde_json::from_str(&row.envelope).unwrap_or(Value::Null);
            let state = ReceiptState::from_code(row.state).unwrap_or(ReceiptState::Queued);
            messages.push(json!({
                "id": row.message,
                "seq": row.seq,
                "ts": row.ts,
                "state": if mark { state.max(ReceiptState::Read) } else { state },
                "envelope": envelope,
            }));
        }
        if mark {
            let ids = rows.into_iter().map(|r| r.message).collect();
            self.advance_receipts(&sid, &agent, ids, ReceiptState::Read)
                .map_err(unreadable)?;
        }
        let more = total.saturating_sub(messages.len() as u64);
        Ok(Answer::payload(json!({
            "agent": agent,
            "messages": messages,
            "total": total,
            "more": more,
        })))
    }

    /// `{ids, agent?}` (agent defaults to `src`) → `{agent, read: [ids that moved]}`.
    pub(super) fn message_read(&mut self, env: &Envelope) -> Reply {
        let sid = self.known_session(env)?;
        let agent = self.inbox_agent(&sid, env)?;
        let ids = payload_ids(env)?;
        let moved = self
            .advance_receipts(&sid, &agent, ids, ReceiptState::Read)
            .map_err(unreadable)?;
        let read: Vec<String> = moved.into_iter().map(|r| r.message).collect();
        Ok(Answer::payload(json!({ "agent": agent, "read": read })))
    }

    /// `{ids}` → `{receipts: [{message, agent, state, seq}]}`, every recipient's.
    pub(super) fn message_receipts(&mut self, env: &Envelope) -> Reply {
        let sid = self.known_session(env)?;
        let ids = payload_ids(env)?;
        let key = self.registry.sessions[&sid].key;
        let rows = self
            .read(move |s| s.receipts_of(key, &ids))
            .map_err(unreadable)?;
        let receipts: Vec<Value> = rows.iter().map(receipt_json).collect();
        Ok(Answer::payload(json!({ "receipts": receipts })))
    }

    /// The agent an inbox request is for: `payload.agent` (id or name), else `src`.
    fn inbox_agent(&self, sid: &str, env: &Envelope) -> Result<String, Refusal> {
        let wanted = payload_str(env, "agent").unwrap_or(&env.src);
        self.resolve_target(sid, wanted)
    }
}

fn receipt_json(r: &ReceiptRow) -> Value {
    let state = ReceiptState::from_code(r.state).map_or("unknown", ReceiptState::as_str);
    json!({ "message": r.message, "agent": r.agent, "state": state, "seq": r.seq })
}

/// `payload.ids`: 1 to [`MAX_RECEIPT_IDS`] strings, each kept once (first place).
fn payload_ids(env: &Envelope) -> Result<Vec<String>, Refusal> {
    let ids = env
        .payload
        .as_ref()
        .and_then(|p| p.get("ids"))
        .and_then(Value::as_array)
        .ok_or_else(|| {
            bad(format!(
                "{} needs `payload.ids`, an array of message ids",
                env.kind
            ))
        })?;
    if ids.is_empty() || ids.len() > MAX_RECEIPT_IDS {
        return Err(bad(format!(
            "`payload.ids` must name 1 to {MAX_RECEIPT_IDS} message ids"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        let id = id
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("`payload.ids` must be non-empty strings"))?;
        if !out.iter().any(|o| o == id) {
            out.push(id.to_owned());
        }
    }
    Ok(out)
}

fn unreadable(e: crate::store::StoreError) -> Refusal {
    Refusal::new(
        ErrorCode::StoreUnavailable,
        format!("reading receipts failed: {e}"),
    )
}
