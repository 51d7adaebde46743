//! Routes that act as an agent: HTTP agents' registration and inbox, messages and relays sent
//! by an HTTP agent, and the operator's rename and removal of any agent.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use codex_weave_runtime::Envelope;
use futures::{stream, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::problem::Problem;
use crate::routes::{call, object_body, OPERATOR};
use crate::sse::KEEP_ALIVE;
use crate::HttpState;

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn text_field(body: &Map<String, Value>, key: &str) -> Result<String, Problem> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Problem::new("bad_request", format!("`{key}` (a string) is required")))
}

/// `POST /api/sessions/{id}/agents` `{name, kind: human|sdk, id?}`: a new HTTP agent.
pub async fn register(
    State(st): State<Arc<HttpState>>,
    Path(session): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let body = object_body(&body)?;
    let name = text_field(&body, "name")?;
    let kind = match body.get("kind") {
        None => "human",
        Some(v) => v.as_str().unwrap_or_default(),
    };
    if !matches!(kind, "human" | "sdk") {
        return Err(Problem::new(
            "bad_request",
            "`kind` is `human` or `sdk` (terminal agents join over the socket)",
        ));
    }
    let id = match body.get("id") {
        Some(Value::String(id)) => id.to_owned(),
        None => uuid::Uuid::new_v4().to_string(),
        Some(_) => return Err(Problem::new("bad_request", "`id` is a string")),
    };
    if st.links.get(&session, &id).is_some()
        || crate::links::http_agent(&st.bus, &session, &id)
            .await
            .is_ok()
    {
        return Err(Problem::new(
            "name_taken",
            format!("agent `{id}` exists already"),
        ));
    }
    st.links
        .bind(
            &st.bus,
            &session,
            &id,
            Some(json!({ "id": id, "name": name, "kind": kind })),
        )
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        json!({ "id": id, "name": name, "kind": kind, "status": "online" }),
    ))
}

/// `PATCH /api/sessions/{id}/agents/{agent_id}` `{name}`: the operator renames any agent.
pub async fn rename(
    State(st): State<Arc<HttpState>>,
    Path((session, agent)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Problem> {
    let body = object_body(&body)?;
    let name = text_field(&body, "name")?;
    let resp = operator_call(
        &st,
        "agent.update",
        &session,
        json!({ "id": agent, "name": name }),
    )
    .await?;
    Ok(json_response(
        StatusCode::OK,
        resp.payload.unwrap_or_default(),
    ))
}

/// `POST /api/sessions/{id}/agents/order` `{ids}`: the operator's order of the agents.
pub async fn order(
    State(st): State<Arc<HttpState>>,
    Path(session): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let body = object_body(&body)?;
    let ids = body.get("ids").cloned().unwrap_or(Value::Null);
    let resp = operator_call(&st, "agent.order", &session, json!({ "ids": ids })).await?;
    Ok(json_response(
        StatusCode::OK,
        resp.payload.unwrap_or_default(),
    ))
}

/// `DELETE /api/sessions/{id}/agents/{agent_id}`: the operator removes any agent.
pub async fn remove(
    State(st): State<Arc<HttpState>>,
    Path((session, agent)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let resp = operator_call(&st, "agent.remove", &session, json!({ "id": agent })).await?;
    st.links.drop_link(&session, &agent);
    Ok(json_response(
        StatusCode::OK,
        resp.payload.unwrap_or_default(),
    ))
}

async fn operator_call(
    st: &HttpState,
    kind: &str,
    session: &str,
    payload: Value,
) -> Result<Envelope, Problem> {
    let mut env = Envelope::new(kind, String::new(), String::new(), OPERATOR);
    env.session = Some(session.to_owned());
    env.payload = Some(payload);
    let resp = st
        .bus
        .call_as_operator(env)
        .await
        .ok_or_else(Problem::bus_gone)?;
    if resp.error.is_some() {
        return Err(Problem::from_envelope(&resp));
    }
    Ok(resp)
}

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

#[derive(Deserialize)]
pub struct InboxQuery {
    since: Option<u64>,
}

/// `GET .../agents/{agent_id}/inbox/stream`: SSE of the deliveries to an HTTP agent — what is
/// waiting (after the `Last-Event-ID` / `?since=` record seq, if given), then live. `id:` = the
/// delivered record's seq, `event:` = the delivery's type, `data:` = the delivered envelope.
pub async fn inbox_stream(
    State(st): State<Arc<HttpState>>,
    Path((session, agent)): Path<(String, String)>,
    Query(q): Query<InboxQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let cursor = match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        Some(v) => Some(
            v.trim()
                .parse()
                .map_err(|_| Problem::new("bad_request", "Last-Event-ID must be a record seq"))?,
        ),
        None => q.since,
    };
    let link = st.links.bind(&st.bus, &session, &agent, None).await?;
    let (backlog, live) = link.subscribe(cursor);
    let event = |e: crate::links::Entry| {
        Ok(Event::default()
            .id(e.seq.to_string())
            .event(e.kind)
            .data(e.line))
    };
    let shutdown = st.shutdown.clone();
    let guard = crate::live::SseGuard::new(&st.sse_clients);
    let live = stream::unfold(
        (live, shutdown, link, guard),
        |(mut live, shutdown, link, guard)| async move {
            let entry = tokio::select! {
                _ = shutdown.cancelled() => return None,
                entry = live.recv() => entry?,
            };
            Some((entry, (live, shutdown, link, guard)))
        },
    );
    let all = stream::iter(backlog).chain(live).map(event);
    Ok(Sse::new(all).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// `POST .../agents/{agent_id}/inbox/ack` `{ids}`: acknowledges deliveries (their `corr`).
pub async fn inbox_ack(
    State(st): State<Arc<HttpState>>,
    Path((session, agent)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Problem> {
    let body = object_body(&body)?;
    let ids: Vec<String> = body
        .get("ids")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            Problem::new(
                "bad_request",
                "`ids` (an array of delivery corr ids) is required",
            )
        })?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect::<Option<_>>()
        .ok_or_else(|| Problem::new("bad_request", "`ids` holds strings (delivery corr ids)"))?;
    let link = st.links.bind(&st.bus, &session, &agent, None).await?;
    let unknown = link.ack(&ids);
    Ok(json_response(
        StatusCode::OK,
        json!({ "acked": ids.len() - unknown.len(), "unknown": unknown }),
    ))
}
