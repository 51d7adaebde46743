//! REST handlers: each builds the bus request a socket client would send, calls the bus in
//! process, and returns its payload (as the bus wrote it) or a problem.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use codex_weave_runtime::Envelope;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::problem::Problem;
use crate::HttpState;

/// `src` of requests the HTTP facade makes on behalf of the token holder.
pub const OPERATOR: &str = "operator";

/// Calls the bus; an error response becomes a problem.
pub async fn call(
    st: &HttpState,
    kind: &str,
    session: Option<&str>,
    payload: Value,
) -> Result<Envelope, Problem> {
    let mut env = Envelope::new(kind, String::new(), String::new(), OPERATOR);
    env.session = session.map(str::to_owned);
    if !payload.is_null() {
        env.payload = Some(payload);
    }
    let resp = st.bus.call(env).await.ok_or_else(Problem::bus_gone)?;
    if resp.error.is_some() {
        return Err(Problem::from_envelope(&resp));
    }
    Ok(resp)
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn payload_of(resp: &Envelope) -> Value {
    resp.payload.clone().unwrap_or(Value::Null)
}

/// A JSON object body, or a `bad_request` problem.
pub(crate) fn object_body(body: &Bytes) -> Result<Map<String, Value>, Problem> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Problem::new(
            "bad_request",
            "the body must be a JSON object",
        )),
        Err(e) => Err(Problem::new(
            "bad_request",
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

pub async fn health(State(st): State<Arc<HttpState>>) -> Response {
    let stats = call(&st, "bus.stats", None, Value::Null).await;
    let body = json!({
        "status": if stats.is_ok() { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "socket": st.socket,
        "bus": stats.as_ref().map(payload_of).unwrap_or(Value::Null),
    });
    json_response(StatusCode::OK, body.to_string())
}

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
    Ok(json_response(StatusCode::OK, payload_of(&resp).to_string()))
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
    Ok(json_response(
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
    Ok(json_response(StatusCode::OK, session.to_string()))
}

pub async fn close_session(
    State(st): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let resp = call(&st, "session.close", Some(&id), Value::Null).await?;
    Ok(json_response(StatusCode::OK, payload_of(&resp).to_string()))
}

pub async fn list_agents(
    State(st): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let resp = call(&st, "agent.list", Some(&id), Value::Null).await?;
    Ok(json_response(StatusCode::OK, payload_of(&resp).to_string()))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    since: Option<u64>,
    limit: Option<u64>,
}

/// The very records `events.history` serves on the socket: the payload is passed through as the
/// bus wrote it, byte for byte.
pub async fn history(
    State(st): State<Arc<HttpState>>,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, Problem> {
    let mut env = Envelope::new("events.history", String::new(), String::new(), OPERATOR);
    env.session = Some(id);
    env.payload = Some(json!({ "since": q.since, "limit": q.limit }));
    let raw = st.bus.call_raw(env).await.ok_or_else(Problem::bus_gone)?;
    match raw {
        Ok(payload) => Ok(json_response(StatusCode::OK, payload)),
        Err(resp) => Err(Problem::from_envelope(&resp)),
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
    Ok(json_response(StatusCode::OK, body.to_string()))
}

#[derive(Debug, Deserialize)]
pub struct SearchParams {
    text: Option<String>,
    from: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<u64>,
    limit: Option<u64>,
}

/// The records `events.search` finds, passed through as the bus wrote them.
pub async fn search(
    State(st): State<Arc<HttpState>>,
    Path(id): Path<String>,
    Query(q): Query<SearchParams>,
) -> Result<Response, Problem> {
    let mut env = Envelope::new("events.search", String::new(), String::new(), OPERATOR);
    env.session = Some(id);
    env.payload = Some(json!({
        "text": q.text, "from": q.from, "since": q.since, "until": q.until,
        "before": q.before, "limit": q.limit,
    }));
    match st.bus.call_raw(env).await.ok_or_else(Problem::bus_gone)? {
        Ok(payload) => Ok(json_response(StatusCode::OK, payload)),
        Err(resp) => Err(Problem::from_envelope(&resp)),
    }
}

pub async fn list_relays(
    State(st): State<Arc<HttpState>>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let resp = call(&st, "relays.list", Some(&id), Value::Null).await?;
    Ok(json_response(StatusCode::OK, payload_of(&resp).to_string()))
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
    Ok(json_response(
        StatusCode::OK,
        json!({ "tasks": tasks }).to_string(),
    ))
}

/// The web UI (`weave-web/`), embedded in the binary: no build step, no files to install.
const INDEX_HTML: &str = include_str!("../../weave-web/index.html");
const APP_JS: &str = include_str!("../../weave-web/app.js");
const STYLE_CSS: &str = include_str!("../../weave-web/style.css");

pub async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

pub async fn app_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        APP_JS,
    )
        .into_response()
}

pub async fn style_css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLE_CSS,
    )
        .into_response()
}
