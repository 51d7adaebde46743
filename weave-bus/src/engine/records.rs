//! The event log: every state change becomes a record `{seq, ts, envelope}` with the session's
//! next sequence number, is written in the batch's transaction, and is sent to the session's
//! watchers as an `events.record` line (released with the batch, after the commit).

use std::sync::Arc;

use codex_weave_runtime::Envelope;
use codex_weave_transport_uds::time::now_rfc3339;
use serde_json::value::RawValue;

use super::recorded::Recorded;
use super::writer::Write;
use super::{bus_envelope, Engine};
use crate::conn::ConnId;
use crate::store::StoredRecord;

/// The JSON text of a record, built the same way wherever a record is served, so that every
/// transport serves it byte for byte the same.
pub fn record_json(seq: u64, ts: &str, envelope_json: &str) -> String {
    let ts = serde_json::to_string(ts).unwrap_or_else(|_| "\"\"".into());
    format!(r#"{{"seq":{seq},"ts":{ts},"envelope":{envelope_json}}}"#)
}

pub fn stored_record_json(r: &StoredRecord) -> String {
    record_json(r.seq, &r.ts, &r.envelope)
}

impl Engine {
    /// Appends `env` to the session's log and streams it to watchers. Returns its `seq` and the
    /// shared envelope (deliveries of the record point at it).
    pub(super) fn record(&mut self, sid: &str, env: Envelope) -> (u64, Arc<Recorded>) {
        self.append(sid, Recorded::new(env))
    }

    /// [`Engine::record`] for a record already built.
    pub(super) fn append(&mut self, sid: &str, recorded: Recorded) -> (u64, Arc<Recorded>) {
        let Some(session) = self.registry.sessions.get_mut(sid) else {
            return (0, Arc::new(recorded)); // callers only record into known sessions
        };
        session.last_seq += 1;
        self.records.since_snapshot += 1;
        if !session.unindexed {
            session.unindexed = true;
            self.records.unindexed.push(sid.to_owned());
        }
        let seq = session.last_seq;
        if seq
            >= session.first_seq
                + self.cfg.limits.retain_events
                + (self.cfg.limits.retain_events / 10).max(100)
        {
            self.batch.prune.push(sid.to_owned());
        }
        let key = session.key;
        let ts = now_rfc3339();
        let mut text = Vec::with_capacity(512);
        recorded.write_record(&mut text);
        // Records are written as UTF-8 JSON.
        let text = String::from_utf8(text).unwrap_or_default();
        if !session.watchers.is_empty() {
            let json = record_json(seq, &ts, &text);
            for (conn, corr) in self.live_followers(sid, seq) {
                self.send_record(conn, sid, &corr, seq, &json);
            }
        }
        self.write_row(Write::Event {
            session: key,
            seq,
            ts,
            envelope: text,
        });
        if !self.registry.session_watchers.is_empty()
            && (recorded.env.kind.starts_with("session.")
                || recorded.env.kind.starts_with("agent."))
        {
            self.notify_session_watchers(sid);
        }
        self.metrics.inc(&self.metrics.records);
        (seq, Arc::new(recorded))
    }

    /// Records a bus-originated event of `kind` with `payload`.
    pub(super) fn record_event(
        &mut self,
        sid: &str,
        kind: &str,
        payload: serde_json::Value,
    ) -> (u64, Arc<Recorded>) {
        let mut env: Envelope = bus_envelope(kind, Some(sid));
        env.payload = Some(payload);
        self.record(sid, env)
    }

    /// One `events.record` line for a stream: `corr` = the stream request's id, `seq` = the
    /// record's, `payload` = the record's JSON as stored.
    pub(super) fn send_record(
        &mut self,
        conn: ConnId,
        sid: &str,
        corr: &str,
        seq: u64,
        json: &str,
    ) {
        let Ok(raw) = RawValue::from_string(json.to_owned()) else {
            return;
        };
        let mut env: Envelope<Box<RawValue>> = bus_envelope("events.record", Some(sid));
        env.corr = Some(corr.to_owned());
        env.seq = Some(seq);
        env.payload = Some(raw);
        self.send(conn, &env);
    }

    /// Sends the session's summary to every `sessions.stream` follower.
    fn notify_session_watchers(&mut self, sid: &str) {
        let Some(summary) = self.registry.sessions.get(sid).map(|s| s.summary()) else {
            return;
        };
        for (conn, corr) in self.registry.session_watchers.clone() {
            let mut env: Envelope = bus_envelope("sessions.changed", Some(sid));
            env.corr = Some(corr);
            env.payload = Some(summary.clone());
            self.send(conn, &env);
        }
    }
}
