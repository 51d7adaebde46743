//! The `ok` response line of a request: what encoding a response envelope writes, with its
//! payload copied as the JSON text it is.

use bytes::Bytes;
use codex_weave_runtime::BUS_SRC;
use serde_json::value::RawValue;

use super::push_field;

/// The line (with its newline) of an `ok` response `id` at `ts`.
pub fn ok_line(
    id: &str,
    ts: &str,
    corr: &str,
    session: Option<&str>,
    payload: Option<&RawValue>,
) -> Bytes {
    let mut out = Vec::with_capacity(160 + payload.map_or(0, |p| p.get().len()));
    push_field(&mut out, br#"{"v":1,"type":"response","id":"#, id);
    push_field(&mut out, br#","ts":"#, ts);
    push_field(&mut out, br#","src":"#, BUS_SRC);
    if let Some(session) = session {
        push_field(&mut out, br#","session":"#, session);
    }
    if !corr.is_empty() {
        push_field(&mut out, br#","corr":"#, corr);
    }
    if let Some(payload) = payload {
        out.extend_from_slice(br#","payload":"#);
        out.extend_from_slice(payload.get().as_bytes());
    }
    out.extend_from_slice(b",\"status\":\"ok\"}\n");
    Bytes::from(out)
}
