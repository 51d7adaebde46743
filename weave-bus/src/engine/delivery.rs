//! Delivery's IO shell around [`Inboxes`](super::inboxes::Inboxes) (the state machine that holds the queues, the
//! in-flight windows, acks, redelivery and the `max_deliver` cap): it feeds the inboxes the
//! time, checks each connection's buffer between two sends, encodes and writes the lines,
//! moves receipts, records dead letters, and writes delivery rows behind.
//!
//! A delivery's row is written at the end of the batch in its final state, so a message that is
//! queued, sent and acked within one batch costs no delivery write at all, and one sent at once
//! costs a single insert.

use std::sync::Arc;
use std::time::Instant;

use codex_weave_runtime::{AckMode, Envelope, ReceiptState, BUS_SRC};
use codex_weave_transport_uds::time::now_rfc3339;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::inboxes::{actions_for, new_delivery, Delivery, DeliveryKind, Next};
use super::receipt_rows::{delivered, receipt_ids};
use super::recorded::{Delivered, Recorded};
use super::writer::Write;
use super::{new_id, Engine};
use crate::store::DeadLetter;
use codex_weave_transport_uds::Framing;

impl Engine {
    /// Queues record `seq` (envelope `env`) of session `sid` for agent `target`.
    pub(super) fn enqueue(&mut self, sid: &str, target: &str, seq: u64, env: Arc<Recorded>) {
        let Some(session) = self.registry.sessions.get(sid) else {
            return;
        };
        let known = session.agents.contains_key(target);
        let id = self.inboxes.next_id();
        let d = new_delivery(id, sid.to_owned(), session.key, target.to_owned(), seq, env);
        self.receipts_queued(&d);
        if known {
            self.inboxes.handle_send(d);
        }
        self.batch.dirty.push(id);
        self.batch.pump.push((sid.to_owned(), target.to_owned()));
    }

    /// Sends what agents marked in this batch can take.
    pub(super) fn pump_marked(&mut self) {
        while let Some((sid, aid)) = self.batch.pump.pop() {
            self.pump(&sid, &aid);
        }
    }

    /// Sends queued deliveries to an online agent, oldest first, while its in-flight window and
    /// its connection's buffer have room.
    fn pump(&mut self, sid: &str, aid: &str) {
        let max_conn_buffer = self.cfg.limits.max_conn_buffer;
        let now = Instant::now();
        loop {
            let Some(conn_id) = self
                .registry
                .sessions
                .get(sid)
                .and_then(|s| s.agents.get(aid))
                .and_then(|a| a.conn)
            else {
                return;
            };
            let Some(conn) = self.registry.conns.get(&conn_id) else {
                return;
            };
            if !self.inboxes.window_open(sid, aid) {
                return;
            }
            // What the connection holds, waits for a commit, or has in this batch: a window of
            // 4,096 messages of 64 KiB would otherwise go into one batch (256 MiB).
            if self.unreleased(conn_id) > max_conn_buffer {
                conn.out.mark_stalled();
                return; // the writer will report `Writable` once it drains
            }
            let framing = conn.out.framing();
            let (id, first, done) = match self.inboxes.next_for(sid, aid, now) {
                None => return,
                Some(Next::GiveUp(d)) => {
                    self.dead_lettered(d, "max_deliver");
                    continue;
                }
                Some(Next::Send { id, first, done }) => (id, first, done),
            };
            let mut done = done;
            // A message kept as a stub (memory was past its budget): read back from the store.
            let cold = done.as_ref().or_else(|| self.inboxes.get(id));
            if let Some((true, key, seq)) =
                cold.map(|d| (d.envelope.is_stub(), d.session_key, d.seq))
            {
                let Some(record) = self.load_record(key, seq) else {
                    continue; // logged; it stays pending and comes again after a reconnect
                };
                match done.as_mut() {
                    Some(d) => d.envelope = record,
                    None => self.inboxes.warm(id, record),
                }
            }
            let Some(d) = done.as_ref().or_else(|| self.inboxes.get(id)) else {
                continue;
            };
            if first {
                delivered(d, &mut self.batch.receipt_rows, &mut self.batch.receipts);
            } else {
                self.metrics.inc(&self.metrics.redeliveries);
            }
            let line = delivered_line(d, framing);
            // Written: only a redelivery would need the payload again.
            self.inboxes.cool_if_over(id);
            self.batch.dirty.push(id);
            self.metrics.inc(&self.metrics.deliveries);
            self.send_encoded(conn_id, line);
        }
    }

    /// An agent acknowledged ack id `ack_id` (a message id, or an action id of a group) of a
    /// record from `sender`, when the ack names it.
    pub(super) fn acknowledge(
        &mut self,
        sid: &str,
        aid: &str,
        ack_id: &str,
        sender: Option<&str>,
    ) -> bool {
        let Some(d) = self.inboxes.handle_ack(sid, aid, ack_id, sender) else {
            return false;
        };
        self.acknowledged(sid, aid, d);
        true
    }

    /// What follows an ack: a manual ack of a message is the application's own (the agent has
    /// read it); the delivery's row goes, and the agent may take the next one.
    fn acknowledged(&mut self, sid: &str, aid: &str, d: Delivery) {
        if d.kind == DeliveryKind::Message && d.ack_mode == AckMode::Manual {
            self.advance_receipts_logged(sid, aid, receipt_ids(&d), ReceiptState::Read);
        }
        self.batch.dirty.push(d.id);
        self.batch.pump.push((sid.to_owned(), aid.to_owned()));
        self.metrics.inc(&self.metrics.acks);
    }

    /// Agent `aid` completed action `action_id` of a group agent `sender` gave it (see
    /// [`super::inboxes::Inboxes::complete_action`]). Returns whether its group was acknowledged.
    pub(super) fn complete_action(
        &mut self,
        sid: &str,
        aid: &str,
        action_id: &str,
        sender: &str,
    ) -> bool {
        let Some(d) = self
            .inboxes
            .complete_action(sid, aid, action_id, Some(sender))
        else {
            return false;
        };
        self.acknowledged(sid, aid, d);
        true
    }

    /// What was queued for agent `from` goes to agent `to` (the same agent under a new id),
    /// in its order, ahead of anything newer.
    pub(super) fn move_deliveries(&mut self, sid: &str, from: &str, to: &str) -> usize {
        let moved = self.inboxes.move_all(sid, from, to);
        self.batch.dirty.extend(&moved);
        self.batch.pump.push((sid.to_owned(), to.to_owned()));
        moved.len()
    }

    /// Gives up on pending delivery `did` (see [`Engine::dead_lettered`]).
    pub(super) fn dead_letter(&mut self, did: u64, reason: &str) {
        if let Some(d) = self.inboxes.forget(did) {
            self.dead_lettered(d, reason);
        }
    }

    /// A delivery given up: it is stored as a dead letter, and its sender (when an agent) gets
    /// a `delivery.failed` event.
    fn dead_lettered(&mut self, mut d: Delivery, reason: &str) {
        if d.envelope.is_stub() {
            // The dead letter keeps its own copy of the whole envelope.
            if let Some(record) = self.load_record(d.session_key, d.seq) {
                d.envelope = record;
            }
        }
        let did = d.id;
        self.batch.dirty.push(did);
        self.metrics.inc(&self.metrics.dead_letters);
        let ts = now_rfc3339();
        let mut envelope = Vec::with_capacity(512);
        d.envelope.write_record(&mut envelope);
        let envelope = String::from_utf8(envelope).unwrap_or_default();
        let (key, target, seq, count) = (d.session_key, d.target.clone(), d.seq, d.count);
        let why = reason.to_owned();
        self.write(move |s| {
            s.insert_dead_letter(DeadLetter {
                id: did,
                session: key,
                target: &target,
                seq,
                count,
                reason: &why,
                ts: &ts,
                envelope: &envelope,
            })
        });
        tracing::info!(delivery = did, target = %d.target, reason, "dead-lettered");
        let sender = d.envelope.env.src.clone();
        let mut payload = json!({
            "delivery_id": did,
            "message_id": d.envelope.env.id,
            "type": d.envelope.env.kind,
            "dst": d.target,
            "seq": d.seq,
            "reason": reason,
            "delivery_count": d.count,
        });
        if sender != BUS_SRC {
            payload["sender"] = Value::String(sender.clone());
        }
        let (seq, env) = self.record_failed(&d.session, &sender, payload);
        let sender_known = self
            .registry
            .sessions
            .get(&d.session)
            .is_some_and(|s| s.agents.contains_key(&sender) && sender != d.target);
        if sender != BUS_SRC && sender_known {
            self.enqueue(&d.session, &sender, seq, env);
        }
    }

    fn record_failed(&mut self, sid: &str, sender: &str, payload: Value) -> (u64, Arc<Recorded>) {
        let mut env: Envelope = super::bus_envelope("delivery.failed", Some(sid));
        if sender != BUS_SRC {
            env.dst = Some(sender.to_owned());
        }
        env.payload = Some(payload);
        self.record(sid, env)
    }

    /// Record `seq` of the session stored under `key`, read back from the store (for a
    /// delivery kept as a stub). `None`, logged, if it cannot be read.
    fn load_record(&mut self, key: i64, seq: u64) -> Option<Arc<Recorded>> {
        let rows = self.read(move |s| s.records_after(key, seq.saturating_sub(1), 1));
        let found = match rows {
            Ok(rows) => rows.into_iter().find(|r| r.seq == seq),
            Err(e) => {
                tracing::warn!(error = %e, seq, "a queued message could not be read back");
                return None;
            }
        };
        let record = found.and_then(|r| Recorded::parse_stored(&r.envelope));
        if record.is_none() {
            tracing::warn!(seq, "a queued message's record is missing or unreadable");
        }
        record.map(Arc::new)
    }

    /// Ack timeouts due at `now` (see [`Inboxes::handle_timeout`]); what they put back is sent.
    pub(super) fn fire_timers(&mut self, now: Instant) {
        let woken = self.inboxes.handle_timeout(now);
        self.batch.pump.extend(woken);
        self.pump_marked();
    }

    /// Writes each changed delivery's final state of the batch.
    pub(super) fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.batch.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for did in dirty {
            match self.inboxes.get(did) {
                Some(d) => {
                    let (key, target, seq, count) =
                        (d.session_key, d.target.clone(), d.seq, d.count);
                    let addressed = d.addressed.clone();
                    self.write_row(Write::Delivery {
                        id: did,
                        session: key,
                        target,
                        seq,
                        count,
                        addressed,
                    });
                }
                None => self.write_row(Write::Undelivery(did)),
            }
        }
    }
}

/// The line a target receives for a delivery: the recorded envelope with a fresh `id` and `ts`,
/// `corr` = the original id (what the receiver acks), `dst` = the target, an action group
/// filtered to the target's actions, and the delivery's keys in `meta.weave`.
fn delivered_line(d: &Delivery, framing: Framing) -> bytes::Bytes {
    let filtered = match d.kind {
        DeliveryKind::Action => d.envelope.payload_value().map(|mut p| {
            let mine: Vec<Value> = actions_for(&p, d.addressed()).cloned().collect();
            p["actions"] = Value::Array(mine);
            p.to_string()
        }),
        _ => None,
    };
    if framing == Framing::Ndjson {
        return delivered_ndjson(d, filtered.as_deref());
    }
    delivered_envelope(d, framing, filtered.as_deref())
}

/// [`delivered_line`] by way of the envelope (any framing).
fn delivered_envelope(d: &Delivery, framing: Framing, filtered: Option<&str>) -> bytes::Bytes {
    let raw = |text: String| RawValue::from_string(text).ok();
    let mut env = d.envelope.envelope();
    env.id = new_id();
    env.ts = now_rfc3339();
    env.dst = Some(d.target.clone());
    env.topic = None;
    env.corr = Some(d.envelope.env.id.clone());
    env.status = None;
    env.error = None;
    if let Some(filtered) = filtered {
        env.payload = raw(filtered.to_owned());
    }
    let mut meta = Vec::with_capacity(128);
    d.envelope.write_delivery_meta(&mut meta, d.seq, d.count);
    env.meta = String::from_utf8(meta).ok().and_then(raw);
    framing.encode(&env)
}

/// [`delivered_line`] as NDJSON, written directly: the bytes encoding the delivered envelope
/// gives, the record's payload and meta copied as text.
fn delivered_ndjson(d: &Delivery, filtered: Option<&str>) -> bytes::Bytes {
    let mut out = Vec::with_capacity(768);
    d.envelope.write_delivered(
        &mut out,
        &Delivered {
            id: &new_id(),
            ts: &now_rfc3339(),
            target: &d.target,
            payload: filtered,
            seq: d.seq,
            count: d.count,
        },
    );
    out.push(b'\n');
    bytes::Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The NDJSON fast path writes byte for byte what encoding the delivered envelope writes.
    /// (`recorded.rs` checks the delivered meta against the record's.)
    #[test]
    fn delivered_ndjson_is_the_encoded_envelope() {
        let metas = [
            None,
            Some(json!("not an object")),
            Some(json!({})),
            Some(json!({ "a": 1, "zz": [1, 2] })),
            Some(json!({ "weave": "not an object", "x": null })),
            Some(json!({ "weave": { "chain": { "id": "c", "hop": 2 }, "origin_src_name": "Å" } })),
            Some(
                json!({ "v": true, "weave": { "seq": 99, "redelivered": false, "zeta": 1, "a": "\n" }, "w": 0 }),
            ),
        ];
        for meta in metas {
            for count in [1, 3] {
                let mut env: Envelope =
                    Envelope::new("message.send", "m\"1".into(), "t".into(), "a");
                env.session = Some("s".into());
                env.dst = Some("b".into());
                env.idempotency_key = Some("k".into());
                env.payload = Some(json!({ "text": "hi \u{1}", "kind": "user" }));
                env.content_type = Some("text/plain".into());
                env.size = Some(5);
                // A sender's response fields stay in the record, out of deliveries.
                env.status = Some(codex_weave_runtime::Status::Error);
                env.ack = Some(codex_weave_runtime::Ack {
                    mode: Some(AckMode::Manual),
                    timeout_ms: Some(30),
                });
                env.meta = meta.clone();
                let env = Arc::new(Recorded::new(env));
                let mut d = new_delivery(7, "s".into(), 1, "b".into(), 42, env);
                d.count = count;
                let fast = delivered_ndjson(&d, None);
                // The envelope path, given the same fresh id and timestamp.
                let slow = delivered_envelope(&d, Framing::Ndjson, None);
                let (fast, slow) = (text(&fast), text(&slow));
                let expected = slow
                    .replace(&field(&slow, "id"), &field(&fast, "id"))
                    .replace(&field(&slow, "ts"), &field(&fast, "ts"));
                assert_eq!(fast, expected, "meta {meta:?}, count {count}");
            }
        }
    }

    fn text(line: &[u8]) -> String {
        String::from_utf8(line.to_vec()).expect("UTF-8")
    }

    fn field(line: &str, name: &str) -> String {
        let v: Value = serde_json::from_str(line).expect("a JSON line");
        v[name].as_str().expect("a string").to_owned()
    }
}
