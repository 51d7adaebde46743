//! One message through the runtime: checked against ownership and the loop guard without
//! changing anything (`plan`), then applied (`apply`): conversation, chain, pending reply
//! targets, and the relay progress a reply naming an action makes.

use crate::error::ErrorCode;
use crate::event::{LoopSuppressed, RuntimeEvent};
use crate::guard::{Admitted, Probe, Rule, Verdict};
use crate::ids::Id;
use crate::memory::Fresh;
use crate::model::{AgentId, Conversation, MessageKind};

use super::config::RuntimeConfig;
use super::input::Message;
use super::output::{refuse, Output, Stamp};
use super::relay::progress;
use super::session::Session;

pub(crate) struct Planned {
    context_id: Option<String>,
    /// The conversation is created by this message.
    new_conversation: bool,
    owner: Option<AgentId>,
    verdict: Verdict,
    answers: Option<String>,
}

/// Checks ownership and the loop guard for one message, without changing anything.
pub(super) fn plan(
    cfg: &RuntimeConfig,
    st: &Session,
    send: &Message,
) -> Result<Planned, Vec<Output>> {
    let referenced = send
        .reply_to_action_id
        .as_deref()
        .and_then(|a| st.guard.node(a));
    let (context_id, new_conversation, owner) = match send.kind {
        MessageKind::System => {
            return Err(vec![refuse(
                ErrorCode::Forbidden,
                "system messages come from the bus only",
            )]);
        }
        MessageKind::User | MessageKind::Control => match &send.context_id {
            Some(ctx) => match st.conversations.get(ctx.as_str()) {
                Some(conv) if *conv.owner_id != *send.from => {
                    return Err(vec![refuse(
                        ErrorCode::NotOwner,
                        format!(
                            "only {} (the owner of conversation {ctx}) may send follow-ups in it",
                            conv.owner_id
                        ),
                    )]);
                }
                Some(conv) => (Some(ctx.clone()), false, Some(conv.owner_id.to_string())),
                None => (Some(ctx.clone()), true, Some(send.from.clone())),
            },
            None => (Some(send.id.clone()), true, Some(send.from.clone())),
        },
        MessageKind::Reply => {
            let ctx = send
                .context_id
                .clone()
                .or_else(|| referenced.and_then(|r| r.conversation.as_deref().map(str::to_owned)))
                .or_else(|| {
                    st.pending_reply
                        .get(send.from.as_str())
                        .map(|c| c.to_string())
                });
            match ctx.as_ref().and_then(|c| st.conversations.get(c.as_str())) {
                Some(conv) => {
                    if *conv.owner_id == *send.from || send.to.iter().any(|t| **t != *conv.owner_id)
                    {
                        return Err(vec![refuse(
                            ErrorCode::Forbidden,
                            format!(
                                "a reply in conversation {} goes to its owner {} only",
                                conv.context_id, conv.owner_id
                            ),
                        )]);
                    }
                    (ctx, false, Some(conv.owner_id.to_string()))
                }
                None => (None, false, None),
            }
        }
    };
    let explicit_parent = send
        .parent_message_id
        .as_deref()
        .or(send.reply_to_action_id.as_deref());
    let follow_up = !new_conversation && context_id.is_some();
    let tip = context_id
        .as_ref()
        .and_then(|c| st.conversations.get(c.as_str()))
        .and_then(|c| c.last_to(&send.from))
        .map(|m| &**m);
    let probe = Probe {
        id: &send.id,
        from: &send.from,
        to: &send.to,
        new_work: send.kind == MessageKind::User,
        conversation: context_id.as_deref(),
        follow_up,
        explicit_parent,
        person: st.persons.contains(&send.from),
    };
    let verdict = st
        .guard
        .evaluate(&probe, tip, cfg.max_hops, cfg.max_ping_pong);
    let answers = explicit_parent
        .or_else(|| {
            (send.kind == MessageKind::Reply)
                .then(|| st.guard.unanswered_by(&send.from))
                .flatten()
        })
        .map(str::to_owned);
    if let Some(rule) = verdict.stop {
        let owner = owner.clone().unwrap_or_else(|| send.from.clone());
        let limit = match rule {
            Rule::MaxHops => cfg.max_hops,
            Rule::PingPong => cfg.max_ping_pong,
        };
        let event = LoopSuppressed {
            message_id: send.id.clone(),
            from: send.from.clone(),
            to: send.to.clone(),
            owner_id: owner.clone(),
            context_id: context_id.clone(),
            chain_id: verdict.chain_id(&send.id).to_owned(),
            hop: verdict.hop,
            rule: rule.as_str().to_owned(),
            limit,
        };
        return Err(vec![
            refuse(
                ErrorCode::LoopSuppressed,
                format!(
                    "stopped by the loop guard ({}: hop {} of chain {}, limit {limit}); not delivered",
                    rule.as_str(),
                    verdict.hop,
                    verdict.chain_id(&send.id)
                ),
            ),
            Output::Emit { event: RuntimeEvent::LoopSuppressed(event), to: vec![owner] },
        ]);
    }
    Ok(Planned {
        context_id,
        new_conversation,
        owner,
        verdict,
        answers,
    })
}

/// Applies a checked send: conversation, chain, pending reply targets, relay progress.
pub(super) fn apply(st: &mut Session, send: &Message, p: Planned) -> Vec<Output> {
    let id: Id = send.id.as_str().into();
    let from = st.intern(&send.from);
    let to: Vec<Id> = send.to.iter().map(|t| st.intern(t)).collect();
    // The conversation's shared id: the message's own for a conversation it starts.
    let ctx: Option<Id> = p.context_id.as_deref().map(|c| {
        if c == send.id {
            id.clone()
        } else {
            st.conversations
                .get_key_value(c)
                .map_or_else(|| c.into(), |(k, _)| k.clone())
        }
    });
    // A message starting a conversation creates it (a relay creates its targets' conversations
    // itself, with the relay id). One lookup finds or creates it.
    let owner_id = p
        .owner
        .as_deref()
        .filter(|_| p.new_conversation)
        .map(|o| st.intern(o));
    let conv = match &ctx {
        None => None,
        Some(ctx) => match st.conversations.entry(ctx.clone()) {
            hashbrown::hash_map::Entry::Occupied(e) => Some(e.into_mut()),
            hashbrown::hash_map::Entry::Vacant(e) => owner_id.map(|owner_id| {
                st.fresh.push(Fresh::Conversation(ctx.clone()));
                e.insert(Conversation {
                    context_id: ctx.clone(),
                    owner_id,
                    relay_id: None,
                    last_to: Vec::new(),
                })
            }),
        },
    };
    let new_work = send.kind == MessageKind::User;
    let mut relay_id = None;
    if let Some(conv) = conv {
        relay_id = conv.relay_id.clone();
        for t in &to {
            conv.set_last_to(t, &id);
        }
    }
    let admitted = Admitted {
        id: &id,
        from: &from,
        to: &to,
        new_work,
        person: st.persons.contains(&send.from),
        conversation: ctx.as_ref(),
        relay_id,
    };
    st.guard.commit(&admitted, &p.verdict, &mut st.fresh);
    if new_work {
        // Work given in a conversation: that is where the receiver's replies go now, not to
        // whoever gave it work before.
        if let Some(ctx) = &ctx {
            for t in &to {
                st.pending_reply.insert(t.clone(), ctx.clone());
            }
        }
    }
    let mut out = vec![Output::Stamp(Stamp {
        message_id: send.id.clone(),
        chain_id: p.verdict.chain_id(&send.id).to_owned(),
        context_id: p.context_id,
        owner_id: p.owner,
        hop: p.verdict.hop,
        answers: p.answers,
    })];
    if send.kind == MessageKind::Reply {
        if let Some(action_id) = &send.reply_to_action_id {
            let relay = st
                .guard
                .node(action_id)
                .and_then(|a| a.relay_id.as_deref().map(str::to_owned));
            if let Some(relay_id) = relay {
                out.extend(progress::answered(st, &relay_id, &send.from, action_id));
            }
        }
    }
    out
}
