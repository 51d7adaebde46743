//! `action.submit` (a group of actions for one or more agents) and `action.result`.

use codex_weave_runtime::{ActionType, Envelope, ReceiptState, ResultStatus};
use serde_json::{json, Value};

use super::{bad, payload_object, Reply};
use crate::conn::ConnId;
use crate::engine::{Answer, Engine};

impl Engine {
    /// Records the group with each action's `dst` resolved to an agent id, and queues it for each
    /// distinct target (each receives only its own actions).
    pub(super) fn action_submit(&mut self, conn: ConnId, env: &Envelope) -> Reply {
        let sid = self.open_session(env)?;
        self.check_sender(conn, &sid, &env.src)?;
        let payload = payload_object(env)?;
        let actions = payload
            .get("actions")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| bad("action.submit needs a non-empty `payload.actions` array"))?;
        let mut resolved = Vec::with_capacity(actions.len());
        let mut targets: Vec<String> = Vec::new();
        // (action id named in `reply_to_action_id`, the agent the reply goes to)
        let mut replies: Vec<(String, String)> = Vec::new();
        for (i, action) in actions.iter().enumerate() {
            ActionType::check(i, action, &[ActionType::Message, ActionType::Control])
                .map_err(bad)?;
            if action
                .get("action_id")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(bad(format!("actions[{i}] needs an `action_id`")));
            }
            let dst = action["dst"].as_str().unwrap_or_default();
            let target = self.resolve_target(&sid, dst)?;
            if !targets.contains(&target) {
                targets.push(target.clone());
            }
            if let Some(named) = action.get("reply_to_action_id").and_then(Value::as_str) {
                replies.push((named.to_owned(), target.clone()));
            }
            let mut action = action.clone();
            action["dst"] = Value::String(target);
            resolved.push(action);
        }
        for target in &targets {
            self.check_inbox(&sid, target)?;
        }

        let mut record = env.clone();
        record.session = Some(sid.clone());
        if let Some(p) = record.payload.as_mut() {
            p["actions"] = Value::Array(resolved);
        }
        self.stamp_origin(&sid, &mut record);
        let consulted = self.admit(&sid, &mut record)?;
        let (seq, record) = self.record(&sid, record);
        for target in &targets {
            self.enqueue(&sid, target, seq, record.clone());
        }
        // A reply naming an action given to the sender completes it (the group came from
        // the reply's target).
        for (named, giver) in &replies {
            self.complete_action(&sid, &env.src, named, giver);
        }
        self.receipts_answered(&sid, &env.src, &consulted.stamps);
        self.apply_effects(&sid, consulted.effects);
        let group_id = payload.get("group_id").cloned().unwrap_or(Value::Null);
        Ok(Answer::payload(
            json!({ "id": env.id, "seq": seq, "group_id": group_id, "targets": targets }),
        ))
    }

    /// Records a result and delivers it to `dst`; any result completes the action (see
    /// [`Engine::complete_action`]).
    pub(super) fn action_result(&mut self, conn: ConnId, env: &Envelope) -> Reply {
        let sid = self.open_session(env)?;
        self.check_sender(conn, &sid, &env.src)?;
        let payload = payload_object(env)?;
        let action_id = payload
            .get("action_id")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("action.result needs `payload.action_id`"))?
            .to_owned();
        let status = payload
            .get("status")
            .and_then(Value::as_str)
            .and_then(ResultStatus::parse)
            .ok_or_else(|| {
                let all = ResultStatus::ALL.map(ResultStatus::as_str);
                bad(format!(
                    "action.result needs `payload.status`, one of {all:?}"
                ))
            })?;
        let dst = env
            .dst
            .as_deref()
            .filter(|d| !d.is_empty())
            .ok_or_else(|| bad("action.result needs `dst`"))?;
        let target = self.resolve_target(&sid, dst)?;

        let mut record = env.clone();
        record.session = Some(sid.clone());
        record.dst = Some(target.clone());
        self.stamp_origin(&sid, &mut record);
        let consulted = self.admit(&sid, &mut record)?;
        self.complete_action(&sid, &env.src, &action_id, &target);
        // A result is the agent's own word on the action: it read it, and a terminal result
        // answers it.
        let state = if status.is_terminal() {
            ReceiptState::Answered
        } else {
            ReceiptState::Read
        };
        self.advance_receipts_logged(&sid, &env.src, vec![action_id], state);
        let (seq, record) = self.record(&sid, record);
        self.enqueue(&sid, &target, seq, record);
        self.apply_effects(&sid, consulted.effects);
        Ok(Answer::payload(json!({ "id": env.id, "seq": seq })))
    }
}
