//! One follow of a session's records, shared by every SSE client of its
//! `/api/sessions/{id}/events/stream` on this daemon.
//!
//! The bus writes each record once for the feed, the feed formats the SSE event once, and every
//! client writes the very same bytes: with 500 browsers on a session, a record costs the engine
//! one line instead of 500 and this layer one parse instead of 1,000. A client that starts
//! behind the feed (a cursor), or falls behind it (a slow reader: the feed keeps the last
//! [`FEED_CAPACITY`] events), reads what it missed from the log on a connection of its own,
//! paced by how fast it reads, then rejoins the feed; it drops any seq it has already sent.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};

use bytes::{BufMut, Bytes, BytesMut};
use codex_weave_runtime::Envelope;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};
use weave_bus::{Bus, LocalConn};

use crate::routes::OPERATOR;

/// Events a feed keeps for clients that read slower than it: past that, a client reads from
/// the log instead (nothing is lost either way).
pub const FEED_CAPACITY: usize = 1024;

/// What a feed hands its clients.
#[derive(Clone, Debug)]
pub enum Frame {
    /// A record, as a whole SSE event.
    Record { seq: u64, event: Bytes },
    /// The session's stream was refused (the session is gone) or the bus stopped: clients end.
    End,
}

/// The live feeds of this daemon, one per session that has SSE clients.
#[derive(Debug, Default)]
pub struct Feeds {
    by_session: Mutex<HashMap<String, Weak<Feed>>>,
    /// Times a client read records from the log: a cursor behind the head, or a client that
    /// fell behind its feed (for `/metrics`).
    pub replays: AtomicU64,
}

impl Feeds {
    /// The feed of `session` and a receiver of what it sends from now on; started (following
    /// from `head`) when the session has none.
    pub fn join(
        &self,
        bus: &Bus,
        session: &str,
        head: u64,
    ) -> (Arc<Feed>, broadcast::Receiver<Frame>) {
        let mut by_session = self.by_session.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(feed) = by_session.get(session).and_then(Weak::upgrade) {
            if !feed.stop.is_cancelled() {
                let rx = feed.tx.subscribe();
                return (feed, rx);
            }
        }
        by_session.retain(|_, feed| feed.strong_count() > 0);
        let (tx, rx) = broadcast::channel(FEED_CAPACITY);
        let stop = CancellationToken::new();
        tokio::spawn(run(
            bus.clone(),
            session.to_owned(),
            head,
            tx.clone(),
            stop.clone(),
        ));
        let feed = Arc::new(Feed {
            tx,
            stop: stop.clone(),
            _guard: stop.drop_guard(),
        });
        by_session.insert(session.to_owned(), Arc::downgrade(&feed));
        (feed, rx)
    }

    /// Sessions with a live feed (for `/metrics`).
    pub fn live(&self) -> usize {
        let by_session = self.by_session.lock().unwrap_or_else(|e| e.into_inner());
        by_session.values().filter(|f| f.strong_count() > 0).count()
    }
}

/// One session's feed; it stops when its last client drops it.
#[derive(Debug)]
pub struct Feed {
    tx: broadcast::Sender<Frame>,
    stop: CancellationToken,
    _guard: DropGuard,
}

/// Follows `session` from `since` until `stop`, sending each record once to every receiver.
async fn run(
    bus: Bus,
    session: String,
    since: u64,
    tx: broadcast::Sender<Frame>,
    stop: CancellationToken,
) {
    let mut conn = bus.connect();
    let mut last = since;
    follow(&conn, &session, last, true);
    loop {
        let line = tokio::select! {
            _ = stop.cancelled() => return,
            line = conn.next_line() => line,
        };
        let line = match line.as_deref().map(Line::parse) {
            None => break, // the bus is gone
            Some(line) => line,
        };
        match line {
            Line::Record { seq, event } if seq > last => {
                last = seq;
                let _ = tx.send(Frame::Record { seq, event });
            }
            Line::Record { .. } | Line::Response { refused: false } | Line::Other => {}
            // The log no longer has where the feed was: go on from what it has. Clients see
            // the jump, and each meets the cut on its own replay.
            Line::Cut {
                first_available, ..
            } => {
                last = last.max(first_available.saturating_sub(1));
                follow(&conn, &session, last, true);
            }
            Line::Response { refused: true } => break,
        }
    }
    stop.cancel();
    let _ = tx.send(Frame::End);
}

/// Asks `conn` for `session`'s records after `since` (then, with `follow`, live ones).
pub fn follow(conn: &LocalConn, session: &str, since: u64, follow: bool) {
    let id = uuid::Uuid::new_v4().to_string();
    let mut req = Envelope::new("events.stream", id, String::new(), OPERATOR);
    req.session = Some(session.to_owned());
    req.payload = Some(json!({ "since": since, "follow": follow }));
    conn.send(req);
}

/// A line of an `events.stream`, as SSE needs it.
pub enum Line {
    Record {
        seq: u64,
        event: Bytes,
    },
    /// Too far behind for the log (`data`, the bus's notice): the oldest record it still has
    /// is `first_available`.
    Cut {
        data: String,
        first_available: u64,
    },
    /// The answer to the request: a follow's `ok` comes first, a replay's (without `follow`)
    /// last; `refused`, the stream was refused (the session is gone).
    Response {
        refused: bool,
    },
    Other,
}

impl Line {
    pub fn parse(line: &[u8]) -> Line {
        let Ok(env) = serde_json::from_slice::<Envelope<Box<RawValue>>>(line) else {
            return Line::Other;
        };
        match env.kind.as_str() {
            "events.record" => match (env.seq, env.payload) {
                (Some(seq), Some(record)) => {
                    let data = record.get();
                    let kind = serde_json::from_str::<RecordHead>(data)
                        .map(|h| h.envelope.kind)
                        .unwrap_or_default();
                    Line::Record {
                        seq,
                        event: event(Some(seq), &kind, data),
                    }
                }
                _ => Line::Other,
            },
            "events.cut" => {
                let data = env.payload.map(|p| p.get().to_owned()).unwrap_or_default();
                let first_available = serde_json::from_str::<Cut>(&data)
                    .map(|c| c.first_available)
                    .unwrap_or(0);
                Line::Cut {
                    data,
                    first_available,
                }
            }
            "response" => Line::Response {
                refused: env.error.is_some(),
            },
            _ => Line::Other,
        }
    }
}

#[derive(Deserialize)]
struct Cut {
    first_available: u64,
}

#[derive(Deserialize)]
struct RecordHead {
    envelope: KindOnly,
}

#[derive(Deserialize)]
struct KindOnly {
    #[serde(rename = "type", default)]
    kind: String,
}

/// One SSE event: `id:` (when given), `event:`, then `data:` — one `data:` line per line of
/// `data` — and the blank line that ends it.
pub fn event(id: Option<u64>, kind: &str, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + kind.len() + 40);
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.to_string().as_bytes());
        out.put_u8(b'\n');
    }
    // A field's value cannot hold a line break.
    out.put_slice(b"event: ");
    for part in kind.split(['\n', '\r']) {
        out.put_slice(part.as_bytes());
    }
    out.put_u8(b'\n');
    for line in data.split('\n') {
        out.put_slice(b"data: ");
        out.put_slice(line.strip_suffix('\r').unwrap_or(line).as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.freeze()
}
