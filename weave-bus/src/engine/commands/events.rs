//! `events.history`, `events.stream` and `deliveries.dead`: reading the session's log.

use codex_weave_runtime::{Envelope, ErrorCode};
use serde_json::{json, Value};

use super::{payload_bool, payload_u64, Reply};
use crate::conn::ConnId;
use crate::engine::records::stored_record_json;
use crate::engine::{Answer, Engine};
use crate::refusal::Refusal;

/// Records per `events.history` page when no `limit` is given.
pub const DEFAULT_HISTORY_LIMIT: usize = 100;

impl Engine {
    /// With `since`: the oldest `limit` records after it; without: the latest `limit`. Always in
    /// ascending order. `next` is the `since` for the following page.
    pub(super) fn events_history(&mut self, env: &Envelope) -> Reply {
        let sid = self.known_session(env)?;
        let since = payload_u64(env, "since")?;
        let limit = payload_u64(env, "limit")?
            .map(|l| l as usize)
            .unwrap_or(DEFAULT_HISTORY_LIMIT)
            .min(self.cfg.limits.max_history_page);
        let session = &self.registry.sessions[&sid];
        let (key, head) = (session.key, session.last_seq);
        let rows = self
            .read(move |s| match since {
                Some(since) => s.records_after(key, since, limit),
                None => s.latest_records(key, limit),
            })
            .map_err(|e| {
                Refusal::new(
                    ErrorCode::StoreUnavailable,
                    format!("reading the log failed: {e}"),
                )
            })?;
        let next = rows.last().map(|r| r.seq).or(since).unwrap_or(0);
        let mut json = String::from(r#"{"records":["#);
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&stored_record_json(row));
        }
        json.push_str(&format!(r#"],"next":{next},"head":{head}}}"#));
        Ok(Answer::raw(json))
    }

    /// Replays records after `since` as `events.record` lines (`corr` = this request's id).
    /// Without `follow` a final `ok` ends the stream; with `follow` the `ok` comes first and
    /// live records follow the replay with no gap and no duplicate (the engine does both in one
    /// step, so no record can fall between them).
    pub(super) fn events_stream(&mut self, conn: ConnId, env: &Envelope) {
        let reply = (|| {
            let sid = self.known_session(env)?;
            Ok::<_, Refusal>((
                sid,
                payload_u64(env, "since")?.unwrap_or(0),
                payload_bool(env, "follow")?,
            ))
        })();
        let (sid, since, follow) = match reply {
            Ok(v) => v,
            Err(refusal) => {
                return self.respond(conn, &env.id, env.session.as_deref(), Err(refusal))
            }
        };
        let head = self.registry.sessions[&sid].last_seq;
        if follow {
            let ok = Answer::payload(json!({ "since": since, "head": head, "follow": follow }));
            self.respond(conn, &env.id, Some(&sid), Ok(ok));
        }
        // The replay, then live records (or, without `follow`, the final `ok`): paced by the
        // connection's room, from the log (`engine/followers.rs`).
        self.follow(conn, &sid, &env.id, since, follow);
    }

    /// Dead letters of the session, oldest first: what could not be delivered, to whom, why.
    pub(super) fn deliveries_dead(&mut self, env: &Envelope) -> Reply {
        let sid = self.known_session(env)?;
        let limit = payload_u64(env, "limit")?
            .map(|l| l as usize)
            .unwrap_or(DEFAULT_HISTORY_LIMIT)
            .min(10_000);
        let key = self.registry.sessions[&sid].key;
        let rows = self
            .read(move |s| s.dead_letters(key, limit))
            .map_err(|e| {
                Refusal::new(
                    ErrorCode::StoreUnavailable,
                    format!("reading dead letters failed: {e}"),
                )
            })?;
        let dead: Vec<Value> = rows
            .into_iter()
            .map(|r| {
                let envelope: Value = serde_json::from_str(&r.envelope).unwrap_or(Value::Null);
                json!({
                    "delivery_id": r.id,
                    "dst": r.target,
                    "seq": r.seq,
                    "delivery_count": r.count,
                    "reason": r.reason,
                    "ts": r.ts,
                    "envelope": envelope,
                })
            })
            .collect();
        Ok(Answer::payload(json!({ "dead": dead })))
    }
}
