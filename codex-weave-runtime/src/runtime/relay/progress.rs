//! A relay's progress after its steps were accepted: what the plan allows is dispatched
//! (segments up to the first unsatisfied wait), targets answer, tasks move (running, blocked,
//! ready, done), and the relay ends.

use serde_json::{json, Value};

use crate::event::{RelayDone, RuntimeEvent, TaskDone, TaskUpdated};
use crate::model::{AgentId, Relay, RelayStatus, Step, TaskStatus};
use crate::runtime::output::Output;
use crate::runtime::session::Session;

use super::reply::{Ended, RelayReply};
use super::request::End;

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
pub(super) fn finish(
    st: &mut Session,
    relay_id: &str,
    end: End,
    summary: Option<String>,
) -> Vec<Output> {
    let relay = st.relays.get_mut(relay_id).expect("checked by caller");
    let ended = |status, dropped_actions| {
        let ended = Ended {
            relay_id: relay_id.to_owned(),
            dropped_actions,
        };
        Output::Relay(match status {
            RelayStatus::Cancelled => RelayReply::Cancelled(ended),
            _ => RelayReply::Done(ended),
        })
    };
    if !relay.is_active() {
        return vec![ended(relay.status, None)];
    }
    let (status, word) = match end {
        End::Done => (RelayStatus::Done, "done"),
        End::Cancelled => (RelayStatus::Cancelled, "cancelled"),
    };
    relay.status = status;
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
            status: word.to_owned(),
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
    out.insert(0, ended(status, Some(dropped)));
    out
}
