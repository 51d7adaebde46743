//! Relays and their tasks: list them, and a relay submitted, finished or cancelled by an HTTP
//! agent (its owner).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use codex_weave_runtime::Envelope;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::problem::Problem;
use crate::routes::{call, json_response, json_text, object_body, payload_of, text_field};
use crate::HttpState;

pub async fn list_relays(
    State(st): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let resp = call(&st, "relays.list", Some(&id), Value::Null).await?;
    Ok(json_text(StatusCode::OK, payload_of(&resp).to_string()))
}

pub async fn list_tasks(
    State(st): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let resp = call(&st, "relays.list", Some(&id), Value::Null).await?;
    let tasks: Vec<Value> = payload_of(&resp)["relays"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| {
            let (relay_id, owner) = (r["relay_id"].clone(), r["owner_id"].clone());
            r["tasks"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |mut t| {
                    t["relay_id"] = relay_id.clone();
                    t["owner_id"] = owner.clone();
                    t
                })
        })
        .collect();
    Ok(json_text(
        StatusCode::OK,
        json!({ "tasks": tasks }).to_string(),
    ))
}

/// `POST /api/sessions/{id}/relays`: the `relay.submit` payload plus `from` (an HTTP agent).
pub async fn relay(
    State(st): State<Arc<HttpState>>,
    Path(session): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let mut body = object_body(&body)?;
    let from = text_field(&body, "from")?;
    body.remove("from");
    relay_submit(&st, &session, &from, Value::Object(body)).await
}

#[derive(Deserialize, Default)]
struct FinishBody {
    from: Option<String>,
    summary: Option<String>,
    reason: Option<String>,
}

/// `POST .../relays/{relay_id}/done` `{summary?, from?}`: finished by its owner (an HTTP agent).
pub async fn relay_done(
    State(st): State<Arc<HttpState>>,
    Path((session, relay_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Problem> {
    finish(
        &st,
        &session,
        &relay_id,
        &body,
        |b, id| json!({ "relay_id": id, "done": { "relay_id": id, "summary": b.summary } }),
    )
    .await
}

/// `POST .../relays/{relay_id}/cancel` `{reason?, from?}`.
pub async fn relay_cancel(
    State(st): State<Arc<HttpState>>,
    Path((session, relay_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Problem> {
    finish(
        &st,
        &session,
        &relay_id,
        &body,
        |b, id| json!({ "relay_id": id, "cancel": { "reason": b.reason } }),
    )
    .await
}

/// Ends a relay as `from` (default: its owner) with the payload `make` builds.
async fn finish(
    st: &HttpState,
    session: &str,
    relay_id: &str,
    body: &Bytes,
    make: impl FnOnce(&FinishBody, &str) -> Value,
) -> Result<Response, Problem> {
    let b: FinishBody = if body.is_empty() {
        FinishBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| Problem::new("bad_request", e.to_string()))?
    };
    let from = owner_or(st, session, relay_id, b.from.clone()).await?;
    relay_submit(st, session, &from, make(&b, relay_id)).await
}

/// The agent to act as: `from` if given, else the relay's owner.
async fn owner_or(
    st: &HttpState,
    session: &str,
    relay_id: &str,
    from: Option<String>,
) -> Result<String, Problem> {
    if let Some(from) = from {
        return Ok(from);
    }
    let relays = call(st, "relays.list", Some(session), Value::Null).await?;
    relays.payload.unwrap_or_default()["relays"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["relay_id"] == relay_id)
        .and_then(|r| r["owner_id"].as_str().map(str::to_owned))
        .ok_or_else(|| {
            Problem::new(
                "unknown_relay",
                format!("no relay {relay_id} in session {session}"),
            )
        })
}

async fn relay_submit(
    st: &HttpState,
    session: &str,
    from: &str,
    payload: Value,
) -> Result<Response, Problem> {
    let link = st.links.bind(&st.bus, session, from, None).await?;
    let mut env = Envelope::new("relay.submit", String::new(), String::new(), from);
    env.payload = Some(payload);
    let resp = link.request(env).await?;
    if resp.error.is_some() {
        return Err(Problem::from_envelope(&resp));
    }
    Ok(json_response(
        StatusCode::OK,
        resp.payload.unwrap_or_default(),
    ))
}
