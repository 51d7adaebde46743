//! `events.search`: a session's records found by their text (the store's full-text index),
//! sender and time, newest first, in pages.

use codex_weave_runtime::{Envelope, ErrorCode};
use serde_json::{json, Value};

use super::{bad, payload_str, payload_u64, Reply};
use crate::engine::records::stored_record_json;
use crate::engine::{Answer, Engine};
use crate::refusal::Refusal;
use crate::store::SearchQuery;

/// Records a search answers when it names no `limit`.
pub const DEFAULT_SEARCH_LIMIT: usize = 20;
/// Most records one search answers.
pub const MAX_SEARCH_LIMIT: usize = 200;
/// Longest search text, in bytes.
pub const MAX_SEARCH_TEXT: usize = 1024;

impl Engine {
    /// `{text?, from?, since?, until?, before?, limit?}` → `{records, next_before}`: records whose
    /// text has every word of `text`, sent by `from` (id or display name), with `since <= ts <
    /// until`, older than seq `before`; newest first. `next_before` continues the search.
    pub(super) fn events_search(&mut self, env: &Envelope) -> Reply {
        let sid = self.known_session(env)?;
        let text = payload_str(env, "text").map(str::to_owned);
        if text.as_ref().is_some_and(|t| t.len() > MAX_SEARCH_TEXT) {
            return Err(bad(format!(
                "`payload.text` is longer than {MAX_SEARCH_TEXT} bytes"
            )));
        }
        for field in ["from", "since", "until"] {
            if env
                .payload
                .as_ref()
                .and_then(|p| p.get(field))
                .is_some_and(|v| !v.is_string() && !v.is_null())
            {
                return Err(bad(format!("`payload.{field}` must be a string")));
            }
        }
        let time = |field: &str| -> Result<Option<String>, Refusal> {
            match payload_str(env, field) {
                None => Ok(None),
                Some(t) => {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .map(|_| Some(t.to_owned()))
                        .map_err(|_| {
                            bad(format!(
                        "`payload.{field}` must be an RFC 3339 time, e.g. 2026-12-04T10:00:00Z"
                    ))
                        })
                }
            }
        };
        let query = SearchQuery {
            text,
            from: payload_str(env, "from").map(str::to_owned),
            since: time("since")?,
            until: time("until")?,
            before: payload_u64(env, "before")?,
            limit: payload_u64(env, "limit")?
                .map(|l| l as usize)
                .unwrap_or(DEFAULT_SEARCH_LIMIT)
                .clamp(1, MAX_SEARCH_LIMIT),
        };
        let key = self.registry.sessions[&sid].key;
        let limit = query.limit;
        let rows = self.read(move |s| s.search(key, &query)).map_err(|e| {
            Refusal::new(
                ErrorCode::StoreUnavailable,
                format!("searching failed: {e}"),
            )
        })?;
        let next = (rows.len() == limit)
            .then(|| rows.last().map(|r| r.seq))
            .flatten();
        let mut json = String::from(r#"{"records":["#);
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(&stored_record_json(row));
        }
        json.push_str(r#"],"next_before":"#);
        json.push_str(
            &serde_json::to_string(&next.map_or(Value::Null, |n| json!(n))).unwrap_or_default(),
        );
        json.push('}');
        Ok(Answer::raw(json))
    }
}
