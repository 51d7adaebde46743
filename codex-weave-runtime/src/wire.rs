//! The wire v1 envelope: one JSON object per line on the socket, and the body of every record in
//! the event log. Absent optional fields are omitted on output; unknown fields are ignored on
//! input so that newer clients never break an older bus.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ErrorCode;

/// The only protocol version this crate speaks.
pub const WIRE_VERSION: u32 = 1;

/// `src` of every line the bus itself originates (notices, events, task updates).
pub const BUS_SRC: &str = "weave";

/// One protocol line. `P` and `M` are the payload's and meta's types: [`Value`] for general use;
/// a pre-encoded `Box<RawValue>` lets a transport embed stored JSON byte for byte without
/// re-parsing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "P: Deserialize<'de>, M: Deserialize<'de>"))]
pub struct Envelope<P = Value, M = Value> {
    /// Protocol version; a missing `v` decodes as 0 and is refused as unsupported.
    #[serde(default)]
    pub v: u32,
    /// The request, response or event type, e.g. `message.send`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Unique id of this line (clients use UUIDv4).
    #[serde(default)]
    pub id: String,
    /// RFC 3339 timestamp set by the writer of the line.
    #[serde(default)]
    pub ts: String,
    /// Sender: an agent id, a client id, or [`BUS_SRC`].
    #[serde(default)]
    pub src: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// On a response: the `id` of the request it answers. On a delivery: the original message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<P>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_ref: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<M>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<Ack>,
}

impl<P, M> Default for Envelope<P, M> {
    fn default() -> Self {
        Self {
            v: WIRE_VERSION,
            kind: String::new(),
            id: String::new(),
            ts: String::new(),
            src: String::new(),
            dst: None,
            topic: None,
            session: None,
            seq: None,
            idempotency_key: None,
            corr: None,
            payload: None,
            payload_ref: None,
            content_type: None,
            size: None,
            meta: None,
            status: None,
            error: None,
            ack: None,
        }
    }
}

impl<P, M> Envelope<P, M> {
    /// A new line of `kind` with the given id, timestamp and sender.
    pub fn new(kind: impl Into<String>, id: String, ts: String, src: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            id,
            ts,
            src: src.into(),
            ..Self::default()
        }
    }

    /// The same line with its payload and meta converted (e.g. into their JSON text).
    pub fn map<Q, N>(
        self,
        payload: impl FnOnce(P) -> Q,
        meta: impl FnOnce(M) -> N,
    ) -> Envelope<Q, N> {
        Envelope {
            v: self.v,
            kind: self.kind,
            id: self.id,
            ts: self.ts,
            src: self.src,
            dst: self.dst,
            topic: self.topic,
            session: self.session,
            seq: self.seq,
            idempotency_key: self.idempotency_key,
            corr: self.corr,
            payload: self.payload.map(payload),
            payload_ref: self.payload_ref,
            content_type: self.content_type,
            size: self.size,
            meta: self.meta.map(meta),
            status: self.status,
            error: self.error,
            ack: self.ack,
        }
    }

    /// `true` for a response line: it carries a `status`.
    pub fn is_response(&self) -> bool {
        self.status.is_some()
    }

    /// The error code of an error response, if any.
    pub fn error_code(&self) -> Option<&str> {
        self.error.as_ref().map(|e| e.code.as_str())
    }
}

/// A request whose payload is kept as the JSON text it arrived in (checked as strictly as
/// parsing it into a [`Value`] would be: see [`check_json`]).
pub type RawRequest = Envelope<Box<serde_json::value::RawValue>>;

impl<M> Envelope<Value, M> {
    /// The same line with its payload as JSON text, written compactly: a request as the bus
    /// reads it (see [`RawRequest`]).
    pub fn into_raw_payload(self) -> Envelope<Box<serde_json::value::RawValue>, M> {
        use serde_json::value::{to_raw_value, RawValue};
        // A `Value` always serializes.
        self.map(
            |p| to_raw_value(&p).unwrap_or_else(|_| RawValue::NULL.to_owned()),
            |m| m,
        )
    }
}

/// Checks that `json` (already known to be well-formed JSON text) is what a [`Value`] accepts:
/// every number in range, nesting within serde_json's limit. Walks it without building it.
pub fn check_json(json: &str) -> Result<(), serde_json::Error> {
    serde_json::from_str::<Walk>(json).map(|_| ())
}

/// Accepts any JSON value, parsing every part of it the way [`Value`] does, keeping nothing.
struct Walk;

impl<'de> Deserialize<'de> for Walk {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Walk)
    }
}

impl<'de> serde::de::Visitor<'de> for Walk {
    type Value = Walk;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Walk, E> {
        Ok(Walk)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Walk, E> {
        Ok(Walk)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Walk, E> {
        Ok(Walk)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Walk, E> {
        Ok(Walk)
    }

    fn visit_str<E>(self, _: &str) -> Result<Walk, E> {
        Ok(Walk)
    }

    fn visit_unit<E>(self) -> Result<Walk, E> {
        Ok(Walk)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Walk, A::Error> {
        while seq.next_element::<Walk>()?.is_some() {}
        Ok(Walk)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Walk, A::Error> {
        while map.next_entry::<Walk, Walk>()?.is_some() {}
        Ok(Walk)
    }
}

/// `status` of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Error,
}

/// `error` of an error response. `code` is one of [`ErrorCode`]'s strings; it stays a string
/// on the wire type so that a client can read codes newer than it knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code: code.as_str().to_owned(),
            message: message.into(),
            detail: None,
        }
    }
}

/// The `ack` block of a `message.send`: how the receiver acknowledges it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<AckMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// Acknowledgement mode. `auto`: the receiving client acks on receipt; `manual`: the receiving
/// application acks when it has handled the message; `none`: never acked, never redelivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    #[default]
    Auto,
    Manual,
    None,
}

impl AckMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::Auto => "auto",
            AckMode::Manual => "manual",
            AckMode::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(AckMode::Auto),
            "manual" => Some(AckMode::Manual),
            "none" => Some(AckMode::None),
            _ => None,
        }
    }
}

/// One entry of a session's event log: every observable change, numbered per session.
/// The same record is served by `events.history`, `events.stream` and (later) HTTP and SSE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "P: Deserialize<'de>"))]
pub struct Record<P = Value> {
    /// Per-session sequence number, starting at 1, strictly increasing, never reused.
    pub seq: u64,
    /// RFC 3339 time the bus committed the record.
    pub ts: String,
    pub envelope: Envelope<P>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Found by the `envelope` fuzz target: a long integer literal parsed to one float and,
    /// written back, parsed to its neighbour, so a payload number could change by a unit in the
    /// last place each time the bus re-encoded it. Correctly rounded parsing keeps it.
    #[test]
    fn a_payload_number_survives_encoding_and_parsing_unchanged() {
        let line =
            br#"{"payload":[[[888888888888888888888888888888888888888888888888888188888888888]]]}"#;
        let env: Envelope = serde_json::from_slice(line).unwrap();
        let again: Envelope = serde_json::from_slice(&serde_json::to_vec(&env).unwrap()).unwrap();
        assert_eq!(again.payload, env.payload);
    }

    /// A payload kept as text is refused exactly when parsing it into a `Value` fails.
    #[test]
    fn check_json_accepts_what_a_value_accepts() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        for json in [
            "1",
            "-0",
            "1e308",
            "1e309",
            "-1e400",
            "18446744073709551616",
            "1.5e-400",
            "\"a\\u00e9\"",
            r#"{"a":[1,{"b":null}],"c":true}"#,
            r#"{"a":1,"a":2}"#,
            "[[[[1]]]]",
            &deep,
        ] {
            assert_eq!(
                check_json(json).is_ok(),
                serde_json::from_str::<Value>(json).is_ok(),
                "{json}"
            );
        }
    }

    #[test]
    fn absent_options_are_omitted_and_unknown_fields_tolerated() {
        let line = r#"{"v":1,"type":"session.list","id":"a","ts":"t","src":"x","future":42}"#;
        let env: Envelope = serde_json::from_str(line).unwrap();
        assert_eq!(env.kind, "session.list");
        assert_eq!(
            serde_json::to_value(&env).unwrap(),
            json!({"v":1,"type":"session.list","id":"a","ts":"t","src":"x"})
        );
    }

    #[test]
    fn every_field_round_trips() {
        let value = json!({
            "v": 1, "type": "message.send", "id": "i", "ts": "t", "src": "s", "dst": "d",
            "topic": "agent.d.inbox", "session": "S", "seq": 3, "idempotency_key": "k",
            "corr": "c", "payload": {"text": "hi"}, "payload_ref": "r",
            "content_type": "text/plain", "size": 2, "meta": {"weave": {}},
            "status": "error", "error": {"code": "bad_request", "message": "m", "detail": [1]},
            "ack": {"mode": "manual", "timeout_ms": 50}
        });
        let env: Envelope = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(serde_json::to_value(&env).unwrap(), value);
    }
}
