//! Error codes of the protocol. The socket sends them as `error.code`; HTTP maps each to a
//! status (see `docs/weave/http-api.md`). Codes are stable strings: never rename one.

use std::fmt;

/// Every error the bus answers with. See `docs/weave/protocol.md` for when each is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The line is not a valid request: malformed JSON, invalid UTF-8, a missing field.
    BadRequest,
    /// `v` is not 1.
    UnsupportedVersion,
    /// The `type` is not a request the bus serves.
    UnknownType,
    UnknownSession,
    SessionClosed,
    UnknownAgent,
    /// The request acts as an agent that this connection did not add.
    Forbidden,
    /// Another agent of the session already has this name (names compare case-insensitively).
    NameTaken,
    /// Only the conversation's (or relay's) owner may do this.
    NotOwner,
    /// The loop guard stopped the message: it was not delivered.
    LoopSuppressed,
    /// A line exceeded the maximum line length; the connection is closed after this error.
    FrameTooLarge,
    /// The target's durable inbox is at its limit.
    InboxFull,
    /// A configured limit (agents per session, sessions, connections) was reached.
    LimitReached,
    /// The durable store could not commit; nothing of the request was applied.
    StoreUnavailable,
    /// A `message.ack` that asked for an answer named nothing pending for the agent (already
    /// acked, given up after `max_deliver`, or never delivered to it).
    NotPending,
    /// The agent id is held by another live connection, and the request did not prove it may
    /// take it over (its secret or the same client instance).
    AgentBusy,
    /// The bus is shutting down.
    ShuttingDown,
    /// The bus failed in a way that is not the client's fault.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::UnknownSession => "unknown_session",
            ErrorCode::SessionClosed => "session_closed",
            ErrorCode::UnknownAgent => "unknown_agent",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::NotOwner => "not_owner",
            ErrorCode::LoopSuppressed => "loop_suppressed",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::InboxFull => "inbox_full",
            ErrorCode::LimitReached => "limit_reached",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::NotPending => "not_pending",
            ErrorCode::AgentBusy => "agent_busy",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
