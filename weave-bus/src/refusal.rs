//! Refusals: the code and sentence a request is refused with, whether the bus's own checks
//! (sessions, agents, connection ownership, limits) or the runtime's rules (ownership, relays,
//! the loop guard) refused it. The rules themselves live in `codex-weave-runtime`; the engine
//! consults it on every entry point (`engine/brain.rs`), so no client can bypass them.

use codex_weave_runtime::ErrorCode;

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
