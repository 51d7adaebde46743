//! `GET /api/sessions/stream` (the session list, live) and `GET /metrics` (Prometheus text).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use codex_weave_runtime::Envelope;
use futures::{stream, Stream, StreamExt};
use serde_json::Value;

use crate::problem::Problem;
use crate::routes::{call, OPERATOR};
use crate::sse::KEEP_ALIVE;
use crate::HttpState;

/// Counts an open SSE stream for `/metrics` while alive.
#[derive(Debug)]
pub struct SseGuard(Arc<AtomicU64>);

impl SseGuard {
    pub fn new(counter: &Arc<AtomicU64>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter.clone())
    }
}

impl Drop for SseGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
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

/// Prometheus text format: the bus's counters and gauges, and the facade's SSE clients.
pub async fn metrics(State(st): State<Arc<HttpState>>) -> Result<Response, Problem> {
    let stats = call(&st, "bus.stats", None, Value::Null)
        .await?
        .payload
        .unwrap_or_default();
    let c = &stats["counters"];
    let n = |v: &Value| v.as_f64().unwrap_or(0.0);
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        out.push_str(&format!(
            "# HELP weave_{name} {help}\n# TYPE weave_{name} {kind}\nweave_{name} {value}\n"
        ));
    };
    metric(
        "connections_open",
        "gauge",
        "Socket connections open.",
        n(&c["connections_open"]),
    );
    metric(
        "connections_total",
        "counter",
        "Socket connections accepted.",
        n(&c["connections_total"]),
    );
    metric(
        "connections_refused_total",
        "counter",
        "Connections refused (uid, limit).",
        n(&c["connections_refused"]),
    );
    metric(
        "sessions",
        "gauge",
        "Sessions known to the bus.",
        n(&stats["sessions"]),
    );
    metric(
        "agents",
        "gauge",
        "Registered agents, all sessions.",
        n(&stats["agents"]),
    );
    metric(
        "agents_online",
        "gauge",
        "Agents with a live connection.",
        n(&stats["agents_online"]),
    );
    metric(
        "requests_total",
        "counter",
        "Requests received.",
        n(&c["requests"]),
    );
    metric(
        "errors_total",
        "counter",
        "Requests answered with an error.",
        n(&c["errors"]),
    );
    metric(
        "messages_in_total",
        "counter",
        "Records written (messages and events).",
        n(&c["records"]),
    );
    metric(
        "messages_out_total",
        "counter",
        "Deliveries sent to agents.",
        n(&c["deliveries"]),
    );
    metric(
        "acks_total",
        "counter",
        "Deliveries acknowledged.",
        n(&c["acks"]),
    );
    metric(
        "redeliveries_total",
        "counter",
        "Deliveries sent again.",
        n(&c["redeliveries"]),
    );
    metric(
        "dead_letters_total",
        "counter",
        "Deliveries given up on.",
        n(&c["dead_letters"]),
    );
    metric(
        "queue_depth",
        "gauge",
        "Deliveries waiting or unacked, all agents.",
        n(&stats["pending_deliveries"]),
    );
    metric(
        "sse_clients",
        "gauge",
        "Open SSE streams.",
        st.sse_clients.load(Ordering::Relaxed) as f64,
    );
    metric(
        "store_commits_total",
        "counter",
        "Group commits.",
        n(&c["batches"]),
    );
    metric(
        "store_commit_seconds_total",
        "counter",
        "Time spent committing.",
        n(&c["commit_micros_total"]) / 1e6,
    );
    metric(
        "store_commit_seconds_max",
        "gauge",
        "Longest commit.",
        n(&c["commit_micros_max"]) / 1e6,
    );
    metric(
        "store_errors_total",
        "counter",
        "Commits that failed.",
        n(&c["store_errors"]),
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
