//! Sessions: list, create, one, close, and the session list live (`GET /api/sessions/stream`).

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use codex_weave_runtime::Envelope;
use futures::{stream, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::problem::Problem;
use crate::routes::{call, json_text, object_body, payload_of, OPERATOR};
use crate::stream::{SseGuard, KEEP_ALIVE};
use crate::HttpState;

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    include_closed: bool,
}

pub async fn list_sessions(
    State(st): State<Arc<HttpState>>,
    Query(q): Query<ListQuery>,
) -> Result<Response, Problem> {
    let resp = call(
        &st,
        "session.list",
        None,
        json!({ "include_closed": q.include_closed }),
    )
    .await?;
    Ok(json_text(StatusCode::OK, payload_of(&resp).to_string()))
}

pub async fn create_session(
    State(st): State<Arc<HttpState>>,
    body: Bytes,
) -> Result<Response, Problem> {
    let body = object_body(&body)?;
    let name = match body.get("name") {
        None | Some(Value::String(_)) => body.get("name"),
        Some(_) => return Err(Problem::new("bad_request", "`name` is a string")),
    };
    let resp = call(&st, "session.create", None, json!({ "name": name })).await?;
    Ok(json_text(
        StatusCode::CREATED,
        payload_of(&resp).to_string(),
    ))
}

pub async fn get_session(
    State(st): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let resp = call(&st, "session.get", Some(&id), Value::Null).await?;
    let p = payload_of(&resp);
    let mut session = p["session"].clone();
    session["agents"] = p["agents"].clone();
    Ok(json_text(StatusCode::OK, session.to_string()))
}

pub async fn close_session(
    State(st): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let resp = call(&st, "session.close", Some(&id), Value::Null).await?;
    Ok(json_text(StatusCode::OK, payload_of(&resp).to_string()))
}

/// A `snapshot` event with `{sessions}` (open and closed), then a `session` event with the
/// session's summary whenever a session is created or closed or its agents change. No resume: a
/// reconnecting client gets a fresh snapshot.
pub async fn sessions_stream(
    State(st): State<Arc<HttpState>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let mut conn = st.bus.connect();
    let mut req = Envelope::new(
        "sessions.stream",
        uuid::Uuid::new_v4().to_string(),
        String::new(),
        OPERATOR,
    );
    req.payload = Some(serde_json::json!({ "include_closed": true }));
    let id = req.id.clone();
    conn.send(req);
    let snapshot = loop {
        let line = conn.next_line().await.ok_or_else(Problem::bus_gone)?;
        let Ok(env) = serde_json::from_slice::<Envelope>(&line) else {
            continue;
        };
        if env.corr.as_deref() == Some(id.as_str()) && env.status.is_some() {
            break env.payload.unwrap_or(Value::Null);
        }
    };
    let first = Event::default()
        .event("snapshot")
        .data(snapshot.to_string());
    let guard = SseGuard::new(&st.sse_clients);
    let shutdown = st.shutdown.clone();
    let live = stream::unfold(
        (conn, shutdown, guard),
        |(mut conn, shutdown, guard)| async move {
            loop {
                let line = tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    line = conn.next_line() => line?,
                };
                let Ok(env) = serde_json::from_slice::<Envelope>(&line) else {
                    continue;
                };
                if env.kind == "sessions.changed" {
                    let data = env.payload.unwrap_or(Value::Null).to_string();
                    return Some((
                        Ok(Event::default().event("session").data(data)),
                        (conn, shutdown, guard),
                    ));
                }
            }
        },
    );
    Ok(Sse::new(stream::iter([Ok(first)]).chain(live))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
