//! What a participant does with its inbox over HTTP: see what waits on it (`inbox.unread`),
//! mark messages read (`message.read`), and give the result of a step given to it
//! (`action.result`, sent as that agent: approve, deny, report).
//! And an HTTP agent's deliveries: the inbox stream and its acks.

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
use serde_json::{json, Value};

use crate::problem::Problem;
use crate::routes::{call, json_response, object_body};
use crate::stream::{SseGuard, KEEP_ALIVE};
use crate::HttpState;

#[derive(Deserialize)]
pub struct InboxQuery {
    limit: Option<u64>,
    waiting: Option<bool>,
}

/// `GET .../agents/{agent_id}/inbox?waiting=true&limit=N`: the agent's messages not read yet
/// (with `waiting`: not answered yet), oldest first — `inbox.unread`'s payload. Reading does not
/// mark them read.
pub async fn inbox(
    State(st): State<Arc<HttpState>>,
    Path((session, agent)): Path<(String, String)>,
    Query(q): Query<InboxQuery>,
) -> Result<Response, Problem> {
    let mut payload = json!({ "agent": agent, "waiting": q.waiting.unwrap_or(false) });
    if let Some(limit) = q.limit {
        payload["limit"] = limit.into();
    }
    let resp = call(&st, "inbox.unread", Some(&session), payload).await?;
    Ok(axum::Json(resp.payload.unwrap_or_default()).into_response())
}

/// `POST .../agents/{agent_id}/inbox/read` `{ids}`: the agent has read these (`message.read`).
pub async fn inbox_read(
    State(st): State<Arc<HttpState>>,
    Path((session, agent)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Problem> {
    let body = object_body(&body)?;
    let ids = body
        .get("ids")
        .filter(|v| v.is_array())
        .cloned()
        .ok_or_else(|| {
            Problem::new("bad_request", "`ids` (an array of message ids) is required")
        })?;
    let resp = call(
        &st,
        "message.read",
        Some(&session),
        json!({ "agent": agent, "ids": ids }),
    )
    .await?;
    Ok(axum::Json(resp.payload.unwrap_or_default()).into_response())
}

/// `POST /api/sessions/{id}/actions/{action_id}/result`
/// `{from, to, status, detail?, group_id?, action_index?}`: the result of an action given to the
/// HTTP agent `from`, sent as it to `to` (the conversation's owner or the sender of the group).
/// `status` as `action.result`'s; `completed` approves, `rejected` denies. `202` with its id.
pub async fn action_result(
    State(st): State<Arc<HttpState>>,
    Path((session, action_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, Problem> {
    let body = object_body(&body)?;
    let field = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| Problem::new("bad_request", format!("`{key}` (a string) is required")))
    };
    let (from, to, status) = (field("from")?, field("to")?, field("status")?);
    let mut payload = json!({ "action_id": action_id, "status": status });
    for key in ["detail", "group_id", "action_index"] {
        if let Some(v) = body.get(key) {
            payload[key] = v.clone();
        }
    }
    let link = st.links.bind(&st.bus, &session, &from, None).await?;
    let mut env = Envelope::new("action.result", String::new(), String::new(), from);
    env.dst = Some(to);
    env.payload = Some(payload);
    let resp = link.request(env).await?;
    if resp.error.is_some() {
        return Err(Problem::from_envelope(&resp));
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(resp.payload.unwrap_or_default()),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct CursorQuery {
    since: Option<u64>,
}

/// `GET .../agents/{agent_id}/inbox/stream`: SSE of the deliveries to an HTTP agent — what is
/// waiting (after the `Last-Event-ID` / `?since=` record seq, if given), then live. `id:` = the
/// delivered record's seq, `event:` = the delivery's type, `data:` = the delivered envelope.
pub async fn inbox_stream(
    State(st): State<Arc<HttpState>>,
    Path((session, agent)): Path<(String, String)>,
    Query(q): Query<CursorQuery>,
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
    let guard = SseGuard::new(&st.sse_clients);
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
