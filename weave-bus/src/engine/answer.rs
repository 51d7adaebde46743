//! What the bus writes back: the `ok` answer of a request, responses (an `ok` written directly
//! as its NDJSON line, the hot path), and the envelopes the bus originates.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use codex_weave_runtime::{Envelope, ErrorBody, Status, BUS_SRC};
use codex_weave_transport_uds::time::now_rfc3339;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::refusal::Refusal;

/// An `ok` answer: the response's top-level `session` (if any) and `payload`, kept as JSON text
/// so that stored records are served byte for byte as they were written.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Answer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Box<RawValue>>,
    /// Not remembered for idempotency: a retry should be decided afresh (a blocked relay).
    #[serde(skip)]
    pub transient: bool,
}

impl Answer {
    pub fn payload(payload: Value) -> Self {
        Self {
            session: None,
            payload: serde_json::value::to_raw_value(&payload).ok(),
            transient: false,
        }
    }

    /// The answer `value` serializes to (written once, not parsed back).
    pub fn of<T: Serialize>(value: &T) -> Self {
        Self {
            session: None,
            payload: serde_json::value::to_raw_value(value).ok(),
            transient: false,
        }
    }

    pub fn raw(json: String) -> Self {
        Self {
            session: None,
            payload: RawValue::from_string(json).ok(),
            transient: false,
        }
    }
}

pub type Reply = Result<Answer, Refusal>;

/// A response: `type: "response"`, `corr` = the request's id, `status`, and the answer or the
/// error.
pub fn response(corr: &str, session: Option<&str>, reply: Reply) -> Envelope<Box<RawValue>> {
    let mut env: Envelope<Box<RawValue>> = bus_envelope("response", session);
    if !corr.is_empty() {
        env.corr = Some(corr.to_owned());
    }
    match reply {
        Ok(answer) => {
            env.status = Some(Status::Ok);
            if answer.session.is_some() {
                env.session = answer.session;
            }
            env.payload = answer.payload;
        }
        Err(refusal) => {
            env.status = Some(Status::Error);
            env.error = Some(ErrorBody::new(refusal.code, refusal.message));
        }
    }
    env
}

/// An `ok` response as an NDJSON line, written directly: the same bytes as encoding
/// [`response`] (one per request, so it is worth skipping the envelope's allocations).
pub(super) fn ok_line(corr: &str, session: Option<&str>, payload: Option<&RawValue>) -> Bytes {
    crate::json_text::response::ok_line(&new_id(), &now_rfc3339(), corr, session, payload)
}

/// A new envelope originated by the bus (`src: "weave"`).
pub fn bus_envelope<P>(kind: &str, session: Option<&str>) -> Envelope<P> {
    let mut env = Envelope::new(kind, new_id(), now_rfc3339(), BUS_SRC);
    env.session = session.map(str::to_owned);
    env
}

pub fn new_id() -> String {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::new_v4()
        .hyphenated()
        .encode_lower(&mut text)
        .to_owned()
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use codex_weave_transport_uds::Framing;

    /// `ok_line` writes byte for byte what encoding the response envelope writes.
    #[test]
    fn ok_line_is_the_encoded_response() {
        let payload = || RawValue::from_string(r#"{"dst":"b","id":"m\"1","seq":7}"#.into()).ok();
        for (corr, session, payload) in [
            ("req-1", Some("s-1"), payload()),
            ("", None, None),
            ("q\"uote\\d\n", Some("sé\u{1}"), payload()),
            ("r", None, payload()),
        ] {
            let fast = ok_line(corr, session, payload.as_deref());
            let line: Value = serde_json::from_slice(&fast).expect("a JSON line");
            let answer = Answer {
                session: None,
                payload,
                transient: false,
            };
            let mut env = response(corr, session, Ok(answer));
            // The same fresh id and timestamp.
            env.id = line["id"].as_str().expect("id").to_owned();
            env.ts = line["ts"].as_str().expect("ts").to_owned();
            assert_eq!(fast, Framing::Ndjson.encode(&env));
        }
    }
}
