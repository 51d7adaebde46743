//! `weavectl login`: a fresh one-time login URL for the running daemon's web UI, without a
//! restart. The code is left in the home (`codex_weave_transport_http::auth::issue_login_code`),
//! where only the home's owner can write; the daemon spends it once, within ten minutes.

use std::path::Path;

use codex_weave_transport_http::auth::{issue_login_code, HTTP_ADDR_FILE, LOGIN_CODE_TTL};
use serde_json::json;

use super::output::{self, Failure, Out};

pub async fn run(home: &Path, socket: &Path, json_out: bool) -> Out {
    // A daemon must be running: its socket answers.
    crate::agents::link::connect(socket)
        .await
        .map_err(|_| Failure::NoBus(socket.to_owned()))?;
    let addr = std::fs::read_to_string(home.join(HTTP_ADDR_FILE)).map_err(|_| {
        Failure::Other(format!(
            "{} has no {HTTP_ADDR_FILE}: is this a `weaved` (with HTTP) rather than a bare `weave-bus`?",
            home.display()
        ))
    })?;
    let port = addr
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or_else(|| {
            Failure::Other(format!(
                "{HTTP_ADDR_FILE} holds `{}`, not an address",
                addr.trim()
            ))
        })?;
    let code =
        issue_login_code(home).map_err(|e| Failure::Other(format!("{}: {e}", home.display())))?;
    let url = format!("http://127.0.0.1:{port}/login?code={code}");
    let minutes = LOGIN_CODE_TTL.as_secs() / 60;
    output::either(
        json_out,
        &json!({ "url": url, "expires_in_secs": LOGIN_CODE_TTL.as_secs() }),
        |_| format!("{url}\n(open it within {minutes} minutes; it works once)"),
    );
    Ok(())
}
