//! The daemon itself: `GET /api/health` and `GET /metrics` (Prometheus text).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::problem::Problem;
use crate::routes::{call, json_text, payload_of};
use crate::HttpState;

pub async fn health(State(st): State<Arc<HttpState>>) -> Response {
    let stats = call(&st, "bus.stats", None, Value::Null).await;
    let body = json!({
        "status": if stats.is_ok() { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "socket": st.socket,
        "bus": stats.as_ref().map(payload_of).unwrap_or(Value::Null),
    });
    json_text(StatusCode::OK, body.to_string())
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
        "sse_feeds",
        "gauge",
        "Sessions whose event streams share a feed.",
        st.feeds.live() as f64,
    );
    metric(
        "sse_replays_total",
        "counter",
        "Times an SSE stream read records from the log: a cursor behind the head, or a client behind its feed.",
        st.feeds.replays.load(Ordering::Relaxed) as f64,
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
