//! Relays: an owner hands ordered steps to target agents. Message and control actions go out as
//! `action.submit` groups, one per target per segment; a `wait` step holds what follows until
//! the awaited targets have answered what they were sent (a reply naming one of its actions, or a
//! terminal `action.result`). Per-target tasks follow: running, blocked, ready, done.
//!
//! A `relay.submit` goes through [`submit`] in the steps it performs: parse and validate
//! ([`request`]), resolve the names it gives, refuse it whole when a target is busy, check every
//! action against ownership and the loop guard (all or none), apply (relay, tasks, steps and
//! waits), dispatch what no wait holds ([`progress`]), and answer ([`reply`]).

pub(crate) mod progress;
pub mod reply;
mod request;

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::json;

use crate::error::ErrorCode;
use crate::event::{RelayAccepted, RuntimeEvent};
use crate::model::TaskStatus;
use crate::model::{Action, ActionType, AgentId, Conversation, Relay, RelayStatus, Step, Task};

use super::config::RuntimeConfig;
use super::input::Message;
use super::message;
use super::output::{refuse, Output};
use super::session::Session;
pub use progress::context_of;
pub use reply::{Accepted, Blocked, Ended, Failure, RelayReply, StepRef, TargetPlan, WaitRef};
use request::{ActSpec, StepSpec};

/// A step with its names resolved to the session's agent ids.
enum Resolved {
    Act(ActSpec, AgentId),
    Wait {
        plan_step_id: String,
        targets: Vec<AgentId>,
    },
}

/// A `relay.submit` from `from`; `resolve` maps every name the payload gives to the agent id,
/// for those that are agents of the session.
pub(super) fn submit(
    cfg: &RuntimeConfig,
    st: &mut Session,
    session: &str,
    from: &str,
    payload: &serde_json::Value,
    resolve: &HashMap<String, AgentId>,
) -> Vec<Output> {
    let bad = |message: String| vec![refuse(ErrorCode::BadRequest, message)];
    let req = match request::parse(payload) {
        Ok(req) => req,
        Err(e) => return bad(e),
    };
    let relay_id = req.relay_id.clone();
    let existing = st.relays.get(&relay_id);
    if let Some(r) = existing.filter(|r| r.owner != from) {
        return vec![refuse(
            ErrorCode::NotOwner,
            format!(
                "relay {relay_id} belongs to {}; only its owner may continue, finish or cancel it",
                r.owner
            ),
        )];
    }
    if let Some((end, summary)) = req.end {
        return match existing {
            None => bad(format!("no relay {relay_id} to finish")),
            Some(_) => progress::finish(st, &relay_id, end, summary),
        };
    }
    if existing.is_some_and(|r| !r.is_active()) {
        return bad(format!("relay {relay_id} has ended"));
    }
    let (named, specs) = match req.steps() {
        Ok(parsed) => parsed,
        Err(e) => return bad(e),
    };
    let first_submit = existing.is_none();
    let mut targets = existing.map(|r| r.target_order.clone()).unwrap_or_default();
    let (steps, failures) = resolve_names(&named, specs, resolve, &mut targets);
    if let Some(blocked) = blocked(cfg, st, &relay_id, from, &targets, &failures, first_submit) {
        return vec![Output::Relay(RelayReply::Blocked(blocked))];
    }
    let submit_no = existing.map(|r| r.submits).unwrap_or(0) + 1;
    let sends = sends_for(session, from, &relay_id, submit_no, &steps);
    let mut verdicts = Vec::with_capacity(sends.len());
    for send in &sends {
        match message::plan(cfg, st, send) {
            Ok(planned) => verdicts.push(planned),
            Err(out) => return out,
        }
    }
    let (new_actions, new_waits) = apply(
        st, &relay_id, from, submit_no, &targets, steps, sends, verdicts,
    );
    let dispatched = progress::advance(st, &relay_id);
    let accepted = answer(
        &st.relays[&relay_id],
        &new_actions,
        &new_waits,
        failures,
        &dispatched,
    );
    let mut out = vec![
        Output::Relay(RelayReply::Accepted(accepted.clone())),
        Output::Emit {
            event: RuntimeEvent::RelayAccepted(RelayAccepted {
                relay_id,
                owner_id: from.to_owned(),
                accepted: RelayReply::Accepted(accepted).to_value(),
            }),
            to: Vec::new(),
        },
    ];
    out.extend(dispatched);
    out
}

/// Resolves the targets and steps to agent ids, adding each new target to `targets` in the
/// order first named; a name that is no agent of the session is a failure, reported once.
fn resolve_names(
    named: &[String],
    specs: Vec<StepSpec>,
    resolve: &HashMap<String, AgentId>,
    targets: &mut Vec<AgentId>,
) -> (Vec<Resolved>, Vec<Failure>) {
    let mut failures: Vec<Failure> = Vec::new();
    let mut add = |name: &str, targets: &mut Vec<AgentId>| match resolve.get(name) {
        Some(id) => {
            if !targets.contains(id) {
                targets.push(id.clone());
            }
            Some(id.clone())
        }
        None => {
            if !failures.iter().any(|f| f.dst == name) {
                failures.push(Failure::unknown(name));
            }
            None
        }
    };
    for name in named {
        add(name, targets);
    }
    let mut steps = Vec::with_capacity(specs.len());
    for spec in specs {
        match spec {
            StepSpec::Wait {
                plan_step_id,
                targets: awaited,
            } => {
                let awaited = match awaited {
                    Some(names) => names.iter().filter_map(|n| add(n, targets)).collect(),
                    None => targets.clone(),
                };
                steps.push(Resolved::Wait {
                    plan_step_id,
                    targets: awaited,
                });
            }
            StepSpec::Act(act) => {
                if let Some(target) = add(&act.dst, targets) {
                    steps.push(Resolved::Act(act, target));
                }
            }
        }
    }
    (steps, failures)
}

/// A target busy in another owner's active relay blocks the whole submit: nothing is applied.
fn blocked(
    cfg: &RuntimeConfig,
    st: &Session,
    relay_id: &str,
    from: &str,
    targets: &[AgentId],
    failures: &[Failure],
    first_submit: bool,
) -> Option<Blocked> {
    let busy: Vec<AgentId> = targets
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
        .cloned()
        .collect();
    (!busy.is_empty()).then(|| Blocked {
        relay_id: relay_id.to_owned(),
        retry_after_ms: cfg.blocked_retry_ms,
        busy,
        action_count: 0,
        target_count: targets.len(),
        failures: failures.to_vec(),
        targets: BTreeMap::new(),
        message: first_submit
            .then(|| "a target is busy in another owner's relay; nothing was dispatched".into()),
    })
}

/// Each action as a message from the owner in the target's relay conversation, with the
/// action id `{relay}:{submit}:{n}`.
fn sends_for(
    session: &str,
    from: &str,
    relay_id: &str,
    submit_no: u32,
    steps: &[Resolved],
) -> Vec<Message> {
    steps
        .iter()
        .filter_map(|s| match s {
            Resolved::Act(act, target) => Some((act, target)),
            Resolved::Wait { .. } => None,
        })
        .enumerate()
        .map(|(n, (act, target))| Message {
            session: session.to_owned(),
            id: format!("{relay_id}:{submit_no}:{n}"),
            from: from.to_owned(),
            to: vec![target.clone()],
            kind: act.msg_kind,
            context_id: Some(context_of(relay_id, target)),
            parent_message_id: None,
            reply_to_action_id: act.reply_to.clone(),
        })
        .collect()
}

/// Applies a checked submit: the relay, its targets' tasks and conversations, and each step
/// (actions through the same bookkeeping as any message; waits queued). Returns the indexes
/// of the new actions and the new waits as [`StepRef`]s with the targets they await.
#[allow(clippy::too_many_arguments)]
fn apply(
    st: &mut Session,
    relay_id: &str,
    from: &str,
    submit_no: u32,
    targets: &[AgentId],
    steps: Vec<Resolved>,
    sends: Vec<Message>,
    verdicts: Vec<message::Planned>,
) -> (Vec<usize>, Vec<StepRef>) {
    if !st.relays.contains_key(relay_id) {
        st.add_relay(Relay {
            relay_id: relay_id.to_owned(),
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
    let relay = st.relays.get_mut(relay_id).expect("just added");
    relay.submits = submit_no;
    let mut new_targets = Vec::new();
    for t in targets {
        if !relay.targets.contains_key(t) {
            new_targets.push(t.clone());
            relay.target_order.push(t.clone());
            let task = Task {
                context_id: context_of(relay_id, t),
                task_id: format!("{relay_id}:task:{t}"),
                status: TaskStatus::Pending,
                outstanding: false,
                groups: 0,
            };
            relay.targets.insert(t.clone(), task);
        }
    }
    for t in new_targets {
        let ctx = context_of(relay_id, &t);
        if !st.conversations.contains_key(ctx.as_str()) {
            let owner_id = st.intern(from);
            st.add_conversation(Conversation {
                context_id: ctx.into(),
                owner_id,
                relay_id: Some(relay_id.into()),
                last_to: Vec::new(),
            });
        }
    }
    let mut sends = sends.into_iter().zip(verdicts);
    let (mut new_actions, mut new_waits) = (Vec::new(), Vec::new());
    for step in steps {
        let relay = st.relays.get_mut(relay_id).expect("inserted");
        let step_index = relay.steps;
        relay.steps += 1;
        match step {
            Resolved::Wait {
                plan_step_id,
                targets,
            } => {
                new_waits.push(StepRef {
                    action_id: format!("{relay_id}:{submit_no}:wait:{}", new_waits.len()),
                    action_index: step_index,
                    kind: ActionType::Wait.as_str(),
                    plan_step_id: plan_step_id.clone(),
                    expects_reply: None,
                    command: None,
                    targets: Some(targets.clone()),
                });
                relay.queue.push_back(Step::Wait {
                    plan_step_id,
                    targets,
                })
            }
            Resolved::Act(act, target) => {
                let (send, verdict) = sends.next().expect("one send per action");
                let index = relay.actions.len();
                let mut wire = act.wire;
                wire.insert("dst".into(), json!(target));
                wire.insert("action_id".into(), json!(send.id));
                wire.insert("action_index".into(), json!(step_index));
                wire.insert("plan_step_id".into(), json!(act.plan_step_id));
                if act.kind == ActionType::Message {
                    wire.insert("expects_reply".into(), json!(act.expects_reply));
                    wire.entry("kind").or_insert(json!("user"));
                }
                relay.actions.push(Action {
                    action_id: send.id.clone(),
                    action_index: step_index,
                    kind: act.kind.as_str().to_owned(),
                    plan_step_id: act.plan_step_id,
                    target,
                    wire: wire.into(),
                    expects_reply: act.expects_reply,
                    dispatched: false,
                    answered: false,
                });
                relay.queue.push_back(Step::Act(index));
                new_actions.push(index);
                // The same bookkeeping as any message: chain, conversation tip, action
                // reference, the target's pending reply target.
                message::apply(st, &send, verdict);
            }
        }
    }
    (new_actions, new_waits)
}

/// The owner's answer: per target its task, the steps of this submit it takes part in (in
/// step order, waits among them) and the group dispatched now; the waits still holding.
fn answer(
    relay: &Relay,
    new_actions: &[usize],
    new_waits: &[StepRef],
    failures: Vec<Failure>,
    dispatched: &[Output],
) -> Accepted {
    let mut per_target = BTreeMap::new();
    for t in &relay.target_order {
        let task = &relay.targets[t];
        let mut steps: Vec<StepRef> = new_actions
            .iter()
            .map(|&i| &relay.actions[i])
            .filter(|a| &a.target == t)
            .map(|a| {
                let message = a.kind == ActionType::Message.as_str();
                StepRef {
                    action_id: a.action_id.clone(),
                    action_index: a.action_index,
                    kind: if message { "message" } else { "control" },
                    plan_step_id: a.plan_step_id.clone(),
                    expects_reply: message.then_some(a.expects_reply),
                    command: (!message).then(|| a.wire.get("command").cloned()).flatten(),
                    targets: None,
                }
            })
            .collect();
        steps.extend(
            new_waits
                .iter()
                .filter(|w| w.targets.as_ref().is_some_and(|a| a.contains(t)))
                .cloned(),
        );
        steps.sort_by_key(|s| s.action_index);
        let group_id = dispatched.iter().find_map(|o| match o {
            Output::Dispatch { target, group, .. } if target == t => group
                .get("group_id")
                .and_then(|g| g.as_str())
                .map(str::to_owned),
            _ => None,
        });
        let plan = TargetPlan {
            context_id: task.context_id.clone(),
            task_id: task.task_id.clone(),
            actions: steps,
            group_id,
        };
        per_target.insert(t.clone(), plan);
    }
    let waits = relay
        .queue
        .iter()
        .filter_map(|s| match s {
            Step::Wait {
                plan_step_id,
                targets,
            } => Some(WaitRef {
                plan_step_id: plan_step_id.clone(),
                targets: targets.clone(),
            }),
            Step::Act(_) => None,
        })
        .collect();
    Accepted {
        relay_id: relay.relay_id.clone(),
        action_count: new_actions.len(),
        target_count: relay.targets.len(),
        failures,
        targets: per_target,
        waits,
    }
}
