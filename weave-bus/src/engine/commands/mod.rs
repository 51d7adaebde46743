//! Requests: validation common to all, idempotent replay, and dispatch to one handler per type
//! (one file per family). Every handler returns a [`Reply`]; `respond` turns it into the line.

mod action;
mod agent;
mod agent_update;
mod events;
mod inbox;
mod message;
mod relay;
mod search;
mod session;

use codex_weave_runtime::{Envelope, ErrorCode};
use serde_json::{json, Value};

use super::idempotency;
use super::writer::Remembered;
use super::{now_ms, Answer, Engine, Reply};
use crate::conn::ConnId;
use crate::refusal::Refusal;
use crate::request::{Request, RequestType};

impl Engine {
    /// A request, its payload as the JSON text it came in. A `message.send` keeps it so, into
    /// its record and deliveries; every other type reads it as a value.
    pub(in crate::engine) fn on_request(&mut self, conn: ConnId, req: Request) {
        let Request { kind, env: mut raw } = req;
        match kind {
            RequestType::MessageAck => return self.message_ack(conn, &raw),
            RequestType::MessageSend => {
                return self
                    .idempotent(conn, &mut raw, |engine, env| engine.message_send(conn, env))
            }
            _ => {}
        }
        // Checked JSON (see `Framing::decode_request`), so it parses.
        let mut env: Envelope = raw.map(
            |p| serde_json::from_str(p.get()).unwrap_or(Value::Null),
            |m| m,
        );
        if kind == RequestType::EventsStream {
            return self.events_stream(conn, &env);
        }
        self.idempotent(conn, &mut env, |engine, env| {
            engine.dispatch(kind, conn, env)
        });
    }

    /// Answers a request, once: a repeat of an idempotent one (same session, `src` and
    /// idempotency key or id) gets the first `ok` response again and changes nothing.
    fn idempotent<P>(
        &mut self,
        conn: ConnId,
        env: &mut Envelope<P>,
        handle: impl FnOnce(&mut Self, &mut Envelope<P>) -> Reply,
    ) {
        let key = idempotency::key_for(env);
        if let Some(stored) = key.as_ref().and_then(|k| self.records.idem.get(k)) {
            let reply = serde_json::from_str::<Answer>(stored).map_err(|e| {
                Refusal::new(
                    ErrorCode::Internal,
                    format!("stored response unreadable: {e}"),
                )
            });
            return self.respond(conn, &env.id, env.session.as_deref(), reply);
        }
        let reply = handle(self, env);
        let remembered = reply.as_ref().ok().filter(|a| !a.transient);
        if let (Some(key), Some(answer)) = (key, remembered) {
            if let Ok(response) = serde_json::to_string(answer) {
                let created_ms = now_ms();
                let id = self.records.next_idempotency_id();
                let response: idempotency::Response = response.into();
                self.records
                    .idem
                    .put(key.clone(), response.clone(), created_ms, id);
                self.batch.remembered.push(Remembered {
                    id,
                    key,
                    response,
                    created_ms,
                });
            }
        }
        self.respond(conn, &env.id, env.session.as_deref(), reply);
    }

    /// Every request type but `message.send`, `message.ack` and `events.stream`.
    fn dispatch(&mut self, kind: RequestType, conn: ConnId, env: &mut Envelope) -> Reply {
        use RequestType as T;
        match kind {
            T::SessionList => self.session_list(env),
            T::SessionCreate => self.session_create(env),
            T::SessionGet => self.session_get(env),
            T::SessionClose => self.session_close(env),
            T::SessionsStream => {
                self.registry.session_watchers.push((conn, env.id.clone()));
                self.session_list(env)
            }
            T::AgentList => self.agent_list(env),
            T::AgentAdd => self.agent_add(conn, env),
            T::AgentRemove => self.agent_remove(conn, env),
            T::AgentUpdate => self.agent_update(conn, env),
            T::AgentOrder => self.agent_order(conn, env),
            T::AgentActivity => self.agent_activity(conn, env),
            T::ActionSubmit => self.action_submit(conn, env),
            T::ActionResult => self.action_result(conn, env),
            T::RelaySubmit => self.relay_submit(conn, env),
            T::RelaysList => self.relays_list(env),
            T::EventsHistory => self.events_history(env),
            T::EventsSearch => self.events_search(env),
            T::DeliveriesDead => self.deliveries_dead(env),
            T::InboxUnread => self.inbox_unread(env),
            T::MessageRead => self.message_read(env),
            T::MessageReceipts => self.message_receipts(env),
            T::BusStats => Ok(self.stats()),
            T::MessageSend | T::MessageAck | T::EventsStream => Err(Refusal::new(
                ErrorCode::Internal,
                format!("{} is answered before dispatch", kind.as_str()),
            )),
        }
    }

    /// The open session a request names.
    fn open_session<P>(&self, env: &Envelope<P>) -> Result<String, Refusal> {
        let session = self.known_session(env)?;
        if self.registry.sessions[&session].closed {
            return Err(Refusal::new(
                ErrorCode::SessionClosed,
                format!("session {session} is closed"),
            ));
        }
        Ok(session)
    }

    /// The session a request names, open or closed (for reads and acks).
    fn known_session<P>(&self, env: &Envelope<P>) -> Result<String, Refusal> {
        let Some(session) = env.session.as_deref().filter(|s| !s.is_empty()) else {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("{} needs `session`", env.kind),
            ));
        };
        if !self.registry.sessions.contains_key(session) {
            return Err(Refusal::new(
                ErrorCode::UnknownSession,
                format!("no session {session}"),
            ));
        }
        Ok(session.to_owned())
    }

    /// A request that acts as agent `src` must come from the connection that added it.
    fn check_sender(&self, conn: ConnId, sid: &str, src: &str) -> Result<(), Refusal> {
        match self.registry.sessions[sid].agents.get(src) {
            None => Err(Refusal::new(
                ErrorCode::UnknownAgent,
                format!("`{src}` is not an agent of session {sid}; send agent.add first"),
            )),
            Some(agent) if agent.conn != Some(conn) => Err(Refusal::new(
                ErrorCode::Forbidden,
                format!("agent `{src}` was not added on this connection"),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Whether `conn` is the operator's (in-process, HTTP facade).
    fn is_operator(&self, conn: ConnId) -> bool {
        self.registry.conns.get(&conn).is_some_and(|c| c.operator)
    }

    fn stats(&self) -> Answer {
        let pending: usize = self.inboxes.len();
        let agents: usize = self
            .registry
            .sessions
            .values()
            .map(|s| s.agents.len())
            .sum();
        let online: usize = self
            .registry
            .sessions
            .values()
            .map(|s| s.agents.values().filter(|a| a.conn.is_some()).count())
            .sum();
        Answer::payload(json!({
            "sessions": self.registry.sessions.len(),
            "agents": agents,
            "agents_online": online,
            "connections": self.registry.conns.len(),
            "pending_deliveries": pending,
            "pending_bytes_in_memory": self.inboxes.hot_bytes(),
            "idempotency_keys": self.records.idem.len(),
            "runtime_remembered": self.runtime.remembered(),
            "counters": self.metrics.snapshot(),
        }))
    }
}

fn bad(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::BadRequest, message)
}

/// `payload` as an object, or a `bad_request` naming the request type.
fn payload_object(env: &Envelope) -> Result<&serde_json::Map<String, Value>, Refusal> {
    env.payload
        .as_ref()
        .and_then(Value::as_object)
        .ok_or_else(|| bad(format!("{} needs an object `payload`", env.kind)))
}

/// A string field of an optional payload.
fn payload_str<'a>(env: &'a Envelope, field: &str) -> Option<&'a str> {
    env.payload
        .as_ref()
        .and_then(|p| p.get(field))
        .and_then(Value::as_str)
}

/// An optional non-negative integer field of the payload; a wrong type is a `bad_request`.
fn payload_u64(env: &Envelope, field: &str) -> Result<Option<u64>, Refusal> {
    match env.payload.as_ref().and_then(|p| p.get(field)) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(format!("`payload.{field}` must be a non-negative integer"))),
    }
}

fn payload_bool(env: &Envelope, field: &str) -> Result<bool, Refusal> {
    match env.payload.as_ref().and_then(|p| p.get(field)) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(format!("`payload.{field}` must be a boolean"))),
    }
}

/// Longest agent or session name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest `doing` of `agent.activity`, in characters (longer is cut).
pub const MAX_DOING_CHARS: usize = 200;
/// Longest agent id, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// A display name: non-empty after trimming, at most [`MAX_NAME_CHARS`], no control characters.
fn valid_name(name: &str) -> Result<String, Refusal> {
    let name = name.trim();
    if name.is_empty() {
        return Err(bad("name must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(bad(format!(
            "name is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("name must not contain control characters"));
    }
    Ok(name.to_owned())
}
