//! Every JSON text the bus writes by hand, in one place: lines and records on the hot path are
//! spliced from JSON text already held (a message's payload as it came in, a record's meta)
//! instead of serializing a tree of values. Each writer produces exactly what encoding the
//! same value with serde would (the tests beside each writer compare them); nothing else in
//! the crate splices JSON.
//!
//! - [`envelope`]: a record's or a delivery's line, field by field in the envelope's order;
//! - [`meta`]: a record's meta and where a delivery's `meta.weave` keys go into it;
//! - [`response`]: the `ok` response line of a request;
//! - [`payload`]: keys added at the front of a payload object kept as text;
//! - [`rows`]: a batch of remembered responses as one stored row.

pub mod envelope;
pub mod meta;
pub mod payload;
pub mod response;
pub mod rows;

/// Writes an integer (without `fmt`, which showed in the engine's profile).
pub fn push_int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Writes a value's JSON (a string is quoted and escaped).
pub fn push_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Serializing a string, an integer or a `Value` into memory cannot fail.
    let _ = serde_json::to_writer(out, value);
}

/// Writes `key` (already JSON text, e.g. `,"src":`) then the string `s`, quoted.
pub fn push_field(out: &mut Vec<u8>, key: &[u8], s: &str) {
    out.extend_from_slice(key);
    push_json(out, s);
}

/// JSON text of a value.
pub fn text_of<T: serde::Serialize + ?Sized>(value: &T) -> Box<str> {
    let mut out = Vec::with_capacity(128);
    push_json(&mut out, value);
    into_text(out)
}

/// The text written: serde_json and the splices write UTF-8 only.
pub fn into_text(out: Vec<u8>) -> Box<str> {
    String::from_utf8(out).unwrap_or_default().into_boxed_str()
}
