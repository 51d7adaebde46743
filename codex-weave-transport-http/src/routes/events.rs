//! A session's records: its history, search over it, and `GET /api/sessions/{id}/events/stream`,
//! the records as Server-Sent Events.
//! `id:` = the record's seq, `event:` = its envelope type, `data:` = the record's JSON exactly as
//! `events.history` returns it. A stream without a cursor opens with a `snapshot` event (the
//! session, its agents, its open relays; `id:` = the head seq). A cursor — `Last-Event-ID`,
//! which wins over `?since=` — resumes with no gap and no duplicate: the bus replays and then
//! follows in one step, and the stream drops any seq it has already sent. A cursor ahead of the
//! head, or below the oldest record kept (`retain_events`), gets a `gap` event first. Keep-alive
//! comments every 15 s; the stream ends cleanly when the daemon shuts down. Live records come
//! from the session's shared feed (`feeds.rs`); a client behind it reads from the log.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use codex_weave_runtime::Envelope;
use futures::stream;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::{
    self,
    error::{RecvError, TryRecvError},
};
use tokio::time::{Instant, Sleep};
use weave_bus::LocalConn;

use crate::feeds::{self, Feed, Frame, Line};
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
) -> Result<Response, Problem> {
    let cursor = cursor(&headers, &q)?;
    let got = call(&st, "session.get", Some(&id), Value::Null).await?;
    let snapshot = got.payload.unwrap_or_default();
    let head = snapshot["session"]["last_seq"].as_u64().unwrap_or(0);
    // The oldest record kept (`retain_events` prunes older ones).
    let first = snapshot["session"]["first_seq"]
        .as_u64()
        .unwrap_or(1)
        .max(1);
    let mut opening = VecDeque::new();
    let since = match cursor {
        None => {
            let relays = call(&st, "relays.list", Some(&id), json!({ "open_only": true })).await?;
            let data = json!({
                "session": snapshot["session"],
                "agents": snapshot["agents"],
                "relays": relays.payload.unwrap_or_default()["relays"],
            });
            opening.push_back(feeds::event(Some(head), "snapshot", &data.to_string()));
            head
        }
        Some(c) if c > head || c + 1 < first => {
            // Ahead of the head, or older than what is kept: say so, then go on from what exists.
            let resume_from = if c > head { head } else { first - 1 };
            let data = json!({ "requested": c, "head": head, "first_available": first, "resume_from": resume_from });
            opening.push_back(feeds::event(None, "gap", &data.to_string()));
            resume_from
        }
        Some(c) => c,
    };
    // Joined before the replay starts, so that nothing falls between the two.
    let (feed, rx) = st.feeds.join(&st.bus, &id, head);
    let mut client = SseClient {
        st: st.clone(),
        session: id,
        last: since,
        _feed: feed,
        rx,
        replay: None,
        held: None,
        opening,
        keep_alive: Box::pin(tokio::time::sleep(KEEP_ALIVE)),
        last_sent: Instant::now(),
        _guard: SseGuard::new(&st.sse_clients),
        ended: false,
    };
    if since < head {
        client.replay_from_log();
    }
    let body = stream::unfold(client, |mut c| async move {
        c.next().await.map(|event| (Ok::<_, Infallible>(event), c))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// One SSE client of a session's records: what it has sent (through `last`), the session's
/// feed, and the replay from the log it reads while it is behind the feed.
struct SseClient {
    st: Arc<HttpState>,
    session: String,
    last: u64,
    _feed: Arc<Feed>,
    rx: broadcast::Receiver<Frame>,
    replay: Option<LocalConn>,
    /// What the feed said that [`SseClient::batch`] took but could not add to its chunk.
    held: Option<Result<Frame, RecvError>>,
    /// The `snapshot` or `gap` event, sent first.
    opening: VecDeque<Bytes>,
    /// Fires [`KEEP_ALIVE`] after `last_sent` (re-armed lazily: at most once per interval).
    keep_alive: Pin<Box<Sleep>>,
    last_sent: Instant,
    _guard: SseGuard,
    ended: bool,
}

/// Bytes of events a client that fell behind the feed gets in one chunk.
const MAX_CHUNK: usize = 64 * 1024;

/// What a stream sends after [`KEEP_ALIVE`] without an event: an SSE comment.
const KEEP_ALIVE_COMMENT: &[u8] = b":\n\n";

impl SseClient {
    /// The next bytes to send: events, or a keep-alive comment after [`KEEP_ALIVE`] of
    /// silence; `None` ends the stream.
    async fn next(&mut self) -> Option<Bytes> {
        let next = self.take().await;
        self.last_sent = Instant::now();
        next
    }

    async fn take(&mut self) -> Option<Bytes> {
        if let Some(event) = self.opening.pop_front() {
            return Some(event);
        }
        while !self.ended {
            if let Some(replay) = &mut self.replay {
                let line = tokio::select! {
                    _ = self.st.shutdown.cancelled() => return None,
                    line = replay.next_line() => line?,
                };
                match Line::parse(&line) {
                    Line::Record { seq, event } if seq > self.last => {
                        self.last = seq;
                        return Some(event);
                    }
                    // Too far behind for the log: say where to resume, then end (an
                    // EventSource reconnects with Last-Event-ID and is told of the gap).
                    Line::Cut { data, .. } => {
                        self.ended = true;
                        return Some(feeds::event(None, "cut", &data));
                    }
                    Line::Response { refused: true } => return None,
                    Line::Response { refused: false } => self.replay = None,
                    Line::Record { .. } | Line::Other => {}
                }
                continue;
            }
            let got = match self.held.take() {
                Some(got) => got,
                None => tokio::select! {
                    _ = self.st.shutdown.cancelled() => return None,
                    () = &mut self.keep_alive => {
                        let due = self.last_sent + KEEP_ALIVE;
                        if due <= Instant::now() {
                            self.keep_alive.as_mut().reset(Instant::now() + KEEP_ALIVE);
                            return Some(Bytes::from_static(KEEP_ALIVE_COMMENT));
                        }
                        self.keep_alive.as_mut().reset(due);
                        continue;
                    }
                    got = self.rx.recv() => got,
                },
            };
            match got {
                Ok(Frame::Record { seq, event }) if seq == self.last + 1 => {
                    self.last = seq;
                    return Some(self.batch(event));
                }
                // Some went by unseen (this client read slower than the feed): from the log.
                Ok(Frame::Record { seq, .. }) if seq > self.last => self.replay_from_log(),
                Ok(Frame::Record { .. }) => {} // already sent
                Ok(Frame::End) | Err(RecvError::Closed) => return None,
                Err(RecvError::Lagged(_)) => {} // the next record shows the gap
            }
        }
        None
    }

    /// `event` and the records right after it that already wait, in one chunk: a client that
    /// fell behind the feed (the machine is busy) catches up with one write, not one per record.
    fn batch(&mut self, event: Bytes) -> Bytes {
        let mut chunk: Option<BytesMut> = None;
        while chunk.as_ref().map_or(event.len(), |c| c.len()) < MAX_CHUNK {
            let next = match self.rx.try_recv() {
                Ok(Frame::Record { seq, event }) if seq == self.last + 1 => {
                    self.last = seq;
                    event
                }
                Ok(Frame::Record { seq, .. }) if seq <= self.last => continue,
                Ok(frame) => {
                    self.held = Some(Ok(frame));
                    break;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => {
                    self.held = Some(Err(RecvError::Closed));
                    break;
                }
                Err(TryRecvError::Lagged(n)) => {
                    self.held = Some(Err(RecvError::Lagged(n)));
                    break;
                }
            };
            chunk
                .get_or_insert_with(|| BytesMut::from(&event[..]))
                .extend_from_slice(&next);
        }
        chunk.map_or(event, BytesMut::freeze)
    }

    /// Reads the records after `last` up to the head from the log, on a connection of its own
    /// (paced by this client: the bus sends as its lines are taken).
    fn replay_from_log(&mut self) {
        self.st.feeds.replays.fetch_add(1, Ordering::Relaxed);
        let conn = self.st.bus.connect();
        feeds::follow(&conn, &self.session, self.last, false);
        self.replay = Some(conn);
    }
}
