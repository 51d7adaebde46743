//! The document's component schemas: every request and response body, each with an example
//! taken from a real exchange with `weaved` (the generated-client test validates the examples
//! and the real answers against these schemas).

use serde_json::{json, Map, Value};

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn list(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn text() -> Value {
    json!({ "type": "string", "minLength": 1 })
}

fn count() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

fn strings() -> Value {
    list(string())
}

fn nullable(kind: &str) -> Value {
    json!({ "type": [kind, "null"] })
}

fn one_of(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

/// A display name as the bus checks it: at most 64 characters, not only spaces, no controls.
fn name() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 64,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$" })
}

/// An object schema: its required fields, its properties, one example; other fields allowed
/// (answers may grow fields; clients ignore what they do not know).
fn object(required: &[&str], properties: Value, example: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties, "examples": [example] })
}

const SID: &str = "e70170ae-84bf-4752-bd42-8055f398a4ec";
const MID: &str = "8e4fcc53-7385-4857-90c1-1f5efb57d129";
const TS: &str = "2026-12-05T22:38:26.051504029Z";

fn session_example() -> Value {
    json!({ "id": SID, "name": "review", "status": "open", "created_at": "2026-12-05T22:38:25.877751479Z",
            "agent_count": 2, "online_count": 1, "first_seq": 1, "last_seq": 8 })
}

fn agent_example() -> Value {
    json!({ "id": "pat", "name": "Pat", "kind": "human", "status": "online", "activity": "idle",
            "doing": null, "queued": 0, "unacked": 0 })
}

fn envelope_example() -> Value {
    json!({ "v": 1, "type": "message.send", "id": MID, "ts": "2026-12-05T22:38:26.051279163Z",
            "src": "pat", "dst": "bot", "session": SID,
            "payload": { "text": "hi", "context_id": MID, "owner_id": "pat" },
            "meta": { "weave": { "chain": { "hop": 1, "id": MID }, "origin_src_name": "Pat" } },
            "ack": { "mode": "auto" } })
}

fn record_example() -> Value {
    json!({ "seq": 7, "ts": TS, "envelope": envelope_example() })
}

fn relay_action_example() -> Value {
    json!({ "action_id": "r1:1:0", "action_index": 0, "type": "message", "target": "bot",
            "plan_step_id": "", "expects_reply": true, "dispatched": true, "answered": false,
            "wire": { "type": "message", "dst": "bot", "text": "review the diff", "kind": "user",
                      "action_id": "r1:1:0", "action_index": 0, "plan_step_id": "", "expects_reply": true } })
}

fn task_example() -> Value {
    json!({ "agent_id": "bot", "task_id": "r1:task:bot", "context_id": "r1:bot", "status": "running",
            "relay_id": "r1", "owner_id": "pat" })
}

fn responses() -> Vec<(&'static str, Value)> {
    let session_props = json!({
        "id": string(), "name": nullable("string"), "status": one_of(&["open", "closed"]),
        "created_at": { "type": "string", "format": "date-time" },
        "agent_count": count(), "online_count": count(), "first_seq": count(), "last_seq": count()
    });
    let session_required = [
        "id",
        "name",
        "status",
        "created_at",
        "agent_count",
        "online_count",
        "first_seq",
        "last_seq",
    ];
    let mut detail_props = session_props.clone();
    detail_props["agents"] = list(r("Agent"));
    let mut detail_required = session_required.to_vec();
    detail_required.push("agents");
    let mut detail_example = session_example();
    detail_example["agents"] = json!([agent_example()]);
    let relay_accepted = json!({
        "relay_id": "r1", "status": "accepted", "action_count": 1, "target_count": 1, "failures": [],
        "targets": { "bot": { "context_id": "r1:bot", "group_id": "r1:bot:g1", "task_id": "r1:task:bot",
            "actions": [
                { "action_id": "r1:1:0", "action_index": 0, "type": "message", "plan_step_id": "", "expects_reply": true },
                { "action_id": "r1:1:wait:0", "action_index": 1, "type": "wait", "plan_step_id": "", "targets": ["bot"] }
            ] } },
        "waits": [{ "plan_step_id": "", "targets": ["bot"] }]
    });
    vec![
        (
            "Problem",
            object(
                &["type", "title", "status", "code"],
                json!({ "type": string(), "title": string(), "status": { "type": "integer" },
                        "detail": string(), "code": string() }),
                json!({ "type": "https://weave.dev/problems/unknown_session", "title": "Not Found",
                        "status": 404, "detail": "no session nope", "code": "unknown_session" }),
            ),
        ),
        (
            "Health",
            object(
                &["status", "version", "socket", "bus"],
                json!({ "status": one_of(&["ok"]), "version": string(), "socket": string(),
                        "bus": { "type": "object", "description": "The bus's counters and gauges." } }),
                json!({ "status": "ok", "version": "0.1.0", "socket": "/home/me/.weave/coord.sock",
                        "bus": { "sessions": 1, "agents": 2, "agents_online": 1, "connections": 1,
                                 "pending_deliveries": 0, "counters": { "records": 8, "acks": 1 } } }),
            ),
        ),
        (
            "OpenApiDocument",
            object(
                &["openapi", "info", "paths"],
                json!({ "openapi": string(), "info": { "type": "object" }, "paths": { "type": "object" } }),
                json!({ "openapi": "3.1.0", "info": { "title": "Weave HTTP API", "version": "0.1.0" }, "paths": {} }),
            ),
        ),
        (
            "Session",
            object(&session_required, session_props, session_example()),
        ),
        (
            "SessionDetail",
            object(&detail_required, detail_props, detail_example),
        ),
        (
            "SessionList",
            object(
                &["sessions"],
                json!({ "sessions": list(r("Session")) }),
                json!({ "sessions": [session_example()] }),
            ),
        ),
        (
            "Agent",
            object(
                &[
                    "id", "name", "kind", "status", "activity", "queued", "unacked",
                ],
                json!({ "id": string(), "name": nullable("string"), "kind": one_of(&["agent", "human", "sdk"]),
                        "status": one_of(&["online", "offline"]), "activity": one_of(&["idle", "busy"]),
                        "doing": nullable("string"), "queued": count(), "unacked": count() }),
                agent_example(),
            ),
        ),
        (
            "AgentList",
            object(
                &["agents"],
                json!({ "agents": list(r("Agent")) }),
                json!({ "agents": [agent_example()] }),
            ),
        ),
        (
            "RegisteredAgent",
            object(
                &["id", "name", "kind", "status"],
                json!({ "id": string(), "name": string(), "kind": one_of(&["human", "sdk"]),
                        "status": one_of(&["online"]) }),
                json!({ "id": "pat", "name": "Pat", "kind": "human", "status": "online" }),
            ),
        ),
        (
            "RenamedAgent",
            object(
                &["id", "name"],
                json!({ "id": string(), "name": string() }),
                json!({ "id": "bot", "name": "Reviewer" }),
            ),
        ),
        (
            "RemovedAgent",
            object(
                &["id", "dead_lettered"],
                json!({ "id": string(), "dead_lettered": count() }),
                json!({ "id": "bot", "dead_lettered": 3 }),
            ),
        ),
        (
            "Envelope",
            object(
                &["v", "type", "id", "src"],
                json!({ "v": { "type": "integer" }, "type": string(), "id": string(), "ts": string(),
                        "src": string(), "dst": string(), "session": string(), "corr": string(),
                        "payload": {}, "meta": { "type": "object" }, "ack": { "type": "object" },
                        "error": { "type": "object" } }),
                envelope_example(),
            ),
        ),
        (
            "Record",
            object(
                &["seq", "ts", "envelope"],
                json!({ "seq": count(), "ts": string(), "envelope": r("Envelope") }),
                record_example(),
            ),
        ),
        (
            "History",
            object(
                &["records", "next", "head"],
                json!({ "records": list(r("Record")), "next": count(), "head": count() }),
                json!({ "records": [record_example()], "next": 7, "head": 8 }),
            ),
        ),
        (
            "SearchResult",
            object(
                &["records", "next_before"],
                json!({ "records": list(r("Record")), "next_before": nullable("integer") }),
                json!({ "records": [record_example()], "next_before": null }),
            ),
        ),
        (
            "Receipt",
            object(
                &["message", "agent", "state", "seq"],
                json!({ "message": string(), "agent": string(),
                        "state": one_of(&["queued", "delivered", "read", "answered"]), "seq": count() }),
                json!({ "message": MID, "agent": "bot", "state": "delivered", "seq": 7 }),
            ),
        ),
        (
            "Receipts",
            object(
                &["id", "receipts"],
                json!({ "id": string(), "receipts": list(r("Receipt")) }),
                json!({ "id": MID, "receipts": [{ "message": MID, "agent": "bot", "state": "delivered", "seq": 7 }] }),
            ),
        ),
        (
            "InboxItem",
            object(
                &["id", "seq", "ts", "state", "envelope"],
                json!({ "id": { "type": "string", "description": "The message id (for a relay step: its action_id)." },
                        "seq": count(), "ts": string(),
                        "state": one_of(&["queued", "delivered", "read"]), "envelope": r("Envelope") }),
                json!({ "id": MID, "seq": 7, "ts": TS, "state": "delivered", "envelope": envelope_example() }),
            ),
        ),
        (
            "Inbox",
            object(
                &["agent", "messages", "total", "more"],
                json!({ "agent": string(), "messages": list(r("InboxItem")), "total": count(), "more": count() }),
                json!({ "agent": "bot", "messages": [{ "id": MID, "seq": 7, "ts": TS, "state": "delivered",
                                                       "envelope": envelope_example() }], "total": 1, "more": 0 }),
            ),
        ),
        (
            "MarkedRead",
            object(
                &["agent", "read"],
                json!({ "agent": string(), "read": strings() }),
                json!({ "agent": "pat", "read": [MID] }),
            ),
        ),
        (
            "Acked",
            object(
                &["acked", "unknown"],
                json!({ "acked": count(), "unknown": strings() }),
                json!({ "acked": 1, "unknown": [] }),
            ),
        ),
        (
            "ResultSent",
            object(
                &["id", "seq"],
                json!({ "id": string(), "seq": count() }),
                json!({ "id": "5b0c2a86-0b8e-4a6f-9d43-2f1f4d0e9a11", "seq": 12 }),
            ),
        ),
        (
            "MessageSent",
            object(
                &["ids", "failures"],
                json!({ "ids": strings(), "failures": list(r("Failure")) }),
                json!({ "ids": [MID], "failures": [{ "agent_id": "nobody", "code": "unknown_agent",
                                                      "message": "no agent `nobody` in session" }] }),
            ),
        ),
        (
            "Failure",
            object(
                &["agent_id", "code", "message"],
                json!({ "agent_id": string(), "code": string(), "message": string() }),
                json!({ "agent_id": "nobody", "code": "unknown_agent", "message": "no agent `nobody` in session" }),
            ),
        ),
        (
            "RelayAccepted",
            object(
                &["relay_id", "status"],
                json!({ "relay_id": string(), "status": one_of(&["accepted", "blocked"]),
                        "action_count": count(), "target_count": count(),
                        "targets": { "type": "object", "additionalProperties": r("RelayTarget") },
                        "waits": list(json!({ "type": "object" })), "failures": list(json!({ "type": "object" })),
                        "retry_after_ms": count(), "busy": strings(), "message": string() }),
                relay_accepted,
            ),
        ),
        (
            "RelayTarget",
            object(
                &["context_id", "group_id", "task_id", "actions"],
                json!({ "context_id": string(), "group_id": string(), "task_id": string(),
                        "actions": list(json!({ "type": "object" })) }),
                json!({ "context_id": "r1:bot", "group_id": "r1:bot:g1", "task_id": "r1:task:bot",
                        "actions": [{ "action_id": "r1:1:0", "action_index": 0, "type": "message",
                                      "plan_step_id": "", "expects_reply": true }] }),
            ),
        ),
        (
            "RelayFinished",
            object(
                &["relay_id", "status"],
                json!({ "relay_id": string(), "status": one_of(&["done", "cancelled"]), "dropped_actions": count() }),
                json!({ "relay_id": "r1", "status": "done", "dropped_actions": 0 }),
            ),
        ),
        (
            "RelayAction",
            object(
                &[
                    "action_id",
                    "action_index",
                    "type",
                    "target",
                    "answered",
                    "dispatched",
                ],
                json!({ "action_id": string(), "action_index": count(), "type": string(), "target": string(),
                        "plan_step_id": string(), "expects_reply": { "type": "boolean" },
                        "dispatched": { "type": "boolean" }, "answered": { "type": "boolean" },
                        "wire": { "type": "object" } }),
                relay_action_example(),
            ),
        ),
        (
            "RelayTask",
            object(
                &["agent_id", "task_id", "context_id", "status"],
                json!({ "agent_id": string(), "task_id": string(), "context_id": string(),
                           "status": one_of(&["pending", "running", "blocked", "ready", "done"]) }),
                json!({ "agent_id": "bot", "task_id": "r1:task:bot", "context_id": "r1:bot", "status": "running" }),
            ),
        ),
        (
            "Relay",
            object(
                &[
                    "relay_id", "owner_id", "status", "summary", "tasks", "actions",
                ],
                json!({ "relay_id": string(), "owner_id": string(), "status": one_of(&["active", "done", "cancelled"]),
                        "summary": nullable("string"), "tasks": list(r("RelayTask")), "actions": list(r("RelayAction")) }),
                json!({ "relay_id": "r1", "owner_id": "pat", "status": "active", "summary": null,
                        "tasks": [{ "agent_id": "bot", "task_id": "r1:task:bot", "context_id": "r1:bot", "status": "running" }],
                        "actions": [relay_action_example()] }),
            ),
        ),
        (
            "RelayList",
            object(
                &["relays"],
                json!({ "relays": list(r("Relay")) }),
                json!({ "relays": [{ "relay_id": "r1", "owner_id": "pat", "status": "active", "summary": null,
                                        "tasks": [], "actions": [relay_action_example()] }] }),
            ),
        ),
        (
            "Task",
            object(
                &[
                    "agent_id",
                    "task_id",
                    "context_id",
                    "status",
                    "relay_id",
                    "owner_id",
                ],
                json!({ "agent_id": string(), "task_id": string(), "context_id": string(),
                        "status": one_of(&["pending", "running", "blocked", "ready", "done"]),
                        "relay_id": string(), "owner_id": string() }),
                task_example(),
            ),
        ),
        (
            "TaskList",
            object(
                &["tasks"],
                json!({ "tasks": list(r("Task")) }),
                json!({ "tasks": [task_example()] }),
            ),
        ),
    ]
}

fn requests() -> Vec<(&'static str, Value)> {
    vec![
        (
            "CreateSession",
            object(&[], json!({ "name": name() }), json!({ "name": "review" })),
        ),
        (
            "RegisterAgent",
            object(
                &["name"],
                json!({ "name": name(), "kind": one_of(&["human", "sdk"]),
                        "id": { "type": "string", "minLength": 1, "description": "Generated unless given." } }),
                json!({ "name": "Pat", "kind": "human", "id": "pat" }),
            ),
        ),
        (
            "RenameAgent",
            object(
                &["name"],
                json!({ "name": name() }),
                json!({ "name": "Reviewer" }),
            ),
        ),
        (
            "OrderAgents",
            object(
                &["ids"],
                json!({ "ids": strings() }),
                json!({ "ids": ["pat", "bot"] }),
            ),
        ),
        (
            "AckDeliveries",
            object(
                &["ids"],
                json!({ "ids": strings() }),
                json!({ "ids": [MID] }),
            ),
        ),
        (
            "MarkRead",
            object(
                &["ids"],
                json!({ "ids": { "type": "array", "items": string(), "minItems": 1, "maxItems": 1000 } }),
                json!({ "ids": [MID] }),
            ),
        ),
        (
            "ActionResult",
            object(
                &["from", "to", "status"],
                json!({ "from": text(), "to": { "type": "string", "minLength": 1, "description": "The relay's owner." },
                        "status": one_of(&["accepted", "completed", "blocked", "queued", "rejected", "error"]),
                        "detail": string(), "group_id": string(), "action_index": count() }),
                json!({ "from": "pat", "to": "lead", "status": "completed", "detail": "approved",
                        "group_id": "r1:pat:g1", "action_index": 0 }),
            ),
        ),
        (
            "SendMessage",
            object(
                &["from", "text", "agent_ids"],
                json!({ "from": text(), "text": text(),
                        "agent_ids": { "type": "array", "items": string(), "minItems": 1 },
                        "kind": one_of(&["user", "reply", "control"]), "parent_message_id": string(),
                        "context_id": string(), "reply_to_action_id": string() }),
                json!({ "from": "pat", "text": "please review the diff", "agent_ids": ["bot"] }),
            ),
        ),
        (
            "SubmitRelay",
            object(
                &["from", "relay_id"],
                json!({ "from": text(), "relay_id": text(), "targets": strings(),
                        "actions": list(json!({ "type": "object" })) }),
                json!({ "from": "pat", "relay_id": "r1", "actions": [
                    { "type": "message", "dst": "bot", "text": "review the diff", "expects_reply": true },
                    { "type": "wait", "targets": ["bot"] } ] }),
            ),
        ),
        (
            "FinishRelay",
            object(
                &[],
                json!({ "summary": string(), "from": text() }),
                json!({ "summary": "merged" }),
            ),
        ),
        (
            "CancelRelay",
            object(
                &[],
                json!({ "reason": string(), "from": text() }),
                json!({ "reason": "not needed" }),
            ),
        ),
    ]
}

/// Every component schema, by name.
pub fn all() -> Map<String, Value> {
    responses()
        .into_iter()
        .chain(requests())
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}
