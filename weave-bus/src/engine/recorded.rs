//! A recorded envelope as its deliveries share it: the payload and meta kept as the JSON text
//! the record holds. A delivery copies them into its line instead of serializing a tree of
//! values, and letting the record go frees two strings instead of that tree (under load, on
//! the engine thread, long after it was built, so every free was a cache miss).
//! The texts are written by [`crate::json_text`].

use codex_weave_runtime::Envelope;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::json_text::envelope::{write_envelope, Line, Meta};
use crate::json_text::meta::{meta_text, weave_meta, Splice};
use crate::json_text::text_of;

/// JSON text, checked.
pub type Raw = Box<RawValue>;

#[derive(Debug)]
pub struct Recorded {
    /// The envelope's fields but `payload` and `meta` (always `None` here), which are below.
    pub env: Envelope<(), ()>,
    payload: Option<Box<str>>,
    meta: Option<Box<str>>,
    weave: Splice,
    /// Only the fields that find and acknowledge a delivery are kept (`env`); the payload and
    /// meta are read from the store when it is sent (see `inboxes/mod.rs`, hot and cold).
    stub: bool,
}

/// What a line of a record says where a delivery differs from the record itself.
pub struct Delivered<'a> {
    pub id: &'a str,
    pub ts: &'a str,
    pub target: &'a str,
    /// The payload, when the delivery carries only part of it (an action group's).
    pub payload: Option<&'a str>,
    pub seq: u64,
    pub count: u32,
}

impl Recorded {
    pub fn new(mut env: Envelope) -> Recorded {
        let payload = env.payload.take().map(|p| text_of(&p));
        Recorded::with_payload(env.map(|_| (), |m| m), payload)
    }

    /// A record whose payload is already JSON text (a message's, kept as it came in: compact
    /// enough to sit on one line).
    pub fn with_payload(mut env: Envelope<(), Value>, payload: Option<Box<str>>) -> Recorded {
        let (meta, weave) = meta_text(env.meta.take());
        Recorded {
            env: env.map(|()| (), |_| ()),
            payload,
            meta,
            weave,
            stub: false,
        }
    }

    /// A record as the store keeps it (its envelope's JSON text), the payload's text kept byte
    /// for byte.
    pub fn parse_stored(text: &str) -> Option<Recorded> {
        let env: Envelope<Raw, Value> = serde_json::from_str(text).ok()?;
        let payload = env.payload.as_ref().map(|p| p.get().into());
        Some(Recorded::with_payload(env.map(|_| (), |m| m), payload))
    }

    /// The same record without its payload and meta: what a queued delivery keeps in memory
    /// past the budget.
    pub fn stub(&self) -> Recorded {
        Recorded {
            env: self.env.clone(),
            payload: None,
            meta: None,
            weave: self.weave,
            stub: true,
        }
    }

    pub fn is_stub(&self) -> bool {
        self.stub
    }

    /// Bytes its payload and meta take (what making it a stub frees).
    pub fn heavy_bytes(&self) -> usize {
        self.payload.as_ref().map_or(0, |p| p.len()) + self.meta.as_ref().map_or(0, |m| m.len())
    }

    /// A message's record whose sender sent no `meta`: the bus's own `meta.weave` keys
    /// (`chain`, `origin_src_name`) written directly, as the value path writes them.
    pub fn with_weave(
        env: Envelope<(), ()>,
        payload: Box<str>,
        origin: &str,
        chain: Option<(&str, u32)>,
    ) -> Recorded {
        let (meta, weave) = weave_meta(origin, chain);
        Recorded {
            env,
            payload: Some(payload),
            meta: Some(meta),
            weave,
            stub: false,
        }
    }

    /// The payload's JSON text.
    pub fn payload(&self) -> Option<&str> {
        self.payload.as_deref()
    }

    /// The payload as a value (for the rare deliveries that filter it: action groups).
    pub fn payload_value(&self) -> Option<Value> {
        serde_json::from_str(self.payload()?).ok()
    }

    /// The record's envelope with payload and meta as checked JSON (off the hot path: dead
    /// letters, binary frames, lines sent as they are).
    pub fn envelope(&self) -> Envelope<Raw, Raw> {
        let null = || RawValue::NULL.to_owned();
        let raw = |text: &str| RawValue::from_string(text.to_owned()).unwrap_or_else(|_| null());
        let mut env = self.env.clone().map(|()| null(), |()| null());
        env.payload = self.payload().map(raw);
        env.meta = self.meta.as_deref().map(raw);
        env
    }

    /// The record's JSON text: what encoding its envelope writes (`meta.weave`'s delivery keys,
    /// if a sender set any, come last in it).
    pub fn write_record(&self, out: &mut Vec<u8>) {
        let e = &self.env;
        let line = Line {
            id: &e.id,
            ts: &e.ts,
            dst: e.dst.as_deref(),
            topic: e.topic.as_deref(),
            corr: e.corr.as_deref(),
            payload: self.payload(),
            meta: Meta::Record(self.meta.as_deref()),
        };
        write_envelope(out, e, &line);
    }

    /// The NDJSON line (without its newline) a delivery of this record is: the record with a
    /// fresh `id` and `ts`, `dst` the target, `corr` the record's id, no `topic`, `status` or
    /// `error`, and the delivery's keys in `meta.weave`.
    pub fn write_delivered(&self, out: &mut Vec<u8>, d: &Delivered<'_>) {
        let line = Line {
            id: d.id,
            ts: d.ts,
            dst: Some(d.target),
            topic: None,
            corr: Some(&self.env.id),
            payload: d.payload.or(self.payload()),
            meta: Meta::Delivery {
                text: self.meta.as_deref(),
                splice: self.weave,
                seq: d.seq,
                count: d.count,
            },
        };
        write_envelope(out, &self.env, &line);
    }

    /// Writes the meta a delivery of this record carries (see [`Splice::write_delivery_meta`]).
    pub fn write_delivery_meta(&self, out: &mut Vec<u8>, seq: u64, count: u32) {
        self.weave
            .write_delivery_meta(out, self.meta.as_deref(), seq, count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_text::meta::DELIVERY_KEYS;
    use serde_json::json;

    /// The meta a delivery carries, by way of values: the record's meta (an object, else a
    /// fresh one) with `weave` (an object, else a fresh one) given the delivery's keys in place
    /// of any the sender set.
    fn merged(meta: Option<&Value>, seq: u64, count: u32) -> Value {
        let mut meta = meta
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        let weave = &mut meta["weave"];
        match weave.as_object_mut() {
            Some(w) => w.retain(|k, _| !DELIVERY_KEYS.contains(&k.as_str())),
            None => *weave = json!({}),
        }
        weave["seq"] = json!(seq);
        if count > 1 {
            weave["redelivered"] = Value::Bool(true);
            weave["delivery_count"] = json!(count);
        }
        meta
    }

    #[test]
    fn a_delivery_meta_is_the_record_meta_with_the_delivery_keys_set() {
        let metas = [
            None,
            Some(json!(null)),
            Some(json!("text")),
            Some(json!([1, {"weave": 2}])),
            Some(json!({})),
            Some(json!({"a": 1})),
            Some(json!({"a": 1, "z": [true]})),
            Some(json!({"weave": 7, "a": {"b": "c"}})),
            Some(json!({"weave": null})),
            Some(json!({"weave": {}})),
            Some(json!({"weave": {"seq": 99}})),
            Some(json!({"weave": {"seq": 99, "redelivered": false, "delivery_count": "x"}})),
            Some(json!({"weave": {"chain": {"id": "c", "hop": 2}, "origin_src_name": "é\"q"}})),
            Some(json!({"a": 1, "weave": {"seq": 1, "zeta": 2, "alpha": 0}, "zz": "\n"})),
        ];
        for meta in metas {
            let env = Envelope::<Value> {
                meta: meta.clone(),
                ..Default::default()
            };
            let recorded = Recorded::new(env);
            // The record keeps its meta as it was.
            let kept = recorded
                .meta
                .as_deref()
                .map(|m| serde_json::from_str::<Value>(m).expect("the record's meta is JSON"));
            assert_eq!(kept, meta, "record meta of {meta:?}");
            for count in [1, 2, 17] {
                let mut out = Vec::new();
                recorded.write_delivery_meta(&mut out, 42, count);
                let got: Value = serde_json::from_slice(&out)
                    .unwrap_or_else(|e| panic!("{meta:?}: {e}: {}", String::from_utf8_lossy(&out)));
                assert_eq!(
                    got,
                    merged(meta.as_ref(), 42, count),
                    "delivery meta of {meta:?}"
                );
            }
        }
    }

    /// The record's text is what encoding its envelope writes, byte for byte (the same value
    /// when a sender put delivery keys in `meta.weave`: those come last).
    #[test]
    fn a_record_is_written_as_its_envelope_encodes() {
        let full = json!({
            "v": 1, "type": "message.send", "id": "i\"d", "ts": "t", "src": "s", "dst": "d",
            "topic": "agent.d.inbox", "session": "S", "seq": 3, "idempotency_key": "k",
            "corr": "c", "payload": {"text": "hi\u{1}", "z": [1, 2.5, null]}, "payload_ref": "r",
            "content_type": "text/plain", "size": 2,
            "meta": {"a": {"b": 1}, "weave": {"chain": {"hop": 1, "id": "x"}}, "zz": 0},
            "status": "error", "error": {"code": "bad_request", "message": "m", "detail": [1]},
            "ack": {"mode": "manual", "timeout_ms": 50}
        });
        let bare = json!({"v": 1, "type": "agent.online", "id": "", "ts": "", "src": "weave"});
        let reserved = json!({
            "v": 1, "type": "message.send", "id": "i", "ts": "t", "src": "s", "status": "ok",
            "meta": {"weave": {"seq": 5, "a": 1}}, "payload": "just text"
        });
        for (value, byte_for_byte) in [(full, true), (bare, true), (reserved, false)] {
            let env: Envelope = serde_json::from_value(value.clone()).expect("an envelope");
            let encoded = serde_json::to_vec(&env).expect("encodes");
            let mut written = Vec::new();
            Recorded::new(env).write_record(&mut written);
            if byte_for_byte {
                assert_eq!(
                    String::from_utf8_lossy(&written),
                    String::from_utf8_lossy(&encoded)
                );
            }
            let again: Value = serde_json::from_slice(&written).expect("JSON");
            assert_eq!(again, value);
        }
    }

    /// The bus's own meta, written directly, is what writing the value gives.
    #[test]
    fn the_bus_meta_written_directly_is_the_value_written() {
        for (origin, chain) in [("A", Some(("m\"1", 3))), ("é", None), ("", Some(("c", 1)))] {
            let mut weave = json!({ "origin_src_name": origin });
            if let Some((id, hop)) = chain {
                weave["chain"] = json!({ "id": id, "hop": hop });
            }
            let env = Envelope::<Value> {
                meta: Some(json!({ "weave": weave })),
                ..Default::default()
            };
            let by_value = Recorded::new(env);
            let direct = Recorded::with_weave(Envelope::default(), "{}".into(), origin, chain);
            assert_eq!(direct.meta, by_value.meta);
            assert_eq!(direct.weave, by_value.weave);
        }
    }

    #[test]
    fn payload_is_kept_as_its_json_text() {
        let env = Envelope::<Value> {
            payload: Some(json!({"text": "hi", "n": [1, 2.5]})),
            ..Default::default()
        };
        let recorded = Recorded::new(env);
        assert_eq!(
            recorded.payload_value(),
            Some(json!({"text": "hi", "n": [1, 2.5]}))
        );
    }
}
