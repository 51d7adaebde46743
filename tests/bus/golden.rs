//! Golden transcripts: each request/response shape of wire v1, and what the other side
//! receives, as the real bus writes them. Ids and timestamps are replaced by stable
//! placeholders; everything else is pinned.

use std::collections::HashMap;
use std::time::Duration;

use codex_weave_transport_uds::{Ack, AckMode, Envelope};
use serde_json::{json, Value};
use weave_test_kit::*;

/// Replaces UUIDs by `<id-N>` (numbered by first appearance), RFC 3339 times by `<ts>` and
/// agents' secrets by `<secret>`.
#[derive(Default)]
struct Redactor {
    ids: HashMap<String, String>,
}

impl Redactor {
    fn redact(&mut self, v: &Value) -> Value {
        match v {
            Value::String(s) if (0..s.len()).any(|i| is_uuid_at(s, i)) => {
                Value::String(self.redact_text(s))
            }
            Value::String(s)
                if time::OffsetDateTime::parse(
                    s,
                    &time::format_description::well_known::Rfc3339,
                )
                .is_ok() =>
            {
                Value::String("<ts>".into())
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| self.redact(x)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| match (k.as_str(), x) {
                        ("secret", Value::String(_)) => (k.clone(), json!("<secret>")),
                        _ => (k.clone(), self.redact(x)),
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn line(&mut self, dir: &str, env: &Envelope) -> Value {
        json!({ dir: self.redact(&serde_json::to_value(env).unwrap()) })
    }
}

impl Redactor {
    /// Replaces each UUID inside `text` by its placeholder.
    fn redact_text(&mut self, text: &str) -> String {
        let mut out = String::new();
        let mut i = 0;
        while i < text.len() {
            if is_uuid_at(text, i) {
                let id = &text[i..i + 36];
                let n = self.ids.len() + 1;
                out.push_str(
                    self.ids
                        .entry(id.to_owned())
                        .or_insert_with(|| format!("<id-{n}>")),
                );
                i += 36;
            } else {
                let c = text[i..].chars().next().unwrap();
                out.push(c);
                i += c.len_utf8();
            }
        }
        out
    }
}

/// Whether a UUID (8-4-4-4-12 hex digits) starts at byte `at` of `s`.
fn is_uuid_at(s: &str, at: usize) -> bool {
    let Some(candidate) = s.get(at..at + 36) else {
        return false;
    };
    candidate.char_indices().all(|(i, c)| {
        if [8, 13, 18, 23].contains(&i) {
            c == '-'
        } else {
            c.is_ascii_hexdigit()
        }
    })
}

struct Transcript {
    r: Redactor,
    lines: Vec<Value>,
}

impl Transcript {
    fn new() -> Self {
        Self {
            r: Redactor::default(),
            lines: Vec::new(),
        }
    }

    /// Sends `env` on `c`, records the request (as sent) and its response.
    async fn call(&mut self, c: &Conn, mut env: Envelope) -> Envelope {
        env.id = uuid::Uuid::new_v4().to_string();
        env.ts = "2026-01-01T00:00:00Z".into();
        let line = self.r.line("request", &env);
        self.lines.push(line);
        let resp = c.call(env).await;
        let line = self.r.line("response", &resp);
        self.lines.push(line);
        resp
    }

    fn received(&mut self, who: &str, env: &Envelope) {
        let line = self.r.line(&format!("{who} receives"), env);
        self.lines.push(line);
    }

    fn value(&self) -> Value {
        Value::Array(self.lines.clone())
    }
}

async fn setup() -> (BusProcess, Conn, Conn, String, Transcript) {
    let bus = BusProcess::start();
    let a = bus.connect().await;
    let b = bus.connect().await;
    let mut t = Transcript::new();
    let s = t
        .call(
            &a,
            envelope("session.create", None, "alice", json!({ "name": "golden" })),
        )
        .await
        .session
        .unwrap();
    t.lines.clear();
    (bus, a, b, s, t)
}

#[tokio::test]
async fn sessions() {
    let (_bus, a, _b, _s, mut t) = setup().await;
    let s = t
        .call(
            &a,
            envelope("session.create", None, "alice", json!({ "name": "demo" })),
        )
        .await
        .session
        .unwrap();
    t.call(&a, envelope("session.create", None, "alice", Value::Null))
        .await;
    t.call(&a, envelope("session.list", None, "alice", Value::Null))
        .await;
    t.call(&a, envelope("session.get", Some(&s), "alice", Value::Null))
        .await;
    t.call(
        &a,
        envelope("session.close", Some(&s), "alice", Value::Null),
    )
    .await;
    t.call(
        &a,
        envelope(
            "session.list",
            None,
            "alice",
            json!({ "include_closed": true }),
        ),
    )
    .await;
    insta::assert_json_snapshot!(t.value());
}

#[tokio::test]
async fn agents() {
    let (_bus, a, mut b, s, mut t) = setup().await;
    t.call(
        &a,
        envelope(
            "agent.add",
            Some(&s),
            "alice",
            json!({ "id": "alice", "name": "Alice" }),
        ),
    )
    .await;
    t.call(
        &b,
        envelope(
            "agent.add",
            Some(&s),
            "bob",
            json!({ "id": "bob", "name": "Bob" }),
        ),
    )
    .await;
    t.call(&a, envelope("agent.list", Some(&s), "alice", Value::Null))
        .await;
    t.call(
        &a,
        envelope(
            "agent.update",
            Some(&s),
            "alice",
            json!({ "id": "alice", "name": "Alicia" }),
        ),
    )
    .await;
    let seen = b.next_of("agent.updated").await;
    t.received("bob", &seen);
    t.call(
        &a,
        envelope(
            "agent.update",
            Some(&s),
            "alice",
            json!({ "id": "bob", "name": "X" }),
        ),
    )
    .await;
    t.call(
        &b,
        envelope(
            "agent.add",
            Some(&s),
            "carol",
            json!({ "id": "carol", "name": "alicia" }),
        ),
    )
    .await;
    t.call(
        &b,
        envelope("agent.remove", Some(&s), "bob", json!({ "id": "bob" })),
    )
    .await;
    insta::assert_json_snapshot!(t.value());
}

#[tokio::test]
async fn messages_and_acks() {
    let (_bus, a, mut b, s, mut t) = setup().await;
    t.call(
        &a,
        envelope(
            "agent.add",
            Some(&s),
            "alice",
            json!({ "id": "alice", "name": "Alice" }),
        ),
    )
    .await;
    t.call(
        &b,
        envelope(
            "agent.add",
            Some(&s),
            "bob",
            json!({ "id": "bob", "name": "Bob" }),
        ),
    )
    .await;
    let mut m = message(&s, "alice", "Bob", "hello");
    m.payload = Some(json!({ "text": "hello", "kind": "user", "context_id": "ctx-1" }));
    t.call(&a, m).await;
    let got = b.next_of("message.send").await;
    t.received("bob", &got);
    let mut manual = message(&s, "alice", "bob", "ack me by hand");
    manual.topic = Some("agent.bob.inbox".into());
    manual.dst = None;
    manual.ack = Some(Ack {
        mode: Some(AckMode::Manual),
        timeout_ms: Some(60_000),
    });
    t.call(&a, manual).await;
    let got = b.next_of("message.send").await;
    t.received("bob", &got);
    // message.ack: no reply (the next line bob gets is the answer to its next request).
    let mut ack = envelope("message.ack", Some(&s), "bob", Value::Null);
    ack.corr = got.corr.clone();
    ack.id = uuid::Uuid::new_v4().to_string();
    ack.ts = "2026-01-01T00:00:00Z".into();
    let line = t.r.line("request (no response)", &ack);
    t.lines.push(line);
    b.client.send(ack).unwrap();
    t.call(&a, message(&s, "alice", "nobody", "lost?")).await;
    insta::assert_json_snapshot!(t.value());
}

#[tokio::test]
async fn actions_and_results() {
    let (_bus, mut a, mut b, s, mut t) = setup().await;
    t.call(
        &a,
        envelope(
            "agent.add",
            Some(&s),
            "owner",
            json!({ "id": "owner", "name": "Owner" }),
        ),
    )
    .await;
    t.call(
        &b,
        envelope(
            "agent.add",
            Some(&s),
            "worker",
            json!({ "id": "worker", "name": "Worker" }),
        ),
    )
    .await;
    let mut submit = envelope(
        "action.submit",
        Some(&s),
        "owner",
        json!({
            "group_id": "g-1",
            "task_id": "task-1",
            "context": { "context_id": "ctx-1", "owner_id": "owner" },
            "actions": [
                { "type": "control", "dst": "Worker", "action_id": "a-1", "action_index": 0, "command": "new" },
                { "type": "message", "dst": "Worker", "action_id": "a-2", "action_index": 1, "text": "build it", "kind": "user" }
            ]
        }),
    );
    submit.seq = Some(1);
    submit.idempotency_key = Some("g-1".into());
    t.call(&a, submit).await;
    let got = b.next_of("action.submit").await;
    t.received("worker", &got);
    let mut result = envelope(
        "action.result",
        Some(&s),
        "worker",
        json!({
            "group_id": "g-1", "action_id": "a-2", "action_index": 1, "status": "completed",
            "detail": "done", "data": { "new_context_id": "ctx-2" }
        }),
    );
    result.dst = Some("owner".into());
    result.seq = Some(1);
    t.call(&b, result).await;
    let got = a.next_of("action.result").await;
    t.received("owner", &got);
    insta::assert_json_snapshot!(t.value());
}

#[tokio::test]
async fn history_and_stream() {
    let (_bus, mut a, _b, s, mut t) = setup().await;
    t.call(
        &a,
        envelope(
            "agent.add",
            Some(&s),
            "alice",
            json!({ "id": "alice", "name": "Alice" }),
        ),
    )
    .await;
    t.call(
        &a,
        envelope("events.history", Some(&s), "alice", json!({ "limit": 2 })),
    )
    .await;
    t.call(
        &a,
        envelope(
            "events.stream",
            Some(&s),
            "alice",
            json!({ "since": 2, "follow": true }),
        ),
    )
    .await;
    let rec = a.next_of("events.record").await;
    t.received("alice", &rec);
    t.call(
        &a,
        envelope("deliveries.dead", Some(&s), "alice", Value::Null),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    insta::assert_json_snapshot!(t.value());
}
