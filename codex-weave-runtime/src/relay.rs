//! Relays: an owner hands ordered steps to target agents. Message and control actions go out as
//! `action.submit` groups, one per target per segment; a `wait` step holds what follows until
//! the awaited targets have answered what they were sent (a reply naming one of its actions, or a
//! terminal `action.result`). Per-target tasks follow: running, blocked, ready, done.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::{json, Map, Value};

use crate::error::ErrorCode;
use crate::event::{RelayAccepted, RelayDone, RuntimeEvent, TaskDone, TaskUpdated};
use crate::model::{
    Action, AgentId, Conversation, MessageKind, Relay, RelayStatus, Step, Task, TaskStatus,
};
use crate::runtime::{apply, refuse, relay_send, Message, Output, Runtime, RuntimeConfig, Session};

struct Failure {
    dst: String,
    message: String,
}

/// An action of a submit, parsed.
struct Parsed {
    kind: String,
    plan_step_id: String,
    target: AgentId,
    wire: Map<String, Value>,
    expects_reply: bool,
    msg_kind: MessageKind,
    reply_to: Option<String>,
}

enum ParsedStep {
    Act(Parsed),
    Wait {
        plan_step_id: String,
        targets: Vec<AgentId>,
    },
}

fn text_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl Runtime {
    pub(crate) fn relay(
        &mut self,
        session: &str,
        from: &str,
        payload: &Value,
        resolve: &HashMap<String, AgentId>,
    ) -> Vec<Output> {
        let cfg = self.cfg.clone();
        let st = crate::runtime::open(&mut self.sessions, &mut self.slots, session);
        let Some(relay_id) = text_field(payload, "relay_id").filter(|r| !r.is_empty()) else {
            return vec![refuse(
                ErrorCode::BadRequest,
                "relay.submit needs `payload.relay_id`",
            )];
        };
        let existing = st.relays.get(&relay_id);
        if let Some(r) = existing {
            if r.owner != from {
                return vec![refuse(
                    ErrorCode::NotOwner,
                    format!("relay {relay_id} belongs to {}; only its owner may continue, finish or cancel it", r.owner),
                )];
            }
        }
        let finishing = match (payload.get("done"), payload.get("cancel")) {
            (Some(d), _) if !d.is_null() && d != &Value::Bool(false) => Some((
                "done",
                d.get("summary").and_then(Value::as_str).map(str::to_owned),
            )),
            (_, Some(c)) if !c.is_null() && c != &Value::Bool(false) => Some((
                "cancelled",
                c.get("reason").and_then(Value::as_str).map(str::to_owned),
            )),
            _ => None,
        };
        if let Some((status, summary)) = finishing {
            return match existing {
                None => vec![refuse(
                    ErrorCode::BadRequest,
                    format!("no relay {relay_id} to finish"),
                )],
                Some(_) => finish(st, &relay_id, status, summary),
            };
        }
        if existing.is_some_and(|r| !r.is_active()) {
            return vec![refuse(
                ErrorCode::BadRequest,
                format!("relay {relay_id} has ended"),
            )];
        }

        // Targets and steps, with unknown agents reported, never failing the whole relay.
        let mut failures: Vec<Failure> = Vec::new();
        let mut targets: Vec<AgentId> =
            existing.map(|r| r.target_order.clone()).unwrap_or_default();
        let add_target = |name: &str,
                          failures: &mut Vec<Failure>,
                          targets: &mut Vec<AgentId>|
         -> Option<AgentId> {
            match resolve.get(name) {
                Some(id) => {
                    if !targets.contains(id) {
                        targets.push(id.clone());
                    }
                    Some(id.clone())
                }
                None => {
                    if !failures.iter().any(|f| f.dst == name) {
                        failures.push(Failure {
                            dst: name.to_owned(),
                            message: format!("no agent `{name}` in this session"),
                        });
                    }
                    None
                }
            }
        };
        for t in payload
            .get("targets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match t.as_str() {
                Some(name) => {
                    add_target(name, &mut failures, &mut targets);
                }
                None => return vec![refuse(ErrorCode::BadRequest, "`targets` must be agent ids")],
            }
        }
        let mut steps = Vec::new();
        for (i, a) in payload
            .get("actions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(obj) = a.as_object() else {
                return vec![refuse(
                    ErrorCode::BadRequest,
                    format!("actions[{i}] must be an object"),
                )];
            };
            let kind = obj
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let plan_step_id = text_field(a, "plan_step_id").unwrap_or_default();
            match kind.as_str() {
                "wait" => {
                    let mut awaited = Vec::new();
                    for t in obj
                        .get("targets")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        // Unknown targets are skipped by waits (and reported as failures).
                        if let Some(id) = t
                            .as_str()
                            .and_then(|n| add_target(n, &mut failures, &mut targets))
                        {
                            awaited.push(id);
                        }
                    }
                    if obj.get("targets").is_none() {
                        awaited = targets.clone();
                    }
                    steps.push(ParsedStep::Wait {
                        plan_step_id,
                        targets: awaited,
                    });
                }
                "message" | "control" => {
                    let Some(dst) = obj.get("dst").and_then(Value::as_str) else {
                        return vec![refuse(
                            ErrorCode::BadRequest,
                            format!("actions[{i}] needs a `dst`"),
                        )];
                    };
                    if kind == "message" && !obj.get("text").is_some_and(Value::is_string) {
                        return vec![refuse(
                            ErrorCode::BadRequest,
                            format!("actions[{i}] needs `text`"),
                        )];
                    }
                    if kind == "control" && !obj.get("command").is_some_and(Value::is_string) {
                        return vec![refuse(
                            ErrorCode::BadRequest,
                            format!("actions[{i}] needs `command`"),
                        )];
                    }
                    let Some(target) = add_target(dst, &mut failures, &mut targets) else {
                        continue;
                    };
                    let reply = obj.get("kind").and_then(Value::as_str) == Some("reply");
                    let expects_reply = kind == "message"
                        && obj
                            .get("expects_reply")
                            .and_then(Value::as_bool)
                            .unwrap_or(!reply);
                    steps.push(ParsedStep::Act(Parsed {
                        msg_kind: match (kind.as_str(), reply) {
                            ("message", false) => MessageKind::User,
                            _ => MessageKind::Control, // owner answers and controls are not new work
                        },
                        kind,
                        plan_step_id,
                        target,
                        wire: obj.clone(),
                        expects_reply,
                        reply_to: text_field(a, "reply_to_action_id"),
                    }));
                }
                other => {
                    return vec![refuse(
                        ErrorCode::BadRequest,
                        format!("actions[{i}].type `{other}` is not message, control or wait"),
                    )]
                }
            }
        }

        // Busy in another owner's active relay: the whole relay is blocked, nothing dispatched.
        let busy: Vec<&AgentId> = targets
            .iter()
            .filter(|t| {
                st.relays.values().any(|r| {
                    r.is_active()
                        && r.owner != from
                        && r.targets
                            .get(*t)
                            .is_some_and(|x| x.status != TaskStatus::Done)
                })
            })
            .collect();
        if !busy.is_empty() {
            let mut reply = json!({
                "relay_id": relay_id,
                "status": "blocked",
                "retry_after_ms": cfg.blocked_retry_ms,
                "busy": busy,
                "action_count": 0,
                "target_count": targets.len(),
                "failures": failure_list(&failures),
                "targets": {},
            });
            if existing.is_none() {
                reply["message"] =
                    json!("a target is busy in another owner's relay; nothing was dispatched");
            }
            return vec![Output::Reply(reply)];
        }

        // Every action passes ownership and the loop guard, or none is applied.
        let submit_no = existing.map(|r| r.submits).unwrap_or(0) + 1;
        let first_index = existing.map(|r| r.actions.len()).unwrap_or(0);
        let mut sends = Vec::new();
        let mut n = 0usize;
        for step in &steps {
            if let ParsedStep::Act(p) = step {
                let action_id = format!("{relay_id}:{submit_no}:{n}");
                n += 1;
                sends.push(Message {
                    session: session.to_owned(),
                    id: action_id,
                    from: from.to_owned(),
                    to: vec![p.target.clone()],
                    kind: p.msg_kind,
                    context_id: Some(context_of(&relay_id, &p.target)),
                    parent_message_id: None,
                    reply_to_action_id: p.reply_to.clone(),
                });
            }
        }
        let mut verdicts = Vec::new();
        for send in &sends {
            match relay_send(&cfg, st, send) {
                Ok(planned) => verdicts.push(planned),
                Err(out) => return out,
            }
        }

        // Apply: the relay, its targets' conversations and tasks, the steps.
        if !st.relays.contains_key(&relay_id) {
            st.add_relay(Relay {
                relay_id: relay_id.clone(),
                owner: from.to_owned(),
                status: RelayStatus::Active,
                targets: BTreeMap::new(),
                target_order: Vec::new(),
                actions: Vec::new(),
                queue: VecDeque::new(),
                submits: 0,
                steps: 0,
                summary: None,
            });
        }
        let relay = st.relays.get_mut(&relay_id).expect("just added");
        relay.submits = submit_no;
        let mut new_targets = Vec::new();
        for t in &targets {
            if !relay.targets.contains_key(t) {
                new_targets.push(t.clone());
                relay.target_order.push(t.clone());
                relay.targets.insert(
                    t.clone(),
                    Task {
                        context_id: context_of(&relay_id, t),
                        task_id: format!("{relay_id}:task:{t}"),
                        status: TaskStatus::Pending,
                        outstanding: false,
                        groups: 0,
                    },
                );
            }
        }
        for t in new_targets {
            let ctx = context_of(&relay_id, &t);
            if !st.conversations.contains_key(ctx.as_str()) {
                let owner_id = st.intern(from);
                st.add_conversation(Conversation {
                    context_id: ctx.into(),
                    owner_id,
                    relay_id: Some(relay_id.as_str().into()),
                    last_to: Vec::new(),
                });
            }
        }
        let mut sends = sends.into_iter().zip(verdicts);
        let mut new_actions = Vec::new();
        // Waits as clients look for them: steps of type `wait` among each awaited target's
        // actions.
        let mut new_waits: Vec<(Vec<AgentId>, Value)> = Vec::new();
        for step in steps {
            let relay = st.relays.get_mut(&relay_id).expect("inserted");
            let step_index = relay.steps;
            relay.steps += 1;
            match step {
                ParsedStep::Wait {
                    plan_step_id,
                    targets,
                } => {
                    let wait = json!({
                        "action_id": format!("{relay_id}:{submit_no}:wait:{}", new_waits.len()),
                        "action_index": step_index,
                        "type": "wait",
                        "plan_step_id": plan_step_id,
                        "targets": targets,
                    });
                    new_waits.push((targets.clone(), wait));
                    relay.queue.push_back(Step::Wait {
                        plan_step_id,
                        targets,
                    })
                }
                ParsedStep::Act(p) => {
                    let (send, verdict) = sends.next().expect("one send per action");
                    let index = relay.actions.len();
                    let mut wire = p.wire;
                    wire.insert("dst".into(), json!(p.target));
                    wire.insert("action_id".into(), json!(send.id));
                    wire.insert("action_index".into(), json!(step_index));
                    wire.insert("plan_step_id".into(), json!(p.plan_step_id));
                    if p.kind == "message" {
                        wire.insert("expects_reply".into(), json!(p.expects_reply));
                        wire.entry("kind").or_insert(json!("user"));
                    }
                    relay.actions.push(Action {
                        action_id: send.id.clone(),
                        action_index: step_index,
                        kind: p.kind,
                        plan_step_id: p.plan_step_id,
                        target: p.target.clone(),
                        wire: Value::Object(wire),
                        expects_reply: p.expects_reply,
                        dispatched: false,
                        answered: false,
                    });
                    relay.queue.push_back(Step::Act(index));
                    new_actions.push(index);
                    // The same bookkeeping as any message: chain, conversation tip, action
                    // reference, the target's pending reply target.
                    apply(&cfg, st, &send, verdict);
                }
            }
        }
        debug_assert_eq!(
            first_index + new_actions.len(),
            st.relays[&relay_id].actions.len()
        );

        let mut dispatched = advance(st, &relay_id);
        let relay = &st.relays[&relay_id];
        let mut per_target = Map::new();
        for t in &relay.target_order {
            let target = &relay.targets[t];
            let mut actions: Vec<(u32, Value)> = new_actions
                .iter()
                .map(|&i| &relay.actions[i])
                .filter(|a| &a.target == t)
                .map(|a| {
                    let mut v = json!({
                        "action_id": a.action_id, "action_index": a.action_index, "type": a.kind,
                        "plan_step_id": a.plan_step_id,
                    });
                    if a.kind == "message" {
                        v["expects_reply"] = json!(a.expects_reply);
                    } else if let Some(c) = a.wire.get("command") {
                        v["command"] = c.clone();
                    }
                    (a.action_index, v)
                })
                .collect();
            for (awaited, wait) in &new_waits {
                if awaited.contains(t) {
                    let index = wait["action_index"].as_u64().unwrap_or_default() as u32;
                    actions.push((index, wait.clone()));
                }
            }
            actions.sort_by_key(|(index, _)| *index);
            let actions: Vec<Value> = actions.into_iter().map(|(_, v)| v).collect();
            let group_id = dispatched.iter().find_map(|o| match o {
                Output::Dispatch { target, group, .. } if target == t => {
                    group.get("group_id").cloned()
                }
                _ => None,
            });
            let mut entry = json!({ "context_id": target.context_id, "task_id": target.task_id, "actions": actions });
            if let Some(g) = group_id {
                entry["group_id"] = g;
            }
            per_target.insert(t.clone(), entry);
        }
        let waits: Vec<Value> = relay
            .queue
            .iter()
            .filter_map(|s| match s {
                Step::Wait {
                    plan_step_id,
                    targets,
                } => Some(json!({ "plan_step_id": plan_step_id, "targets": targets })),
                Step::Act(_) => None,
            })
            .collect();
        let accepted = json!({
            "relay_id": relay_id,
            "status": "accepted",
            "action_count": new_actions.len(),
            "target_count": relay.targets.len(),
            "failures": failure_list(&failures),
            "targets": per_target,
            "waits": waits,
        });
        let mut out = vec![
            Output::Reply(accepted.clone()),
            Output::Emit {
                event: RuntimeEvent::RelayAccepted(RelayAccepted {
                    relay_id: relay_id.clone(),
                    owner_id: from.to_owned(),
                    accepted,
                }),
                to: Vec::new(),
            },
        ];
        out.append(&mut dispatched);
        out
    }
}

fn failure_list(failures: &[Failure]) -> Vec<Value> {
    failures
        .iter()
        .map(|f| json!({ "dst": f.dst, "code": "unknown_agent", "message": f.message }))
        .collect()
}

/// The conversation between a relay's owner and one target.
pub fn context_of(relay_id: &str, target: &str) -> String {
    format!("{relay_id}:{target}")
}

fn task_event(relay: &Relay, target: &str, status: TaskStatus) -> Output {
    let t = &relay.targets[target];
    Output::Emit {
        event: RuntimeEvent::TaskUpdated(TaskUpdated {
            task_id: t.task_id.clone(),
            relay_id: relay.relay_id.clone(),
            agent_id: target.to_owned(),
            owner_id: relay.owner.clone(),
            context_id: t.context_id.clone(),
            status: status.as_str().to_owned(),
        }),
        to: vec![relay.owner.clone(), target.to_owned()],
    }
}

fn set_status(relay: &mut Relay, target: &str, status: TaskStatus, out: &mut Vec<Output>) {
    let Some(t) = relay.targets.get_mut(target) else {
        return;
    };
    if t.status != status {
        t.status = status;
        out.push(task_event(relay, target, status));
    }
}

/// Dispatches what the plan allows now: segments up to the first unsatisfied wait.
pub(crate) fn advance(st: &mut Session, relay_id: &str) -> Vec<Output> {
    let mut out = Vec::new();
    let Some(relay) = st.relays.get_mut(relay_id) else {
        return out;
    };
    if !relay.is_active() {
        return out;
    }
    loop {
        match relay.queue.front().cloned() {
            None => break,
            Some(Step::Wait { targets, .. }) => {
                let satisfied = targets
                    .iter()
                    .all(|t| relay.targets.get(t).is_none_or(|x| !x.outstanding));
                let held: Vec<AgentId> = relay
                    .queue
                    .iter()
                    .filter_map(|s| match s {
                        Step::Act(i) => Some(relay.actions[*i].target.clone()),
                        Step::Wait { .. } => None,
                    })
                    .collect();
                if !satisfied {
                    for t in held {
                        set_status(relay, &t, TaskStatus::Blocked, &mut out);
                    }
                    break;
                }
                relay.queue.pop_front();
                for t in held {
                    if relay.targets[&t].status == TaskStatus::Blocked {
                        set_status(relay, &t, TaskStatus::Ready, &mut out);
                    }
                }
            }
            Some(Step::Act(_)) => {
                let mut segment: Vec<(AgentId, Vec<usize>)> = Vec::new();
                while let Some(Step::Act(i)) = relay.queue.front().cloned() {
                    relay.queue.pop_front();
                    let target = relay.actions[i].target.clone();
                    match segment.iter_mut().find(|(t, _)| *t == target) {
                        Some((_, v)) => v.push(i),
                        None => segment.push((target, vec![i])),
                    }
                }
                for (target, indexes) in segment {
                    let t = relay
                        .targets
                        .get_mut(&target)
                        .expect("target of its own action");
                    t.groups += 1;
                    t.outstanding = true;
                    let group_id = format!("{}:{}:g{}", relay.relay_id, target, t.groups);
                    let (context_id, task_id) = (t.context_id.clone(), t.task_id.clone());
                    let actions: Vec<Value> = indexes
                        .iter()
                        .map(|&i| {
                            relay.actions[i].dispatched = true;
                            relay.actions[i].wire.clone()
                        })
                        .collect();
                    set_status(relay, &target, TaskStatus::Running, &mut out);
                    out.push(Output::Dispatch {
                        from: relay.owner.clone(),
                        target: target.clone(),
                        group: json!({
                            "group_id": group_id,
                            "relay_id": relay.relay_id,
                            "task_id": task_id,
                            "context": { "context_id": context_id, "owner_id": relay.owner },
                            "actions": actions,
                        }),
                    });
                }
            }
        }
    }
    out
}

/// A target answered an action of the relay (a reply naming it, or a terminal result).
pub(crate) fn answered(
    _cfg: &RuntimeConfig,
    st: &mut Session,
    relay_id: &str,
    from: &str,
    action_id: &str,
) -> Vec<Output> {
    let Some(relay) = st.relays.get_mut(relay_id) else {
        return Vec::new();
    };
    if !relay.is_active() {
        return Vec::new(); // a late answer to an ended relay changes nothing
    }
    let Some(action) = relay
        .actions
        .iter_mut()
        .find(|a| a.action_id == action_id && a.target == from)
    else {
        return Vec::new();
    };
    action.answered = true;
    if let Some(t) = relay.targets.get_mut(from) {
        t.outstanding = false;
    }
    advance(st, relay_id)
}

/// Ends a relay: what is still held is dropped, every task is done, and the owner and targets
/// get `relay.done`. Targets' pending reply targets in the relay are cleared, so a reply on a
/// later turn never goes to this relay's owner by default.
fn finish(st: &mut Session, relay_id: &str, status: &str, summary: Option<String>) -> Vec<Output> {
    let relay = st.relays.get_mut(relay_id).expect("checked by caller");
    if !relay.is_active() {
        return vec![Output::Reply(
            json!({ "relay_id": relay_id, "status": relay_status(relay.status) }),
        )];
    }
    relay.status = if status == "done" {
        RelayStatus::Done
    } else {
        RelayStatus::Cancelled
    };
    relay.summary = summary.clone();
    let dropped = relay
        .queue
        .iter()
        .filter(|s| matches!(s, Step::Act(_)))
        .count();
    relay.queue.clear();
    let mut out = Vec::new();
    let mut to = vec![relay.owner.clone()];
    to.extend(relay.target_order.iter().cloned());
    out.push(Output::Emit {
        event: RuntimeEvent::RelayDone(RelayDone {
            relay_id: relay_id.to_owned(),
            owner_id: relay.owner.clone(),
            status: status.to_owned(),
            summary: summary.clone(),
        }),
        to,
    });
    for t in relay.target_order.clone() {
        set_status(relay, &t, TaskStatus::Done, &mut out);
        let target = &relay.targets[&t];
        out.push(Output::Emit {
            event: RuntimeEvent::TaskDone(TaskDone {
                task_id: target.task_id.clone(),
                relay_id: relay_id.to_owned(),
                agent_id: t.clone(),
                owner_id: relay.owner.clone(),
                context_id: target.context_id.clone(),
                summary: summary.clone(),
            }),
            to: vec![relay.owner.clone(), t.clone()],
        });
        let ctx = target.context_id.clone();
        if st
            .pending_reply
            .get(t.as_str())
            .is_some_and(|c| **c == *ctx)
        {
            st.pending_reply.remove(t.as_str());
        }
    }
    out.insert(
        0,
        Output::Reply(
            json!({ "relay_id": relay_id, "status": status, "dropped_actions": dropped }),
        ),
    );
    out
}

fn relay_status(s: RelayStatus) -> &'static str {
    match s {
        RelayStatus::Active => "active",
        RelayStatus::Done => "done",
        RelayStatus::Cancelled => "cancelled",
    }
}
