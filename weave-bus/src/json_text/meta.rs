//! A record's meta as JSON text, and where a delivery's `meta.weave` keys go into it.
//!
//! A delivery adds its own keys to `meta.weave`: `seq` (the record delivered) and, on a
//! redelivery, `redelivered` and `delivery_count`. Where they go in the meta's text is found
//! once, when the text is written, so that each delivery only splices.

use serde_json::{Map, Value};

use super::{into_text, push_int, push_json, text_of};

/// `meta.weave` keys a delivery sets. They are the bus's: a sender's own values for them stay in
/// the record but are not delivered (a sender cannot mark a first delivery as redelivered).
pub const DELIVERY_KEYS: [&str; 3] = ["delivery_count", "redelivered", "seq"];

/// A delivery's meta is `text[..at] + before + its keys + after + text[resume..]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Splice {
    at: usize,
    resume: usize,
    before: &'static str,
    after: &'static str,
}

impl Splice {
    /// Writes the meta a delivery of a record with meta `text` carries: the record's, with
    /// `weave.seq` set, and `weave.redelivered`, `weave.delivery_count` on a redelivery
    /// (`count` > 1).
    pub fn write_delivery_meta(self, out: &mut Vec<u8>, text: Option<&str>, seq: u64, count: u32) {
        let text = text.unwrap_or("");
        let s = self;
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

/// A message's meta when its sender sent none: the bus's own `meta.weave` keys (`chain`,
/// `origin_src_name`) written directly, as encoding the value would write them.
pub fn weave_meta(origin: &str, chain: Option<(&str, u32)>) -> (Box<str>, Splice) {
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
    (
        into_text(out),
        Splice {
            at,
            resume: at,
            before: ",",
            after: "",
        },
    )
}

/// The meta's JSON text and where deliveries put their keys into it. An object's members are
/// written in map order, except that in `weave` the delivery keys come last, so that a
/// delivery skips them in one piece.
pub fn meta_text(meta: Option<Value>) -> (Option<Box<str>>, Splice) {
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
        let text = text_of(&meta);
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
