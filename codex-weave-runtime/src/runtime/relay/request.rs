//! A `relay.submit` payload, parsed once: which relay, whether it ends it, and (for the steps)
//! the targets and steps it names, each action checked by [`ActionType::check`]. Names are
//! resolved later, against the session (an unknown one is a failure, not an error).

use serde_json::{Map, Value};

use crate::model::{ActionType, MessageKind};

/// How a submit ends its relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Done,
    Cancelled,
}

pub(super) struct Request<'a> {
    pub relay_id: String,
    /// `done` or `cancel`, with the summary or reason.
    pub end: Option<(End, Option<String>)>,
    payload: &'a Value,
}

/// A step as the payload writes it, names not yet resolved.
pub(super) enum StepSpec {
    Act(ActSpec),
    Wait {
        plan_step_id: String,
        /// `None`: every target of the relay.
        targets: Option<Vec<String>>,
    },
}

pub(super) struct ActSpec {
    pub kind: ActionType,
    pub plan_step_id: String,
    pub dst: String,
    pub wire: Map<String, Value>,
    pub expects_reply: bool,
    /// New work (`message` of kind `user`), or the owner's answer or control.
    pub msg_kind: MessageKind,
    pub reply_to: Option<String>,
}

fn text_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The relay a payload names and how it ends it; its steps are read by [`Request::steps`]
/// once the relay's state allows them.
pub(super) fn parse(payload: &Value) -> Result<Request<'_>, String> {
    let relay_id = text_field(payload, "relay_id")
        .filter(|r| !r.is_empty())
        .ok_or("relay.submit needs `payload.relay_id`")?;
    fn given(v: Option<&Value>) -> Option<&Value> {
        v.filter(|v| !v.is_null() && **v != Value::Bool(false))
    }
    let summary = |v: &Value, key| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let end = match (given(payload.get("done")), given(payload.get("cancel"))) {
        (Some(d), _) => Some((End::Done, summary(d, "summary"))),
        (_, Some(c)) => Some((End::Cancelled, summary(c, "reason"))),
        _ => None,
    };
    Ok(Request {
        relay_id,
        end,
        payload,
    })
}

impl Request<'_> {
    /// The targets named up front and the steps, in payload order.
    pub fn steps(&self) -> Result<(Vec<String>, Vec<StepSpec>), String> {
        let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
        let mut targets = Vec::new();
        for t in self.payload.get("targets").map(list).unwrap_or_default() {
            match t {
                Value::String(name) => targets.push(name),
                _ => return Err("`targets` must be agent ids".into()),
            }
        }
        let actions = self.payload.get("actions").map(list).unwrap_or_default();
        let mut steps = Vec::with_capacity(actions.len());
        for (i, a) in actions.into_iter().enumerate() {
            let allowed = [ActionType::Message, ActionType::Control, ActionType::Wait];
            let kind = ActionType::check(i, &a, &allowed)?;
            let plan_step_id = text_field(&a, "plan_step_id").unwrap_or_default();
            let Value::Object(wire) = a else {
                unreachable!("checked to be an object")
            };
            if kind == ActionType::Wait {
                // Unknown targets are skipped by waits (and reported as failures).
                let targets = wire.get("targets").map(|t| {
                    list(t)
                        .into_iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                });
                steps.push(StepSpec::Wait {
                    plan_step_id,
                    targets,
                });
                continue;
            }
            let reply = wire.get("kind").and_then(Value::as_str) == Some("reply");
            let expects_reply = kind == ActionType::Message
                && wire
                    .get("expects_reply")
                    .and_then(Value::as_bool)
                    .unwrap_or(!reply);
            steps.push(StepSpec::Act(ActSpec {
                msg_kind: match (kind, reply) {
                    (ActionType::Message, false) => MessageKind::User,
                    _ => MessageKind::Control, // owner answers and controls are not new work
                },
                kind,
                plan_step_id,
                dst: wire
                    .get("dst")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                expects_reply,
                reply_to: wire
                    .get("reply_to_action_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                wire,
            }));
        }
        Ok((targets, steps))
    }
}
