//! Messages: one sent by an HTTP agent, and how far one got (its receipts).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use codex_weave_runtime::Envelope;
use serde_json::{json, Value};

use crate::problem::Problem;
use crate::routes::{call, json_response, json_text, object_body, payload_of, text_field};
use crate::HttpState;

/// `POST /api/sessions/{id}/messages` `{from, text, agent_ids, kind?, parent_message_id?, context_id?}`:
/// one `message.send` per target, under the runtime's rules like any agent's. `202` with the
/// message ids and the targets that failed; a problem if none was accepted.
pub async fn messages(
    State(st): State<Arc<HttpState>>,
    Path(session): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let body = object_body(&body)?;
    let from = text_field(&body, "from")?;
    let text = text_field(&body, "text")?;
    let targets: Vec<String> = body
        .get("agent_ids")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Problem::new("bad_request", "`agent_ids` (a non-empty array) is required"))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| Problem::new("bad_request", "`agent_ids` must be strings"))
        })
        .collect::<Result<_, _>>()?;
    let link = st.links.bind(&st.bus, &session, &from, None).await?;
    let mut payload = json!({ "text": text });
    for key in [
        "kind",
        "parent_message_id",
        "context_id",
        "reply_to_action_id",
    ] {
        if let Some(v) = body.get(key) {
            payload[key] = v.clone();
        }
    }
    let (mut ids, mut failures, mut first_problem) = (Vec::new(), Vec::new(), None);
    for target in targets {
        let mut env = Envelope::new("message.send", String::new(), String::new(), from.clone());
        env.dst = Some(target.clone());
        env.payload = Some(payload.clone());
        let resp = link.request(env).await?;
        match &resp.error {
            None => ids.push(resp.payload.unwrap_or_default()["id"].clone()),
            Some(e) => {
                failures.push(json!({ "agent_id": target, "code": e.code, "message": e.message }));
                first_problem.get_or_insert_with(|| Problem::from_envelope(&resp));
            }
        }
    }
    match (ids.is_empty(), first_problem) {
        (true, Some(problem)) => Err(problem),
        _ => Ok(json_response(
            StatusCode::ACCEPTED,
            json!({ "ids": ids, "failures": failures }),
        )),
    }
}

/// How far a message got with each recipient (`message.receipts`): queued, delivered, read,
/// answered. An id with no receipts (unknown, or a result) is a 404.
pub async fn message_receipts(
    State(st): State<Arc<HttpState>>,
    Path((id, message_id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let resp = call(
        &st,
        "message.receipts",
        Some(&id),
        json!({ "ids": [message_id] }),
    )
    .await?;
    let receipts = payload_of(&resp)["receipts"].take();
    if receipts.as_array().is_none_or(Vec::is_empty) {
        return Err(Problem::new(
            "unknown_message",
            format!("no message {message_id} with receipts in session {id}"),
        ));
    }
    let body = json!({ "id": message_id, "receipts": receipts });
    Ok(json_text(StatusCode::OK, body.to_string()))
}
