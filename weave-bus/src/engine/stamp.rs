//! What the bus reads of a `message.send`'s payload (without building a value, live) and how
//! it stamps a record with what the runtime said: the conversation into the payload, the causal
//! chain into `meta.weave`.

use std::borrow::Cow;

use codex_weave_runtime::{Envelope, Input, Message, MessageKind, Stamp};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

pub(super) fn text<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a str> {
    v.and_then(|v| v.get(key)).and_then(Value::as_str)
}

/// What the runtime reads of a `message.send`'s payload, and what stamping it needs to know.
/// Read from a value (a record at replay) or from JSON text without building it (live).
#[derive(Debug, Default)]
pub(super) struct MessageFields<'a> {
    pub kind: Option<Cow<'a, str>>,
    pub context_id: Option<Cow<'a, str>>,
    pub parent_message_id: Option<Cow<'a, str>>,
    pub reply_to_action_id: Option<Cow<'a, str>>,
    /// A string, or an object whose `text` is a string: what `message.send` accepts.
    pub valid: bool,
    /// An object (stamping fills in `context_id` and `owner_id` where it has none).
    pub object: bool,
    pub has_context_id: bool,
    pub has_owner_id: bool,
}

impl<'a> MessageFields<'a> {
    pub fn of_value(p: Option<&'a Value>) -> Self {
        let string = |key| text(p, key).map(Cow::Borrowed);
        let has = |key| {
            p.and_then(Value::as_object)
                .is_some_and(|o| o.contains_key(key))
        };
        MessageFields {
            kind: string("kind"),
            context_id: string("context_id"),
            parent_message_id: string("parent_message_id"),
            reply_to_action_id: string("reply_to_action_id"),
            valid: p.is_some_and(Value::is_string) || text(p, "text").is_some(),
            object: p.is_some_and(Value::is_object),
            has_context_id: has("context_id"),
            has_owner_id: has("owner_id"),
        }
    }

    /// `None` when the object has one of these keys twice (read it as a value then: the last
    /// one counts, as everywhere else).
    pub fn of_text(p: &'a str) -> Option<Self> {
        /// A key that is present, whatever its value (`null` included).
        fn present<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<&'de RawValue>, D::Error> {
            <&RawValue>::deserialize(d).map(Some)
        }
        #[derive(Deserialize)]
        struct Keys<'a> {
            #[serde(borrow, default, deserialize_with = "present")]
            text: Option<&'a RawValue>,
            #[serde(borrow, default, deserialize_with = "present")]
            kind: Option<&'a RawValue>,
            #[serde(borrow, default, deserialize_with = "present")]
            context_id: Option<&'a RawValue>,
            #[serde(borrow, default, deserialize_with = "present")]
            owner_id: Option<&'a RawValue>,
            #[serde(borrow, default, deserialize_with = "present")]
            parent_message_id: Option<&'a RawValue>,
            #[serde(borrow, default, deserialize_with = "present")]
            reply_to_action_id: Option<&'a RawValue>,
        }
        /// A JSON string's value, borrowed unless it has escapes.
        fn string(raw: Option<&RawValue>) -> Option<Cow<'_, str>> {
            let json = raw?.get();
            if !json.starts_with('"') {
                return None;
            }
            serde_json::from_str::<&str>(json)
                .map(Cow::Borrowed)
                .or_else(|_| serde_json::from_str::<String>(json).map(Cow::Owned))
                .ok()
        }
        match p.trim_start().as_bytes().first() {
            Some(b'{') => {
                let keys: Keys<'a> = serde_json::from_str(p).ok()?;
                Some(MessageFields {
                    valid: string(keys.text).is_some(),
                    kind: string(keys.kind),
                    context_id: string(keys.context_id),
                    parent_message_id: string(keys.parent_message_id),
                    reply_to_action_id: string(keys.reply_to_action_id),
                    object: true,
                    has_context_id: keys.context_id.is_some(),
                    has_owner_id: keys.owner_id.is_some(),
                })
            }
            Some(b'"') => Some(MessageFields {
                valid: true,
                ..MessageFields::default()
            }),
            _ => Some(MessageFields::default()),
        }
    }
}

/// The runtime input of a `message.send` from `from` to `dst`.
pub(super) fn message_input(
    session: &str,
    id: &str,
    from: &str,
    dst: Option<&str>,
    p: &MessageFields<'_>,
) -> Option<Input> {
    let owned = |s: &Option<Cow<'_, str>>| s.as_deref().map(str::to_owned);
    let kind = p
        .kind
        .as_deref()
        .and_then(MessageKind::parse)
        .unwrap_or(MessageKind::User);
    Some(Input::Message(Message {
        session: session.to_owned(),
        id: id.to_owned(),
        from: from.to_owned(),
        to: vec![dst?.to_owned()],
        kind,
        context_id: owned(&p.context_id),
        parent_message_id: owned(&p.parent_message_id),
        reply_to_action_id: owned(&p.reply_to_action_id),
    }))
}

/// Writes the runtime's answer into the record's payload: the conversation (`context_id`,
/// `owner_id`) when the sender named none.
pub(super) fn stamp_payload(record: &mut Envelope, first: &Stamp) {
    let group = record.kind == "action.submit";
    if let Some(payload) = record.payload.as_mut().and_then(Value::as_object_mut) {
        if group {
            if !payload.contains_key("context") {
                payload.insert(
                    "context".into(),
                    json!({ "context_id": first.context_id, "owner_id": first.owner_id }),
                );
            }
        } else if let Some(ctx) = &first.context_id {
            payload.entry("context_id").or_insert_with(|| json!(ctx));
            if let Some(owner) = &first.owner_id {
                payload.entry("owner_id").or_insert_with(|| json!(owner));
            }
        }
    }
}

/// [`stamp_payload`] for a message's payload kept as JSON text (`p` read from it): the missing
/// keys go first in the object.
pub(super) fn stamp_payload_text(
    text: &str,
    p: &MessageFields<'_>,
    first: &Stamp,
) -> Option<Box<str>> {
    let ctx = first.context_id.as_deref().filter(|_| p.object)?;
    let owner = first.owner_id.as_deref().filter(|_| !p.has_owner_id);
    if p.has_context_id && owner.is_none() {
        return None;
    }
    let mut keys = Vec::with_capacity(2);
    if !p.has_context_id {
        keys.push(("context_id", ctx));
    }
    if let Some(owner) = owner {
        keys.push(("owner_id", owner));
    }
    crate::json_text::payload::with_leading_strings(text, &keys)
}

/// Writes the message's causal chain into `meta.weave.chain`.
pub(super) fn stamp_chain(meta: &mut Option<Value>, first: &Stamp) {
    let meta = meta.get_or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({ "original": meta.clone() });
    }
    let weave = &mut meta["weave"];
    if !weave.is_object() {
        *weave = json!({});
    }
    weave["chain"] = json!({ "id": first.chain_id, "hop": first.hop });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEYS: [&str; 8] = [
        "text",
        "kind",
        "context_id",
        "owner_id",
        "parent_message_id",
        "reply_to_action_id",
        "other",
        "z",
    ];

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z\"\\\\é\u{1}]{0,6}".prop_map(Value::from),
            Just(json!({"nested": ["x", 1]})),
        ]
    }

    /// A payload's text as a client may write it: any key order, spacing, keys twice.
    fn payload() -> impl Strategy<Value = String> {
        prop_oneof![
            1 => value().prop_map(|v| v.to_string()),
            6 => prop::collection::vec((0..KEYS.len(), value(), any::<bool>()), 0..8).prop_map(
                |members| {
                    let members: Vec<String> = members
                        .iter()
                        .map(|(k, v, spaced)| {
                            let sep = if *spaced { " : " } else { ":" };
                            format!("{}{sep}{v}", json!(KEYS[*k]))
                        })
                        .collect();
                    format!("{{ {} }}", members.join(","))
                }
            ),
        ]
    }

    fn stamp(context: bool, owner: bool) -> Stamp {
        Stamp {
            message_id: "m".into(),
            context_id: context.then(|| "c\"1".to_owned()),
            owner_id: owner.then(|| "o".to_owned()),
            chain_id: "m".into(),
            hop: 1,
            answers: None,
        }
    }

    fn same(a: &MessageFields<'_>, b: &MessageFields<'_>) -> bool {
        (
            &a.kind,
            &a.context_id,
            &a.parent_message_id,
            &a.reply_to_action_id,
        ) == (
            &b.kind,
            &b.context_id,
            &b.parent_message_id,
            &b.reply_to_action_id,
        ) && (a.valid, a.object, a.has_context_id, a.has_owner_id)
            == (b.valid, b.object, b.has_context_id, b.has_owner_id)
    }

    proptest! {
        /// Reading a payload's text gives what reading its value gives, and stamping the text
        /// gives what stamping the value gives; a known key written twice is left to the value.
        #[test]
        fn a_payload_read_and_stamped_as_text_is_as_read_and_stamped_as_a_value(
            text in payload(),
            context in any::<bool>(),
            owner in any::<bool>(),
        ) {
            let value: Value = serde_json::from_str(&text).expect("generated JSON");
            let by_value = MessageFields::of_value(Some(&value));
            let Some(by_text) = MessageFields::of_text(&text) else {
                let keys: Vec<&str> = KEYS[..6].to_vec();
                let twice = keys.iter().any(|k| text.matches(&format!("{}", json!(k))).count() > 1);
                prop_assert!(twice, "unread without a key twice: {}", text);
                return Ok(());
            };
            prop_assert!(same(&by_text, &by_value), "{}: {:?} vs {:?}", text, by_text, by_value);
            let first = stamp(context, owner);
            let mut env: Envelope = Envelope::new("message.send", "m".into(), "t".into(), "a");
            env.payload = Some(value.clone());
            stamp_payload(&mut env, &first);
            let stamped = stamp_payload_text(&text, &by_text, &first)
                .map(|t| serde_json::from_str::<Value>(&t).expect("stamped JSON"))
                .unwrap_or(value);
            prop_assert_eq!(Some(stamped), env.payload, "{}", text);
        }
    }
}
