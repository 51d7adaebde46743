//! What `weavectl` prints: one line at a time on stdout, a JSON object per line with `--json`,
//! others' text with its control characters shown escaped, and a closed pipe (`weavectl tail |
//! head`) ending the command quietly with status 0. Failures end it with an exit code and, with
//! `--json`, a JSON line `{"error": {code, message, hint?}}` on stdout as well.

use std::io::Write;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::agents::inbox::escape_controls;
use crate::agents::link::LinkError;

/// How a command ends when it does not succeed. Exit codes: 1 the bus refused (its code is
/// given) or anything else went wrong, 2 usage, 3 no bus running.
#[derive(Debug)]
pub enum Failure {
    Refused { code: String, message: String },
    NoBus(PathBuf),
    Usage(String),
    Other(String),
}

impl Failure {
    pub fn refused(code: &str, message: impl Into<String>) -> Failure {
        Failure::Refused {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Refused { .. } | Failure::Other(_) => 1,
            Failure::Usage(_) => 2,
            Failure::NoBus(_) => 3,
        }
    }

    pub fn code(&self) -> &str {
        match self {
            Failure::Refused { code, .. } => code,
            Failure::Usage(_) => "usage",
            Failure::NoBus(_) => "no_bus",
            Failure::Other(_) => "error",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Failure::Refused { message, .. } => message.clone(),
            Failure::NoBus(socket) => format!(
                "no bus is running at {} — start one with `weaved` (or `weave-bus`)",
                socket.display()
            ),
            Failure::Usage(m) | Failure::Other(m) => m.clone(),
        }
    }

    /// Says what went wrong (stderr; also stdout as JSON with `json`), returns the exit code.
    pub fn report(&self, json_out: bool) -> u8 {
        if json_out {
            let hint = LinkError::new(self.code(), "").hint();
            value(
                &json!({ "error": { "code": self.code(), "message": self.message(), "hint": hint } }),
            );
        }
        let text = match self {
            Failure::Refused { code, message } => format!("weavectl: refused: {code}: {message}"),
            other => format!("weavectl: {}", other.message()),
        };
        codex_weave_transport_uds::console::complain(format_args!("{}", escape_controls(&text)));
        self.exit_code()
    }
}

impl From<codex_weave_transport_uds::ClientError> for Failure {
    fn from(e: codex_weave_transport_uds::ClientError) -> Self {
        match e {
            codex_weave_transport_uds::ClientError::Refused(err) => Failure::Refused {
                code: err.code,
                message: err.message,
            },
            other => Failure::Other(other.to_string()),
        }
    }
}

pub type Out = Result<(), Failure>;

/// One line on stdout. A reader that went away ends the process here, quietly, with status 0:
/// nobody is left to read what else it would print.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if written.is_err() {
        std::process::exit(0);
    }
}

/// Text that may hold others' words, as a terminal may show it: escape sequences and control
/// characters escaped, not obeyed.
pub fn human(text: &str) {
    line(&escape_controls(text));
}

/// One JSON value on one line.
pub fn value(v: &Value) {
    line(&v.to_string());
}

/// `v` as JSON with `json_out`, else the human line `text()` makes of it.
pub fn either(json_out: bool, v: &Value, text: impl FnOnce(&Value) -> String) {
    if json_out {
        value(v);
    } else {
        human(&text(v));
    }
}
