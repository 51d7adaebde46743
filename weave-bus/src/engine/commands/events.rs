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
/// Records read from the store per step of a stream's replay.
const REPLAY_PAGE: usize = 1000;

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
        let (key, head) = (
            self.registry.sessions[&sid].key,
            self.registry.sessions[&sid].last_seq,
        );
        let ok = Answer::payload(json!({ "since": since, "head": head, "follow": follow }));
        if follow {
            self.respond(conn, &env.id, Some(&sid), Ok(ok.clone()));
        }
        let mut cursor = since;
        loop {
            let rows = match self.read(move |s| s.records_after(key, cursor, REPLAY_PAGE)) {
                Ok(rows) => rows,
                Err(e) => {
                    let refusal = Refusal::new(
                        ErrorCode::StoreUnavailable,
                        format!("reading the log failed: {e}"),
                    );
                    return self.respond(conn, &env.id, Some(&sid), Err(refusal));
                }
            };
            let Some(last) = rows.last().map(|r| r.seq) else {
                break;
            };
            for row in &rows {
                let json = stored_record_json(row);
                self.send_record(conn, &sid, &env.id, row.seq, &json);
            }
            cursor = last;
        }
        if follow {
            if let (Some(s), Some(c)) = (
                self.registry.sessions.get_mut(&sid),
                self.registry.conns.get_mut(&conn),
            ) {
                s.watchers.push((conn, env.id.clone()));
                c.watching.push(sid);
            }
        } else {
            self.respond(conn, &env.id, Some(&sid), Ok(ok));
        }
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
