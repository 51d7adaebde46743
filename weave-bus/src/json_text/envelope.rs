//! A record's or a delivery's line: the envelope's fields in the order encoding an
//! [`Envelope`] writes them, payload and meta copied as the JSON text they are.

use codex_weave_runtime::{Envelope, Status};

use super::meta::Splice;
use super::{push_field, push_int, push_json};

/// The meta a line carries.
#[derive(Clone, Copy)]
pub enum Meta<'a> {
    /// The record's own (a record, or a line sent as it was recorded).
    Record(Option<&'a str>),
    /// A delivery's: the record's meta `text` with the delivery keys spliced in.
    Delivery {
        text: Option<&'a str>,
        splice: Splice,
        seq: u64,
        count: u32,
    },
}

/// The fields where a line differs from the envelope it writes.
pub struct Line<'a> {
    pub id: &'a str,
    pub ts: &'a str,
    pub dst: Option<&'a str>,
    pub topic: Option<&'a str>,
    pub corr: Option<&'a str>,
    pub payload: Option<&'a str>,
    pub meta: Meta<'a>,
}

/// Writes `e` with `line`'s fields; a delivery ([`Meta::Delivery`]) carries no response
/// fields (`status`, `error`).
pub fn write_envelope(out: &mut Vec<u8>, e: &Envelope<(), ()>, line: &Line<'_>) {
    out.extend_from_slice(br#"{"v":"#);
    push_int(out, e.v);
    push_field(out, br#","type":"#, &e.kind);
    push_field(out, br#","id":"#, line.id);
    push_field(out, br#","ts":"#, line.ts);
    push_field(out, br#","src":"#, &e.src);
    if let Some(dst) = line.dst {
        push_field(out, br#","dst":"#, dst);
    }
    if let Some(topic) = line.topic {
        push_field(out, br#","topic":"#, topic);
    }
    if let Some(session) = &e.session {
        push_field(out, br#","session":"#, session);
    }
    if let Some(seq) = e.seq {
        out.extend_from_slice(br#","seq":"#);
        push_int(out, seq);
    }
    if let Some(key) = &e.idempotency_key {
        push_field(out, br#","idempotency_key":"#, key);
    }
    if let Some(corr) = line.corr {
        push_field(out, br#","corr":"#, corr);
    }
    if let Some(payload) = line.payload {
        out.extend_from_slice(br#","payload":"#);
        out.extend_from_slice(payload.as_bytes());
    }
    if let Some(r) = &e.payload_ref {
        push_field(out, br#","payload_ref":"#, r);
    }
    if let Some(t) = &e.content_type {
        push_field(out, br#","content_type":"#, t);
    }
    if let Some(size) = e.size {
        out.extend_from_slice(br#","size":"#);
        push_int(out, size);
    }
    match line.meta {
        Meta::Delivery {
            text,
            splice,
            seq,
            count,
        } => {
            out.extend_from_slice(br#","meta":"#);
            splice.write_delivery_meta(out, text, seq, count);
        }
        Meta::Record(Some(meta)) => {
            out.extend_from_slice(br#","meta":"#);
            out.extend_from_slice(meta.as_bytes());
        }
        Meta::Record(None) => {}
    }
    // A delivery carries no response fields (a sender's are only in the record).
    let (status, error) = match line.meta {
        Meta::Record(_) => (e.status, e.error.as_ref()),
        Meta::Delivery { .. } => (None, None),
    };
    if let Some(status) = status {
        out.extend_from_slice(match status {
            Status::Ok => br#","status":"ok""#,
            Status::Error => br#","status":"error""#,
        });
    }
    if let Some(error) = error {
        out.extend_from_slice(br#","error":"#);
        push_json(out, error);
    }
    if let Some(ack) = &e.ack {
        out.extend_from_slice(br#","ack":"#);
        push_json(out, ack);
    }
    out.push(b'}');
}
