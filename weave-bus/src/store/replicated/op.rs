//! What a transaction changed, as the log carries it: one [`Op`] per mutating call of the store
//! seam, applied to a mirror in the same order. Local matters (the search index, the runtime's
//! snapshot, checkpoints) are not carried: each mirror keeps its own.

use serde::{Deserialize, Serialize};

use crate::store::backend::{Backend, DeadLetter, IdempotencyRef, IdempotencyRow, StoreResult};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Event {
        session: i64,
        seq: u64,
        ts: String,
        envelope: String,
    },
    Delivery {
        id: u64,
        session: i64,
        target: String,
        seq: u64,
        count: u32,
        addressed: Option<String>,
    },
    Undelivery {
        id: u64,
    },
    Receipt {
        session: i64,
        message: String,
        agent: String,
        seq: u64,
        state: i64,
    },
    Idempotency {
        entries: Vec<IdempotencyRow>,
    },
    PruneEvents {
        session: i64,
        through: u64,
    },
    DeadLetter {
        id: u64,
        session: i64,
        target: String,
        seq: u64,
        count: u32,
        reason: String,
        ts: String,
        envelope: String,
    },
    InsertSession {
        key: i64,
        id: String,
        name: Option<String>,
        created_at: String,
    },
    CloseSession {
        key: i64,
        at: String,
    },
    UpsertAgent {
        session: i64,
        id: String,
        name: Option<String>,
        kind: String,
    },
    AgentInstance {
        session: i64,
        id: String,
        instance: Option<String>,
    },
    AgentSecret {
        session: i64,
        id: String,
        secret: String,
    },
    AgentPosition {
        session: i64,
        id: String,
        position: Option<i64>,
    },
    DeleteAgent {
        session: i64,
        id: String,
    },
    ForgetIdempotencyThrough {
        id: i64,
    },
}

impl Op {
    pub fn dead_letter(d: &DeadLetter<'_>) -> Op {
        Op::DeadLetter {
            id: d.id,
            session: d.session,
            target: d.target.to_owned(),
            seq: d.seq,
            count: d.count,
            reason: d.reason.to_owned(),
            ts: d.ts.to_owned(),
            envelope: d.envelope.to_owned(),
        }
    }

    pub fn idempotency(entries: &[IdempotencyRef<'_>]) -> Op {
        Op::Idempotency {
            entries: entries
                .iter()
                .map(|e| IdempotencyRow {
                    id: e.id,
                    session: e.session.to_owned(),
                    src: e.src.to_owned(),
                    key: e.key.to_owned(),
                    response: e.response.to_owned(),
                    created_ms: e.created_ms,
                })
                .collect(),
        }
    }
}

/// Applies `ops`, in order, to `store`, in its open transaction.
pub fn apply(store: &dyn Backend, ops: &[Op]) -> StoreResult<()> {
    let mut rows = store.rows()?;
    for op in ops {
        match op {
            Op::Event {
                session,
                seq,
                ts,
                envelope,
            } => rows.insert_event(*session, *seq, ts, envelope)?,
            Op::Delivery {
                id,
                session,
                target,
                seq,
                count,
                addressed,
            } => rows.put_delivery(*id, *session, target, *seq, *count, addressed.as_deref())?,
            Op::Undelivery { id } => rows.delete_delivery(*id)?,
            Op::Receipt {
                session,
                message,
                agent,
                seq,
                state,
            } => rows.put_receipt(*session, message, agent, *seq, *state)?,
            Op::Idempotency { entries } => {
                let refs: Vec<IdempotencyRef<'_>> =
                    entries.iter().map(IdempotencyRow::as_ref).collect();
                rows.put_idempotency(&refs)?
            }
            Op::PruneEvents { session, through } => store.prune_events(*session, *through)?,
            Op::DeadLetter {
                id,
                session,
                target,
                seq,
                count,
                reason,
                ts,
                envelope,
            } => store.insert_dead_letter(DeadLetter {
                id: *id,
                session: *session,
                target,
                seq: *seq,
                count: *count,
                reason,
                ts,
                envelope,
            })?,
            Op::InsertSession {
                key,
                id,
                name,
                created_at,
            } => store.insert_session(*key, id, name.as_deref(), created_at)?,
            Op::CloseSession { key, at } => store.close_session(*key, at)?,
            Op::UpsertAgent {
                session,
                id,
                name,
                kind,
            } => store.upsert_agent(*session, id, name.as_deref(), kind)?,
            Op::AgentInstance {
                session,
                id,
                instance,
            } => store.set_agent_instance(*session, id, instance.as_deref())?,
            Op::AgentSecret {
                session,
                id,
                secret,
            } => store.set_agent_secret(*session, id, secret)?,
            Op::AgentPosition {
                session,
                id,
                position,
            } => store.set_agent_position(*session, id, *position)?,
            Op::DeleteAgent { session, id } => store.delete_agent(*session, id)?,
            Op::ForgetIdempotencyThrough { id } => store.delete_idempotency_through(*id)?,
        }
    }
    Ok(())
}
