//! The route table: every operation the daemon serves under `/api` (and `/metrics`), with what
//! the OpenAPI document says of it and the handler that serves it. The router and the document
//! are both built from [`OPS`], so they cannot drift apart.

use std::sync::Arc;

use axum::routing::{on, MethodFilter, MethodRouter};

use crate::routes::{agents, events, inbox, messages, meta, relays, sessions};
use crate::HttpState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Patch => "patch",
            Method::Delete => "delete",
        }
    }

    pub fn filter(self) -> MethodFilter {
        match self {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Patch => MethodFilter::PATCH,
            Method::Delete => MethodFilter::DELETE,
        }
    }
}

/// What a successful call answers.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// This status with a JSON body of this component schema.
    Json(u16, &'static str),
    /// `text/event-stream`.
    Sse,
    /// Prometheus text.
    Text,
    /// `204`, no body.
    NoContent,
}

/// A query parameter: name, JSON type (`integer`, `boolean`, `string`), description.
pub type Param = (&'static str, &'static str, &'static str);

pub type Handler = fn(MethodFilter) -> MethodRouter<Arc<HttpState>>;

pub struct Op {
    pub method: Method,
    pub path: &'static str,
    /// The OpenAPI `operationId` (a generated client's function name).
    pub id: &'static str,
    pub summary: &'static str,
    /// Served without credentials.
    pub public: bool,
    pub query: &'static [Param],
    /// The component schema of the JSON request body, if it takes one.
    pub body: Option<&'static str>,
    pub answer: Answer,
    pub handler: Handler,
}

const SINCE: Param = (
    "since",
    "integer",
    "Only records after this seq (exclusive).",
);
const LIMIT: Param = ("limit", "integer", "At most this many.");

use Answer::*;
use Method::*;

pub static OPS: &[Op] = &[
    Op {
        method: Get,
        path: "/api/health",
        id: "getHealth",
        summary: "Liveness and bus counters.",
        public: true,
        query: &[],
        body: None,
        answer: Json(200, "Health"),
        handler: |m| on(m, meta::health),
    },
    Op {
        method: Get,
        path: "/api/openapi.json",
        id: "getOpenapi",
        summary: "This document.",
        public: true,
        query: &[],
        body: None,
        answer: Json(200, "OpenApiDocument"),
        handler: |m| on(m, crate::openapi_json),
    },
    Op {
        method: Post,
        path: "/api/logout",
        id: "logout",
        summary: "Revoke the session cookie (everywhere, also after a restart).",
        public: false,
        query: &[],
        body: None,
        answer: NoContent,
        handler: |m| on(m, crate::logout),
    },
    Op {
        method: Get,
        path: "/metrics",
        id: "getMetrics",
        summary:
            "Prometheus text: connections, agents, messages, acks, queues, SSE clients, commits.",
        public: false,
        query: &[],
        body: None,
        answer: Text,
        handler: |m| on(m, meta::metrics),
    },
    Op {
        method: Get,
        path: "/api/sessions",
        id: "listSessions",
        summary: "The sessions, open ones only unless `include_closed`.",
        public: false,
        query: &[("include_closed", "boolean", "Closed sessions too.")],
        body: None,
        answer: Json(200, "SessionList"),
        handler: |m| on(m, sessions::list_sessions),
    },
    Op {
        method: Post,
        path: "/api/sessions",
        id: "createSession",
        summary: "Create a session (no body: an unnamed one).",
        public: false,
        query: &[],
        body: Some("CreateSession"),
        answer: Json(201, "Session"),
        handler: |m| on(m, sessions::create_session),
    },
    Op {
        method: Get,
        path: "/api/sessions/stream",
        id: "streamSessions",
        summary: "SSE: a `snapshot` of the session list, then a `session` event per change.",
        public: false,
        query: &[],
        body: None,
        answer: Sse,
        handler: |m| on(m, sessions::sessions_stream),
    },
    Op {
        method: Get,
        path: "/api/sessions/{id}",
        id: "getSession",
        summary: "A session with its agents.",
        public: false,
        query: &[],
        body: None,
        answer: Json(200, "SessionDetail"),
        handler: |m| on(m, sessions::get_session),
    },
    Op {
        method: Post,
        path: "/api/sessions/{id}/close",
        id: "closeSession",
        summary: "Close a session; its connected agents are told (`session.closed`).",
        public: false,
        query: &[],
        body: None,
        answer: Json(200, "Session"),
        handler: |m| on(m, sessions::close_session),
    },
    Op {
        method: Get,
        path: "/api/sessions/{id}/agents",
        id: "listAgents",
        summary: "The session's agents, in the operator's order.",
        public: false,
        query: &[],
        body: None,
        answer: Json(200, "AgentList"),
        handler: |m| on(m, agents::list_agents),
    },
    Op {
        method: Post,
        path: "/api/sessions/{id}/agents",
        id: "registerAgent",
        summary: "Register an HTTP agent (a person or an SDK client).",
        public: false,
        query: &[],
        body: Some("RegisterAgent"),
        answer: Json(201, "RegisteredAgent"),
        handler: |m| on(m, agents::register),
    },
    Op {
        method: Post,
        path: "/api/sessions/{id}/agents/order",
        id: "orderAgents",
        summary: "The operator's order: the listed agents first, in that order.",
        public: false,
        query: &[],
        body: Some("OrderAgents"),
        answer: Json(200, "AgentList"),
        handler: |m| on(m, agents::order),
    },
    Op {
        method: Patch,
        path: "/api/sessions/{id}/agents/{agent_id}",
        id: "renameAgent",
        summary: "Rename any agent (operator).",
        public: false,
        query: &[],
        body: Some("RenameAgent"),
        answer: Json(200, "RenamedAgent"),
        handler: |m| on(m, agents::rename),
    },
    Op {
        method: Delete,
        path: "/api/sessions/{id}/agents/{agent_id}",
        id: "removeAgent",
        summary: "Remove any agent (operator); its queue is dead-lettered.",
        public: false,
        query: &[],
        body: None,
        answer: Json(200, "RemovedAgent"),
        handler: |m| on(m, agents::remove),
    },
    Op {
        method: Get,
        path: "/api/sessions/{id}/agents/{agent_id}/inbox",
        id: "getInbox",
        summary: "The agent's messages not read yet (`waiting`: not answered yet), oldest first.",
        public: false,
        query: &[
            (
                "waiting",
                "boolean",
                "Everything not answered yet, read ones too.",
            ),
            LIMIT,
        ],
        body: None,
        answer: Json(200, "Inbox"),
        handler: |m| on(m, inbox::inbox),
    },
    Op {
        method: Post,
        path: "/api/sessions/{id}/agents/{agent_id}/inbox/read",
        id: "markRead",
        summary: "The agent has read these messages.",
        public: false,
        query: &[],
        body: Some("MarkRead"),
        answer: Json(200, "MarkedRead"),
        handler: |m| on(m, inbox::inbox_read),
    },
    Op {
        method: Get,
        path: "/api/sessions/{id}/agents/{agent_id}/inbox/stream",
        id: "streamInbox",
        summary: "SSE of the deliveries to an HTTP agent; resumable with Last-Event-ID.",
        public: false,
        query: &[SINCE],
        body: None,
        answer: Sse,
        handler: |m| on(m, inbox::inbox_stream),
    },
    Op {
        method: Post,
        path: "/api/sessions/{id}/agents/{agent_id}/inbox/ack",
        id: "ackDeliveries",
        summary: "Acknowledge deliveries to an HTTP agent by their `corr`.",
        public: false,
        query: &[],
        body: Some("AckDeliveries"),
        answer: Json(200, "Acked"),
        handler: |m| on(m, inbox::inbox_ack),
    },
    Op {
        method: Post,
        path: "/api/sessions/{id}/actions/{action_id}/result",
        id: "sendActionResult",
        summary: "The result of a relay step given to an HTTP agent: approve, deny, report.",
        public: false,
        query: &[],
        body: Some("ActionResult"),
        answer: Json(202, "ResultSent"),
        handler: |m| on(m, inbox::action_result),
    },
    Op {
        method: Post,
        path: "/api/sessions/{id}/messages",
        id: "sendMessage",
        summary: "Send a message as an HTTP agent, one per target.",
        public: false,
        query: &[],
        body: Some("SendMessage"),
        answer: Json(202, "MessageSent"),
        handler: |m| on(m, messages::messages),
    },
    Op {
        method: Get,
        path: "/api/sessions/{id}/messages/{message_id}",
        id: "getReceipts",
        summary: "How far a message got with each recipient.",
        public: false,
        query: &[],
        body: None,
        answer: Json(200, "Receipts"),
        handler: |m| on(m, messages::message_receipts),
    },
    Op {
        method: Get,
        path: "/api/sessions/{id}/events",
        id: "getHistory",
        summary: "The session's records, as `events.history` (without `since`: the latest).",
        public: false,
        query: &[SINCE, LIMIT],
        body: None,
        answer: Json(200, "History"),
        handler: |m| on(m, events::history),
    },
    Op {
        method: Get,
        path: "/api/sessions/{id}/events/stream",
        id: "streamEvents",
        summary: "SSE of the session's records; resumable with Last-Event-ID.",
        public: false,
        query: &[SINCE],
        body: None,
        answer: Sse,
        handler: |m| on(m, events::events_stream),
    },
    Op {
        method: Get,
        path: "/api/sessions/{id}/search",
        id: "searchEvents",
        summary: "Records found by words, sender and time, newest first, as `events.search`.",
        public: false,
        query: &[
            (
                "text",
                "string",
                "Words that must all occur (`word*`: a prefix).",
            ),
            ("from", "string", "The sender, by id or name."),
            ("since", "string", "RFC 3339 time: records at or after it."),
            ("until", "string", "RFC 3339 time: records before it."),
            (
                "before",
                "integer",
                "Only records older than this seq (the next page).",
            ),
            LIMIT,
        ],
        body: None,
        answer: Json(200, "SearchResult"),
        handler: |m| on(m, events::search),
    },
    Op {
        method: Get,
        path: "/api/sessions/{id}/relays",
        id: "listRelays",
        summary: "The session's relays with their tasks and actions.",
        public: false,
        query: &[],
        body: None,
        answer: Json(200, "RelayList"),
        handler: |m| on(m, relays::list_relays),
    },
    Op {
        method: Post,
        path: "/api/sessions/{id}/relays",
        id: "submitRelay",
        summary: "Start or continue a relay: the `relay.submit` payload plus `from`.",
        public: false,
        query: &[],
        body: Some("SubmitRelay"),
        answer: Json(200, "RelayAccepted"),
        handler: |m| on(m, relays::relay),
    },
    Op {
        method: Post,
        path: "/api/sessions/{id}/relays/{relay_id}/done",
        id: "finishRelay",
        summary: "Finish a relay (`from` defaults to its owner).",
        public: false,
        query: &[],
        body: Some("FinishRelay"),
        answer: Json(200, "RelayFinished"),
        handler: |m| on(m, relays::relay_done),
    },
    Op {
        method: Post,
        path: "/api/sessions/{id}/relays/{relay_id}/cancel",
        id: "cancelRelay",
        summary: "Cancel a relay (`from` defaults to its owner).",
        public: false,
        query: &[],
        body: Some("CancelRelay"),
        answer: Json(200, "RelayFinished"),
        handler: |m| on(m, relays::relay_cancel),
    },
    Op {
        method: Get,
        path: "/api/sessions/{id}/tasks",
        id: "listTasks",
        summary: "The session's relay tasks.",
        public: false,
        query: &[],
        body: None,
        answer: Json(200, "TaskList"),
        handler: |m| on(m, relays::list_tasks),
    },
];
