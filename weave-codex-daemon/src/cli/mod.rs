//! `weavectl`'s commands, one file per family: `output` (printing, failures, exit codes),
//! `messages` (send, reply, inbox, history), `chat` (`join`: a person in a session), `relay`
//! (submit, status, cancel), `login` (a fresh browser login URL). The binary parses the command
//! line and calls these.

pub mod chat;
pub mod login;
pub mod messages;
pub mod output;
pub mod relay;

use std::path::Path;

use crate::agents::link::LinkError;
use output::Failure;

/// An adapter's failure as weavectl ends on it.
pub fn link_failure(e: LinkError, socket: &Path) -> Failure {
    match e.code.as_str() {
        "no_bus" => Failure::NoBus(socket.to_owned()),
        "bad_request" => Failure::Usage(e.message),
        _ => Failure::Refused {
            message: format!("{} ({})", e.message, e.hint()),
            code: e.code,
        },
    }
}
