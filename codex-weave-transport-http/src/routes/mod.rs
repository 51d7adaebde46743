//! The REST and SSE handlers, one module per resource. Each builds the bus request a socket
//! client would send, calls the bus in process, and answers its payload (as the bus wrote it)
//! or a problem; the helpers every resource shares are here.

pub mod agents;
pub mod events;
pub mod inbox;
pub mod messages;
pub mod meta;
pub mod relays;
pub mod sessions;
pub mod web;

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use codex_weave_runtime::Envelope;
use serde_json::{Map, Value};

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

/// A JSON answer whose text is ready (the bus's payload as it wrote it).
pub(crate) fn json_text(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

pub(crate) fn payload_of(resp: &Envelope) -> Value {
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

pub(crate) fn text_field(body: &Map<String, Value>, key: &str) -> Result<String, Problem> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Problem::new("bad_request", format!("`{key}` (a string) is required")))
}

pub(crate) async fn operator_call(
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
