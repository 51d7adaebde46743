//! A recorded envelope as its deliveries share it: the payload and meta kept as the JSON text
//! the record holds. A delivery copies them into its line instead of serializing a tree of
//! values, and letting the record go frees two strings instead of that tree (under load, on
//! the engine thread, long after it was built, so every free was a cache miss).
//!
//! A delivery adds its own keys to `meta.weave`: `seq` (the record delivered) and, on a
//! redelivery, `redelivered` and `delivery_count`. Where they go in the meta's text is found once,
//! when the text is written, so that each delivery only splices.

use codex_weave_runtime::{Envelope, Status};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// JSON text, checked.
pub type Raw = Box<RawValue>;

/// `meta.weave` keys a delivery sets. They are the bus's: a sender's own values for them stay in
/// the record but are not delivered (a sender cannot mark a first delivery as redelivered).
const DELIVERY_KEYS: [&str; 3] = ["delivery_count", "redelivered", "seq"];

#[derive(Debug)]
pub struct Recorded {
    /// The envelope's fields but `payload` and `meta` (always `None` here), which are below.
    pub env: Envelope<(), ()>,
    payload: Option<Box<str>>,
    meta: Option<Box<str>>,
    weave: Splice,
}

/// A delivery's meta is `text[..at] + before + its keys + after + text[resume..]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Splice {
    at: usize,
    resume: usize,
    before: &'static str,
    after: &'static str,
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
        let payload = env.payload.take().map(|p| json_text(&p));
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
        }
    }

    /// A message's record whose sender sent no `meta`: the bus's own `meta.weave` keys
    /// (`chain`, `origin_src_name`) written directly, as the value path writes them.
    pub fn with_weave(
        env: Envelope<(), ()>,
        payload: Box<str>,
        origin: &str,
        chain: Option<(&str, u32)>,
    ) -> Recorded {
        let mut out = Vec::with_capacity(96 + origin.len());
        out.extend_from_slice(br#"{"weave":{"#);
        if let Some((id, hop)) = chain {
            out.extend_from_slice(br#""chain":{"hop":"#);
            push_int(&mut out, hop);
            out.extend_from_slice(br#","id":"#);
            push_json(&mut out, id);
            out.extend_from_slice(b"},");
        }
        out.extend_from_slice(br#""origin_src_name":"#);
        push_json(&mut out, origin);
        let at = out.len();
        out.extend_from_slice(b"}}");
        Recorded {
            env,
            payload: Some(payload),
            meta: Some(into_text(out)),
            weave: Splice {
                at,
                resume: at,
                before: ",",
                after: "",
            },
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
        self.write(
            out,
            &e.id,
            &e.ts,
            e.dst.as_deref(),
            e.topic.as_deref(),
            e.corr.as_deref(),
            None,
        );
    }

    /// The NDJSON line (without its newline) a delivery of this record is: the record with a
    /// fresh `id` and `ts`, `dst` the target, `corr` the record's id, no `topic`, `status` or
    /// `error`, and the delivery's keys in `meta.weave`.
    pub fn write_delivered(&self, out: &mut Vec<u8>, d: &Delivered<'_>) {
        self.write(
            out,
            d.id,
            d.ts,
            Some(d.target),
            None,
            Some(&self.env.id),
            Some(d),
        );
    }

    /// Writes the fields in the order encoding an [`Envelope`] writes them.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        out: &mut Vec<u8>,
        id: &str,
        ts: &str,
        dst: Option<&str>,
        topic: Option<&str>,
        corr: Option<&str>,
        delivered: Option<&Delivered<'_>>,
    ) {
        // Writing JSON into a Vec cannot fail.
        fn text(out: &mut Vec<u8>, key: &[u8], s: &str) {
            out.extend_from_slice(key);
            let _ = serde_json::to_writer(&mut *out, s);
        }
        let e = &self.env;
        out.extend_from_slice(br#"{"v":"#);
        push_int(out, e.v);
        text(out, br#","type":"#, &e.kind);
        text(out, br#","id":"#, id);
        text(out, br#","ts":"#, ts);
        text(out, br#","src":"#, &e.src);
        if let Some(dst) = dst {
            text(out, br#","dst":"#, dst);
        }
        if let Some(topic) = topic {
            text(out, br#","topic":"#, topic);
        }
        if let Some(session) = &e.session {
            text(out, br#","session":"#, session);
        }
        if let Some(seq) = e.seq {
            out.extend_from_slice(br#","seq":"#);
            push_int(out, seq);
        }
        if let Some(key) = &e.idempotency_key {
            text(out, br#","idempotency_key":"#, key);
        }
        if let Some(corr) = corr {
            text(out, br#","corr":"#, corr);
        }
        if let Some(payload) = delivered.and_then(|d| d.payload).or(self.payload()) {
            out.extend_from_slice(br#","payload":"#);
            out.extend_from_slice(payload.as_bytes());
        }
        if let Some(r) = &e.payload_ref {
            text(out, br#","payload_ref":"#, r);
        }
        if let Some(t) = &e.content_type {
            text(out, br#","content_type":"#, t);
        }
        if let Some(size) = e.size {
            out.extend_from_slice(br#","size":"#);
            push_int(out, size);
        }
        match delivered {
            Some(d) => {
                out.extend_from_slice(br#","meta":"#);
                self.write_delivery_meta(out, d.seq, d.count);
            }
            None => {
                if let Some(meta) = &self.meta {
                    out.extend_from_slice(br#","meta":"#);
                    out.extend_from_slice(meta.as_bytes());
                }
            }
        }
        // A delivery carries no response fields (a sender's are only in the record).
        let (status, error) = match delivered {
            None => (e.status, e.error.as_ref()),
            Some(_) => (None, None),
        };
        if let Some(status) = status {
            out.extend_from_slice(match status {
                Status::Ok => br#","status":"ok""#,
                Status::Error => br#","status":"error""#,
            });
        }
        if let Some(error) = error {
            out.extend_from_slice(br#","error":"#);
            let _ = serde_json::to_writer(&mut *out, error);
        }
        if let Some(ack) = &e.ack {
            out.extend_from_slice(br#","ack":"#);
            let _ = serde_json::to_writer(&mut *out, ack);
        }
        out.push(b'}');
    }

    /// Writes the meta a delivery of this record carries: the record's, with `weave.seq` set,
    /// and `weave.redelivered`, `weave.delivery_count` on a redelivery (`count` > 1).
    pub fn write_delivery_meta(&self, out: &mut Vec<u8>, seq: u64, count: u32) {
        let text = self.meta.as_deref().unwrap_or("");
        let s = self.weave;
        out.extend_from_slice(&text.as_bytes()[..s.at]);
        out.extend_from_slice(s.before.as_bytes());
        out.extend_from_slice(br#""seq":"#);
        push_int(out, seq);
        if count > 1 {
            out.extend_from_slice(br#","redelivered":true,"delivery_count":"#);
            push_int(out, count);
        }
        out.extend_from_slice(s.after.as_bytes());
        out.extend_from_slice(&text.as_bytes()[s.resume..]);
    }
}

/// JSON text of a value.
fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> Box<str> {
    let mut out = Vec::with_capacity(128);
    push_json(&mut out, value);
    into_text(out)
}

/// serde_json writes UTF-8 only.
fn into_text(out: Vec<u8>) -> Box<str> {
    String::from_utf8(out).unwrap_or_default().into_boxed_str()
}

/// The meta's JSON text and where deliveries put their keys into it. An object's members are
/// written in map order, except that in `weave` the delivery keys come last, so that a
/// delivery skips them in one piece.
fn meta_text(meta: Option<Value>) -> (Option<Box<str>>, Splice) {
    let fresh = |len| Splice {
        at: 0,
        resume: len,
        before: r#"{"weave":{"#,
        after: "}}",
    };
    let Some(meta) = meta else {
        return (None, fresh(0));
    };
    let Value::Object(members) = &meta else {
        // Not an object: deliveries carry a fresh one (as they always have).
        let text = json_text(&meta);
        let len = text.len();
        return (Some(text), fresh(len));
    };
    let mut out = Vec::with_capacity(128);
    out.push(b'{');
    let mut splice = None;
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json(&mut out, key);
        out.push(b':');
        match value {
            Value::Object(weave) if key == "weave" => splice = Some(write_weave(&mut out, weave)),
            _ => {
                let at = out.len();
                push_json(&mut out, value);
                if key == "weave" {
                    splice = Some(Splice {
                        at,
                        resume: out.len(),
                        before: "{",
                        after: "}",
                    });
                }
            }
        }
    }
    out.push(b'}');
    let splice = splice.unwrap_or(Splice {
        at: 1,
        resume: 1,
        before: r#""weave":{"#,
        after: if members.is_empty() { "}" } else { "}," },
    });
    (Some(into_text(out)), splice)
}

/// Writes a `weave` object, its delivery keys last; returns where deliveries splice theirs.
fn write_weave(out: &mut Vec<u8>, weave: &Map<String, Value>) -> Splice {
    let theirs = |key: &String| DELIVERY_KEYS.contains(&key.as_str());
    let own = weave.iter().filter(|(k, _)| !theirs(k));
    let delivery = weave.iter().filter(|(k, _)| theirs(k));
    let own_count = own.clone().count();
    out.push(b'{');
    let mut at = out.len();
    for (i, (key, value)) in own.chain(delivery).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json(out, key);
        out.push(b':');
        push_json(out, value);
        if i + 1 == own_count {
            at = out.len();
        }
    }
    let resume = out.len();
    out.push(b'}');
    Splice {
        at,
        resume,
        before: if own_count > 0 { "," } else { "" },
        after: "",
    }
}

/// Writes an integer (without `fmt`, which showed in the engine's profile).
pub fn push_int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn push_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Serializing a string or a `Value` into memory cannot fail.
    let _ = serde_json::to_writer(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;
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
