//! The OpenAPI document served at `/api/openapi.json`, built from the route table so that the
//! document and the router cannot drift apart (the security test walks this document).

use serde_json::{json, Map, Value};

/// (method, path, summary, needs credentials). Every route the daemon serves under `/api`.
pub const ROUTES: &[(&str, &str, &str, bool)] = &[
    ("get", "/api/health", "Liveness and bus counters.", false),
    ("get", "/api/openapi.json", "This document.", false),
    (
        "get",
        "/api/sessions",
        "List sessions (`?include_closed=true` for all).",
        true,
    ),
    (
        "post",
        "/api/sessions",
        "Create a session `{name}`; 201 with the session.",
        true,
    ),
    (
        "get",
        "/api/sessions/stream",
        "SSE: a snapshot of the session list, then changes.",
        true,
    ),
    (
        "get",
        "/metrics",
        "Prometheus text: connections, agents, messages, acks, queues, SSE clients, commits.",
        true,
    ),
    (
        "get",
        "/api/sessions/{id}",
        "A session with its agents.",
        true,
    ),
    ("post", "/api/sessions/{id}/close", "Close a session.", true),
    (
        "get",
        "/api/sessions/{id}/agents",
        "The session's agents.",
        true,
    ),
    (
        "post",
        "/api/sessions/{id}/agents",
        "Register an HTTP agent `{name, kind: human|sdk}`; 201.",
        true,
    ),
    (
        "post",
        "/api/sessions/{id}/agents/order",
        "Order the agents `{ids}` (operator).",
        true,
    ),
    (
        "patch",
        "/api/sessions/{id}/agents/{agent_id}",
        "Rename any agent `{name}` (operator).",
        true,
    ),
    (
        "delete",
        "/api/sessions/{id}/agents/{agent_id}",
        "Remove any agent (operator).",
        true,
    ),
    (
        "get",
        "/api/sessions/{id}/agents/{agent_id}/inbox/stream",
        "SSE of the deliveries to an HTTP agent.",
        true,
    ),
    (
        "post",
        "/api/sessions/{id}/agents/{agent_id}/inbox/ack",
        "Acknowledge deliveries `{ids}`.",
        true,
    ),
    (
        "post",
        "/api/sessions/{id}/messages",
        "Send `{from, text, agent_ids, kind?, parent_message_id?}` as an HTTP agent; 202.",
        true,
    ),
    (
        "get",
        "/api/sessions/{id}/messages/{message_id}",
        "A message's receipts, one per recipient: `{id, receipts: [{message, agent, state, seq}]}`, as `message.receipts`.",
        true,
    ),
    (
        "get",
        "/api/sessions/{id}/events",
        "Records `?since=SEQ&limit=N` -> `{records, next, head}`, as `events.history`.",
        true,
    ),
    (
        "get",
        "/api/sessions/{id}/search",
        "Records found by `?text=WORDS&from=AGENT&since=TIME&until=TIME&before=SEQ&limit=N`, newest first -> `{records, next_before}`, as `events.search`.",
        true,
    ),
    (
        "get",
        "/api/sessions/{id}/events/stream",
        "Server-Sent Events of the records; resumable with Last-Event-ID.",
        true,
    ),
    (
        "get",
        "/api/sessions/{id}/relays",
        "The session's relays with their tasks and actions.",
        true,
    ),
    (
        "post",
        "/api/sessions/{id}/relays",
        "Start or continue a relay: the relay.submit payload plus `from`.",
        true,
    ),
    (
        "post",
        "/api/sessions/{id}/relays/{relay_id}/done",
        "Finish a relay `{summary?, from?}`.",
        true,
    ),
    (
        "post",
        "/api/sessions/{id}/relays/{relay_id}/cancel",
        "Cancel a relay `{reason?, from?}`.",
        true,
    ),
    (
        "get",
        "/api/sessions/{id}/tasks",
        "The session's relay tasks.",
        true,
    ),
    ("post", "/api/logout", "Revoke the session cookie.", true),
];

/// The success status of a route and the media type of its body (none for 204).
fn success(method: &str, path: &str) -> (&'static str, Option<&'static str>) {
    match (method, path) {
        ("post", "/api/sessions" | "/api/sessions/{id}/agents") => {
            ("201", Some("application/json"))
        }
        ("post", "/api/sessions/{id}/messages") => ("202", Some("application/json")),
        ("post", "/api/logout") => ("204", None),
        (_, "/metrics") => ("200", Some("text/plain")),
        (_, p) if p.ends_with("/stream") => ("200", Some("text/event-stream")),
        _ => ("200", Some("application/json")),
    }
}

/// The JSON body a route requires, as a schema (what its handler checks).
fn request_body(method: &str, path: &str) -> Option<Value> {
    let text = json!({ "type": "string", "minLength": 1 });
    let ids = json!({ "type": "array", "items": { "type": "string" } });
    // A display name as the bus checks it: 1–64 characters, not only spaces, no controls.
    let name = json!({ "type": "string", "maxLength": 64,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$" });
    let object = |required: &[&str], properties: Value| json!({ "type": "object", "required": required, "properties": properties });
    Some(match (method, path) {
        ("post", "/api/sessions") => object(&[], json!({ "name": name })),
        ("post", "/api/sessions/{id}/agents") => object(
            &["name"],
            json!({ "name": name, "kind": { "enum": ["human", "sdk"] }, "id": text }),
        ),
        ("patch", "/api/sessions/{id}/agents/{agent_id}") => {
            object(&["name"], json!({ "name": name }))
        }
        ("post", "/api/sessions/{id}/agents/order") => object(&["ids"], json!({ "ids": ids })),
        ("post", "/api/sessions/{id}/agents/{agent_id}/inbox/ack") => {
            object(&["ids"], json!({ "ids": ids }))
        }
        ("post", "/api/sessions/{id}/messages") => object(
            &["from", "text", "agent_ids"],
            json!({ "from": text, "text": text,
                    "agent_ids": { "type": "array", "items": { "type": "string" }, "minItems": 1 },
                    "kind": { "enum": ["user", "reply", "control"] }, "parent_message_id": { "type": "string" } }),
        ),
        ("post", "/api/sessions/{id}/relays") => object(
            &["from", "relay_id"],
            json!({ "from": text, "relay_id": text, "targets": ids, "actions": { "type": "array" } }),
        ),
        ("post", "/api/sessions/{id}/relays/{relay_id}/done") => object(
            &[],
            json!({ "summary": { "type": "string" }, "from": text }),
        ),
        ("post", "/api/sessions/{id}/relays/{relay_id}/cancel") => {
            object(&[], json!({ "reason": { "type": "string" }, "from": text }))
        }
        _ => return None,
    })
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, summary, auth) in ROUTES {
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        let (status, media) = success(method, path);
        let mut ok = json!({ "description": "Success" });
        if let Some(media) = media {
            ok["content"] = json!({ media: {} });
        }
        let mut op = json!({
            "summary": summary,
            "responses": {
                status: ok,
                "default": { "description": "Problem", "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } }
            }
        });
        if let Some(schema) = request_body(method, path) {
            // A body without required fields may be left out: it is read as `{}`.
            let required = schema["required"].as_array().is_some_and(|r| !r.is_empty());
            op["requestBody"] = json!({ "required": required, "content": { "application/json": { "schema": schema } } });
        }
        if !auth {
            op["security"] = json!([]);
        }
        let params: Vec<Value> = ["id", "agent_id", "relay_id"]
            .iter()
            .filter(|p| path.contains(&format!("{{{p}}}")))
            .map(|p| json!({ "name": p, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Weave HTTP API", "version": env!("CARGO_PKG_VERSION"),
                  "description": "See docs/weave/http-api.md. Records are those of the socket's events.history." },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }, { "cookie": [] }],
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "cookie": { "type": "apiKey", "in": "cookie", "name": crate::auth::COOKIE }
            },
            "schemas": {
                "Problem": { "type": "object", "required": ["type", "title", "status", "code"], "properties": {
                    "type": { "type": "string" }, "title": { "type": "string" }, "status": { "type": "integer" },
                    "detail": { "type": "string" }, "code": { "type": "string" } } }
            }
        },
        "paths": paths,
    })
}
