//! The wire v1 envelope in protobuf, for the socket's binary framing (`docs/weave/weave.proto`).
//!
//! The fields and their meaning are the JSON envelope's, one for one. The three values that are
//! free-form JSON on the wire (`payload`, `meta`, `error.detail`) travel as their JSON text in a
//! `bytes` field: a protobuf client gets the same data a JSON client gets, and the bus stores
//! and serves records byte for byte whatever the framing.

use serde::Serialize;
use serde_json::Value;

use crate::wire::{Ack, AckMode, Envelope, ErrorBody, Status};

/// `weave.v1.Envelope`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PbEnvelope {
    #[prost(uint32, tag = "1")]
    pub v: u32,
    #[prost(string, tag = "2")]
    pub r#type: String,
    #[prost(string, tag = "3")]
    pub id: String,
    #[prost(string, tag = "4")]
    pub ts: String,
    #[prost(string, tag = "5")]
    pub src: String,
    #[prost(string, optional, tag = "6")]
    pub dst: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub topic: Option<String>,
    #[prost(string, optional, tag = "8")]
    pub session: Option<String>,
    #[prost(uint64, optional, tag = "9")]
    pub seq: Option<u64>,
    #[prost(string, optional, tag = "10")]
    pub idempotency_key: Option<String>,
    #[prost(string, optional, tag = "11")]
    pub corr: Option<String>,
    /// The payload's JSON text.
    #[prost(bytes = "vec", optional, tag = "12")]
    pub payload_json: Option<Vec<u8>>,
    #[prost(string, optional, tag = "13")]
    pub payload_ref: Option<String>,
    #[prost(string, optional, tag = "14")]
    pub content_type: Option<String>,
    #[prost(uint64, optional, tag = "15")]
    pub size: Option<u64>,
    /// `meta`'s JSON text.
    #[prost(bytes = "vec", optional, tag = "16")]
    pub meta_json: Option<Vec<u8>>,
    #[prost(enumeration = "PbStatus", optional, tag = "17")]
    pub status: Option<i32>,
    #[prost(message, optional, tag = "18")]
    pub error: Option<PbError>,
    #[prost(message, optional, tag = "19")]
    pub ack: Option<PbAck>,
}

/// `weave.v1.Error`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PbError {
    #[prost(string, tag = "1")]
    pub code: String,
    #[prost(string, tag = "2")]
    pub message: String,
    /// `detail`'s JSON text.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub detail_json: Option<Vec<u8>>,
}

/// `weave.v1.Ack`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PbAck {
    #[prost(enumeration = "PbAckMode", optional, tag = "1")]
    pub mode: Option<i32>,
    #[prost(uint64, optional, tag = "2")]
    pub timeout_ms: Option<u64>,
}

/// `weave.v1.Status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PbStatus {
    Unspecified = 0,
    Ok = 1,
    Error = 2,
}

/// `weave.v1.AckMode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PbAckMode {
    Unspecified = 0,
    Auto = 1,
    Manual = 2,
    None = 3,
}

/// Why a protobuf envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbDecodeError {
    /// The envelope's `id` when it could be read, so the refusal can carry it as `corr`.
    pub id: Option<String>,
    pub message: String,
}

impl std::fmt::Display for PbDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl PbEnvelope {
    /// The protobuf form of `env`. JSON values are written as compact JSON text.
    pub fn from_envelope<P: Serialize, M: Serialize>(env: &Envelope<P, M>) -> Self {
        PbEnvelope {
            v: env.v,
            r#type: env.kind.clone(),
            id: env.id.clone(),
            ts: env.ts.clone(),
            src: env.src.clone(),
            dst: env.dst.clone(),
            topic: env.topic.clone(),
            session: env.session.clone(),
            seq: env.seq,
            idempotency_key: env.idempotency_key.clone(),
            corr: env.corr.clone(),
            payload_json: env.payload.as_ref().map(json_text),
            payload_ref: env.payload_ref.clone(),
            content_type: env.content_type.clone(),
            size: env.size,
            meta_json: env.meta.as_ref().map(json_text),
            status: env.status.map(|s| match s {
                Status::Ok => PbStatus::Ok as i32,
                Status::Error => PbStatus::Error as i32,
            }),
            error: env.error.as_ref().map(|e| PbError {
                code: e.code.clone(),
                message: e.message.clone(),
                detail_json: e.detail.as_ref().map(json_text),
            }),
            ack: env.ack.as_ref().map(|a| PbAck {
                mode: a.mode.map(|m| match m {
                    AckMode::Auto => PbAckMode::Auto as i32,
                    AckMode::Manual => PbAckMode::Manual as i32,
                    AckMode::None => PbAckMode::None as i32,
                }),
                timeout_ms: a.timeout_ms,
            }),
        }
    }

    /// The JSON envelope this message carries. Refused: JSON fields that are not JSON, and
    /// enumeration values this version does not know (a JSON client sending `"status":"maybe"`
    /// is refused the same way).
    pub fn into_envelope(self) -> Result<Envelope, PbDecodeError> {
        let id = self.id;
        let fail = |id: &str, message: String| PbDecodeError {
            id: (!id.is_empty()).then(|| id.to_owned()),
            message,
        };
        let status = match self.status.map(PbStatus::try_from) {
            None => None,
            Some(Ok(PbStatus::Ok)) => Some(Status::Ok),
            Some(Ok(PbStatus::Error)) => Some(Status::Error),
            Some(_) => return Err(fail(&id, "invalid envelope: unknown status".into())),
        };
        let ack = match self.ack {
            None => None,
            Some(a) => Some(Ack {
                mode: match a.mode.map(PbAckMode::try_from) {
                    None => None,
                    Some(Ok(PbAckMode::Auto)) => Some(AckMode::Auto),
                    Some(Ok(PbAckMode::Manual)) => Some(AckMode::Manual),
                    Some(Ok(PbAckMode::None)) => Some(AckMode::None),
                    Some(_) => {
                        return Err(fail(&id, "invalid envelope: unknown ack mode".into()));
                    }
                },
                timeout_ms: a.timeout_ms,
            }),
        };
        let json = |field: &str, bytes: Option<Vec<u8>>| match bytes {
            None => Ok(None),
            Some(b) => serde_json::from_slice::<Value>(&b).map(Some).map_err(|e| {
                fail(
                    &id,
                    format!("invalid envelope: {field} is not valid JSON: {e}"),
                )
            }),
        };
        let payload = json("payload", self.payload_json)?;
        let meta = json("meta", self.meta_json)?;
        let error = match self.error {
            None => None,
            Some(e) => Some(ErrorBody {
                code: e.code,
                message: e.message,
                detail: json("error.detail", e.detail_json)?,
            }),
        };
        Ok(Envelope {
            v: self.v,
            kind: self.r#type,
            id,
            ts: self.ts,
            src: self.src,
            dst: self.dst,
            topic: self.topic,
            session: self.session,
            seq: self.seq,
            idempotency_key: self.idempotency_key,
            corr: self.corr,
            payload,
            payload_ref: self.payload_ref,
            content_type: self.content_type,
            size: self.size,
            meta,
            status,
            error,
            ack,
        })
    }
}

fn json_text<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Our payload types (Value, RawValue) always serialize.
    serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use serde_json::json;

    fn full() -> Envelope {
        Envelope {
            v: 1,
            kind: "message.send".into(),
            id: "m1".into(),
            ts: "2026-11-22T00:00:00Z".into(),
            src: "a".into(),
            dst: Some("b".into()),
            topic: Some("t".into()),
            session: Some("s".into()),
            seq: Some(7),
            idempotency_key: Some("k".into()),
            corr: Some("c".into()),
            payload: Some(json!({"text": "héllo\n", "n": [1, 2.5, null]})),
            payload_ref: Some("ref".into()),
            content_type: Some("text/plain".into()),
            size: Some(5),
            meta: Some(json!({"weave": {"seq": 3}})),
            status: Some(Status::Error),
            error: Some(ErrorBody {
                code: "bad_request".into(),
                message: "no".into(),
                detail: Some(json!({"field": "dst"})),
            }),
            ack: Some(Ack {
                mode: Some(AckMode::Manual),
                timeout_ms: Some(1500),
            }),
        }
    }

    #[test]
    fn every_field_round_trips() {
        let env = full();
        let bytes = PbEnvelope::from_envelope(&env).encode_to_vec();
        let back = PbEnvelope::decode(&bytes[..])
            .unwrap()
            .into_envelope()
            .unwrap();
        assert_eq!(back, env);
        let empty = Envelope::<Value>::default();
        let bytes = PbEnvelope::from_envelope(&empty).encode_to_vec();
        let back = PbEnvelope::decode(&bytes[..])
            .unwrap()
            .into_envelope()
            .unwrap();
        assert_eq!(back, empty);
    }

    #[test]
    fn a_payload_that_is_not_json_is_refused_with_the_id() {
        let mut pb = PbEnvelope::from_envelope(&full());
        pb.payload_json = Some(b"{nope".to_vec());
        let e = pb.into_envelope().unwrap_err();
        assert_eq!(e.id.as_deref(), Some("m1"));
        assert!(e.message.contains("payload is not valid JSON"), "{e}");
    }

    /// `docs/weave/weave.proto` is what SDK authors compile: every field it declares must be the
    /// field of the same number and kind here. Checked by encoding one field at a time and
    /// reading the tag prost wrote.
    #[test]
    fn the_published_proto_matches_the_messages() {
        let proto = include_str!("../../docs/weave/weave.proto");
        let mut declared = Vec::new();
        let mut message = "";
        for line in proto.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("message ") {
                message = rest.trim_end_matches(" {");
            } else if let Some((decl, tag)) = line.trim_end_matches(';').split_once(" = ") {
                let words: Vec<&str> = decl.split_whitespace().collect();
                if words.len() >= 2 && !message.is_empty() {
                    let tag: u32 = tag.parse().unwrap();
                    declared.push((message, words[words.len() - 1], tag));
                }
            } else if line == "}" {
                message = "";
            }
        }
        // Every field of the Rust messages, with its number, as prost encodes it.
        let tag_of = |bytes: Vec<u8>| -> u32 {
            let key = prost::encoding::decode_varint(&mut &bytes[..]).unwrap();
            (key >> 3) as u32
        };
        let mut e = PbEnvelope::default();
        let mut ours = Vec::new();
        macro_rules! field {
            ($msg:literal, $name:literal, $val:expr, $set:expr) => {{
                let mut m = $val;
                $set(&mut m);
                ours.push(($msg, $name, tag_of(m.encode_to_vec())));
            }};
        }
        e.v = 1;
        ours.push(("Envelope", "v", tag_of(e.encode_to_vec())));
        let s = || Some("x".to_owned());
        let env = PbEnvelope::default;
        field!("Envelope", "type", env(), |m: &mut PbEnvelope| m.r#type =
            "x".into());
        field!("Envelope", "id", env(), |m: &mut PbEnvelope| m.id =
            "x".into());
        field!("Envelope", "ts", env(), |m: &mut PbEnvelope| m.ts =
            "x".into());
        field!("Envelope", "src", env(), |m: &mut PbEnvelope| m.src =
            "x".into());
        field!("Envelope", "dst", env(), |m: &mut PbEnvelope| m.dst = s());
        field!("Envelope", "topic", env(), |m: &mut PbEnvelope| m.topic =
            s());
        field!("Envelope", "session", env(), |m: &mut PbEnvelope| m
            .session =
            s());
        field!("Envelope", "seq", env(), |m: &mut PbEnvelope| m.seq =
            Some(1));
        field!(
            "Envelope",
            "idempotency_key",
            env(),
            |m: &mut PbEnvelope| m.idempotency_key = s()
        );
        field!("Envelope", "corr", env(), |m: &mut PbEnvelope| m.corr = s());
        field!("Envelope", "payload_json", env(), |m: &mut PbEnvelope| m
            .payload_json =
            Some(vec![1]));
        field!("Envelope", "payload_ref", env(), |m: &mut PbEnvelope| m
            .payload_ref =
            s());
        field!("Envelope", "content_type", env(), |m: &mut PbEnvelope| m
            .content_type =
            s());
        field!("Envelope", "size", env(), |m: &mut PbEnvelope| m.size =
            Some(1));
        field!("Envelope", "meta_json", env(), |m: &mut PbEnvelope| m
            .meta_json =
            Some(vec![1]));
        field!("Envelope", "status", env(), |m: &mut PbEnvelope| m.status =
            Some(1));
        field!("Envelope", "error", env(), |m: &mut PbEnvelope| m.error =
            Some(PbError::default()));
        field!("Envelope", "ack", env(), |m: &mut PbEnvelope| m.ack =
            Some(PbAck::default()));
        field!("Error", "code", PbError::default(), |m: &mut PbError| m
            .code =
            "x".into());
        field!("Error", "message", PbError::default(), |m: &mut PbError| {
            m.message = "x".into()
        });
        field!(
            "Error",
            "detail_json",
            PbError::default(),
            |m: &mut PbError| m.detail_json = Some(vec![1])
        );
        field!("Ack", "mode", PbAck::default(), |m: &mut PbAck| m.mode =
            Some(1));
        field!("Ack", "timeout_ms", PbAck::default(), |m: &mut PbAck| m
            .timeout_ms =
            Some(1));
        assert_eq!(declared, ours);
    }

    #[test]
    fn unknown_enumeration_values_are_refused() {
        let mut pb = PbEnvelope::from_envelope(&full());
        pb.status = Some(9);
        assert!(pb.into_envelope().unwrap_err().message.contains("status"));
        let mut pb = PbEnvelope::from_envelope(&full());
        pb.ack = Some(PbAck {
            mode: Some(-1),
            timeout_ms: None,
        });
        assert!(pb.into_envelope().unwrap_err().message.contains("ack mode"));
    }
}
