//! The seam where the runtime's policy (conversation ownership, relays, the loop guard) decides
//! on every state-changing request, whichever transport it came from. The bus asks before it
//! records or delivers anything; a refusal becomes the request's error response.

use codex_weave_runtime::{Envelope, ErrorCode};

/// Why a request was refused: the protocol error code and a sentence for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A request the bus has validated (session open, sender bound to this connection, targets
/// resolved) and is about to apply.
#[derive(Debug)]
pub struct Admission<'a> {
    pub session: &'a str,
    /// The sending agent's id.
    pub sender: &'a str,
    pub envelope: &'a Envelope,
    /// Resolved agent ids the request delivers to.
    pub targets: &'a [String],
}

/// Decides whether a request may proceed. Runs on the engine thread: it must not block.
pub trait Policy: Send + 'static {
    fn admit(&mut self, request: &Admission<'_>) -> Result<(), Refusal>;
}

/// Admits every request the bus itself accepts: the bus's own checks (sessions, agents,
/// connection ownership, limits) are the only rules.
#[derive(Debug, Default)]
pub struct OpenPolicy;

impl Policy for OpenPolicy {
    fn admit(&mut self, _request: &Admission<'_>) -> Result<(), Refusal> {
        Ok(())
    }
}
