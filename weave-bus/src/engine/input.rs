//! What connections tell the engine: one [`Input`] per event, over one channel.

use codex_weave_runtime::ErrorCode;

use crate::conn::{ConnId, ConnOut};
use crate::request::{Refused, Request};

/// What connections tell the engine.
#[derive(Debug)]
pub enum Input {
    /// A connection opened; lines for it go to `out`. An operator connection (the HTTP
    /// facade acting for the token holder) may rename or remove any agent.
    Open {
        conn: ConnId,
        out: ConnOut,
        operator: bool,
    },
    /// A checked request (see [`Request::parse`]), its payload kept as JSON text.
    Request {
        conn: ConnId,
        req: Box<Request>,
        /// Its size as read from a socket (0 in process), given back to the intake once taken.
        bytes: usize,
    },
    /// A request the edge refused (bad envelope, unknown type): answered with `refusal`.
    Refused { conn: ConnId, refused: Box<Refused> },
    /// A line that could not be parsed; answered with `code`.
    Invalid {
        conn: ConnId,
        corr: Option<String>,
        code: ErrorCode,
        message: String,
    },
    /// The connection's writer drained a backlog: resume its deliveries.
    Writable { conn: ConnId },
    /// The connection is gone: its agents go offline, unacked deliveries are requeued.
    Closed { conn: ConnId },
    /// Finish the current batch, commit, and stop.
    Shutdown,
}

impl Input {
    /// Bytes it took on the socket (what bounds a batch; in-process requests count 0).
    pub(super) fn bytes(&self) -> usize {
        match self {
            Input::Request { bytes, .. } => *bytes,
            _ => 0,
        }
    }
}
