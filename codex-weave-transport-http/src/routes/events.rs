//! A session's records: its history, search over it, and `GET /api/sessions/{id}/events/stream`,
//! the records as Server-Sent Events.
//! `id:` = the record's seq, `event:` = its envelope type, `data:` = the record's JSON exactly as
//! `events.history` returns it. A stream without a cursor opens with a `snapshot` event (the
//! session, its agents, its open relays; `id:` = the head seq). A cursor — `Last-Event-ID`,
//! which wins over `?since=` — resumes with no gap and no duplicate: the bus replays and then
//! follows in one step, and the stream drops any seq it has already sent. A cursor ahead of the
//! head, or below the oldest record kept (`retain_events`), gets a `gap` event first. Keep-alive comments every 15 s; the stream ends cleanly when the
//! daemon shuts down.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use codex_weave_runtime::Envelope;
use futures::{stream, Stream, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::problem::Problem;
use crate::routes::{call, json_text, OPERATOR};
use crate::stream::{SseGuard, KEEP_ALIVE};
use crate::HttpState;

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
        Ok(payload) => Ok(json_text(StatusCode::OK, payload)),
        Err(resp) => Err(Problem::from_envelope(&resp)),
    }
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
        Ok(payload) => Ok(json_text(StatusCode::OK, payload)),
        Err(resp) => Err(Problem::from_envelope(&resp)),
    }
}

#[derive(Deserialize)]
pub struct StreamQuery {
    since: Option<u64>,
}

#[derive(Deserialize)]
struct RecordHead {
    envelope: TypeOnly,
}

#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: String,
}

/// The cursor to resume from: `Last-Event-ID` if present and numeric, else `?since=`.
fn cursor(headers: &HeaderMap, q: &StreamQuery) -> Result<Option<u64>, Problem> {
    match headers
        .get("last-event-id")
        .map(|v| v.to_str().map(str::trim))
    {
        Some(Ok(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| Problem::new("bad_request", "Last-Event-ID must be a record seq")),
        Some(Err(_)) => Err(Problem::new("bad_request", "Last-Event-ID must be ASCII")),
        None => Ok(q.since),
    }
}

pub async fn events_stream(
    State(st): State<Arc<HttpState>>,
    Path(id): Path<String>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    let cursor = cursor(&headers, &q)?;
    let got = call(&st, "session.get", Some(&id), Value::Null).await?;
    let snapshot = got.payload.unwrap_or_default();
    let head = snapshot["session"]["last_seq"].as_u64().unwrap_or(0);
    // The oldest record kept (`retain_events` prunes older ones).
    let first = snapshot["session"]["first_seq"]
        .as_u64()
        .unwrap_or(1)
        .max(1);
    let mut first_events = Vec::new();
    let since = match cursor {
        None => {
            let relays = call(&st, "relays.list", Some(&id), json!({ "open_only": true })).await?;
            let data = json!({
                "session": snapshot["session"],
                "agents": snapshot["agents"],
                "relays": relays.payload.unwrap_or_default()["relays"],
            });
            first_events.push(
                Event::default()
                    .id(head.to_string())
                    .event("snapshot")
                    .data(data.to_string()),
            );
            head
        }
        Some(c) if c > head || c + 1 < first => {
            // Ahead of the head, or older than what is kept: say so, then go on from what exists.
            let resume_from = if c > head { head } else { first - 1 };
            let data = json!({ "requested": c, "head": head, "first_available": first, "resume_from": resume_from });
            first_events.push(Event::default().event("gap").data(data.to_string()));
            resume_from
        }
        Some(c) => c,
    };
    let conn = st.bus.connect();
    let mut req = Envelope::new(
        "events.stream",
        uuid::Uuid::new_v4().to_string(),
        String::new(),
        OPERATOR,
    );
    req.session = Some(id);
    req.payload = Some(json!({ "since": since, "follow": true }));
    conn.send(req);
    let shutdown = st.shutdown.clone();
    let guard = SseGuard::new(&st.sse_clients);
    let live = stream::unfold(
        (conn, since, shutdown, guard, false),
        |(mut conn, mut last, shutdown, guard, ended)| async move {
            if ended {
                return None;
            }
            loop {
                let line = tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    line = conn.next_line() => line?,
                };
                let Ok(env) = serde_json::from_slice::<Envelope<Box<RawValue>>>(&line) else {
                    continue;
                };
                if env.kind == "events.cut" {
                    // Too far behind for the log: say where to resume, then end (an
                    // EventSource reconnects with Last-Event-ID and is told of the gap).
                    let data = env.payload.map(|p| p.get().to_owned()).unwrap_or_default();
                    let event = Event::default().event("cut").data(data);
                    return Some((Ok(event), (conn, last, shutdown, guard, true)));
                }
                if env.kind != "events.record" {
                    if env.error.is_some() {
                        return None; // the stream was refused (session gone): end it
                    }
                    continue;
                }
                let (Some(seq), Some(record)) = (env.seq, env.payload) else {
                    continue;
                };
                if seq <= last {
                    continue; // already sent
                }
                last = seq;
                let data = record.get();
                let kind = serde_json::from_str::<RecordHead>(data)
                    .map(|h| h.envelope.kind)
                    .unwrap_or_default();
                let event = Event::default().id(seq.to_string()).event(kind).data(data);
                return Some((Ok(event), (conn, last, shutdown, guard, false)));
            }
        },
    );
    let all = stream::iter(first_events.into_iter().map(Ok)).chain(live);
    Ok(Sse::new(all).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
