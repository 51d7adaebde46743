//! Remembered responses as one stored row: a JSON array of `[id, session, src, key, response,
//! created_ms]`, each `response` written as the JSON it is.

use crate::store::backend::IdempotencyRef;

pub fn idempotency_row<'a>(entries: impl Iterator<Item = IdempotencyRef<'a>>) -> String {
    let mut out = Vec::with_capacity(64 * 1024);
    out.push(b'[');
    for (i, e) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        super::push_int(&mut out, e.id);
        for s in [e.session, e.src, e.key] {
            out.push(b',');
            super::push_json(&mut out, s);
        }
        out.push(b',');
        out.extend_from_slice(e.response.as_bytes());
        out.push(b',');
        super::push_int(&mut out, e.created_ms);
        out.push(b']');
    }
    out.push(b']');
    super::into_text(out).into()
}
