//! Keys added at the front of a payload object kept as JSON text.

/// `text` (a JSON object) with the string members `keys` inserted first, in order; `None` if
/// `text` is not an object or there is nothing to insert.
pub fn with_leading_strings(text: &str, keys: &[(&str, &str)]) -> Option<Box<str>> {
    if keys.is_empty() {
        return None;
    }
    let open = text.find('{')? + 1;
    let mut out = Vec::with_capacity(text.len() + 96);
    out.extend_from_slice(&text.as_bytes()[..open]);
    for (key, value) in keys {
        super::push_json(&mut out, key);
        out.push(b':');
        super::push_json(&mut out, value);
        out.push(b',');
    }
    let rest = &text[open..];
    if rest.trim_start().starts_with('}') {
        out.pop();
    }
    out.extend_from_slice(rest.as_bytes());
    // UTF-8 text with JSON strings (UTF-8) spliced in at a character boundary.
    String::from_utf8(out).ok().map(String::into_boxed_str)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::with_leading_strings;

    #[test]
    fn leading_keys_are_the_object_with_those_members() {
        for (text, want) in [
            (
                r#"{"text":"hi"}"#,
                json!({"context_id": "c\"1", "owner_id": "o", "text": "hi"}),
            ),
            (r#" { } "#, json!({"context_id": "c\"1", "owner_id": "o"})),
        ] {
            let out =
                with_leading_strings(text, &[("context_id", "c\"1"), ("owner_id", "o")]).unwrap();
            assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), want);
            assert!(out.trim_start().starts_with(r#"{"context_id""#), "{out}");
        }
        assert!(with_leading_strings(r#""text""#, &[("a", "b")]).is_none());
        assert!(with_leading_strings("{}", &[]).is_none());
    }
}
