//! `weavectl relay`: hand out work with ordered steps and waits, see how it goes, cancel it.
//! Steps come from a JSON file (the `relay.submit` payload: `{targets?, actions}`) or from
//! `--step` flags, in order: `--step 'bob: review the diff'` gives Bob a step that expects a
//! reply, `--step 'wait: bob, ann'` holds what follows until both have answered.

use std::path::Path;

use serde_json::{json, Value};

use super::output::{self, Failure, Out};
use crate::agents::link::{self, JoinOptions, Joined};

/// One `--step` as an action of `relay.submit`.
pub fn step(text: &str, index: usize) -> Result<Value, String> {
    let (head, body) = text
        .split_once(':')
        .ok_or_else(|| format!("step `{text}`: write `name: what to do` or `wait: name, name`"))?;
    let (head, body) = (head.trim(), body.trim());
    let plan_step_id = format!("{}", index + 1);
    if head.eq_ignore_ascii_case("wait") {
        let targets: Vec<&str> = body
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        if targets.is_empty() {
            return Err(format!("step `{text}`: wait for whom? `wait: bob, ann`"));
        }
        return Ok(json!({ "type": "wait", "targets": targets, "plan_step_id": plan_step_id }));
    }
    if head.is_empty() || body.is_empty() {
        return Err(format!("step `{text}`: write `name: what to do`"));
    }
    Ok(
        json!({ "type": "message", "dst": head, "text": body, "expects_reply": true, "plan_step_id": plan_step_id }),
    )
}

/// The `relay.submit` payload of a file or of `--step`s.
pub fn payload(
    file: Option<&Path>,
    steps: &[String],
    relay_id: Option<String>,
) -> Result<Value, Failure> {
    let mut p = match (file, steps.is_empty()) {
        (Some(_), false) => return Err(Failure::Usage("give --file or --step, not both".into())),
        (None, true) => {
            return Err(Failure::Usage(
                "a relay needs --file or at least one --step".into(),
            ))
        }
        (Some(path), true) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| Failure::Usage(format!("{}: not JSON: {e}", path.display())))?;
            if !v["actions"].is_array() {
                return Err(Failure::Usage(format!(
                    "{}: needs an `actions` array",
                    path.display()
                )));
            }
            v
        }
        (None, false) => {
            let actions = steps
                .iter()
                .enumerate()
                .map(|(i, s)| step(s, i))
                .collect::<Result<Vec<_>, _>>()
                .map_err(Failure::Usage)?;
            json!({ "actions": actions })
        }
    };
    if let Some(id) = relay_id {
        p["relay_id"] = json!(id);
    } else if p["relay_id"].as_str().is_none() {
        p["relay_id"] = json!(format!(
            "r-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
    }
    Ok(p)
}

/// Submits `payload` as the person `owner`; prints the relay as accepted.
pub async fn submit(
    socket: &Path,
    session: &str,
    owner: &str,
    force: bool,
    payload: Value,
    json_out: bool,
) -> Out {
    let j = join(socket, session, owner, force).await?;
    let r = j
        .call("relay.submit", payload)
        .await
        .map_err(|e| super::link_failure(e, socket))?;
    output::either(json_out, &r, |r| {
        let targets = r["targets"]
            .as_object()
            .map(|t| t.keys().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        format!(
            "relay {} {} → {targets}",
            r["relay_id"].as_str().unwrap_or(""),
            r["status"].as_str().unwrap_or("")
        )
    });
    if r["status"] == "blocked" {
        return Err(Failure::refused(
            "relay_blocked",
            r["reason"]
                .as_str()
                .unwrap_or("the relay was not accepted")
                .to_owned(),
        ));
    }
    Ok(())
}

/// Prints one relay (or every relay of the session) with its steps' states.
pub async fn status(socket: &Path, session: &str, relay_id: Option<&str>, json_out: bool) -> Out {
    let c = link::connect(socket)
        .await
        .map_err(|e| super::link_failure(e, socket))?;
    let s = link::resolve_session(&c, session, false)
        .await
        .map_err(|e| super::link_failure(e, socket))?;
    let relays = list(&c, &s.id)
        .await
        .map_err(|e| super::link_failure(e, socket))?;
    let picked: Vec<&Value> = relays
        .iter()
        .filter(|r| relay_id.is_none_or(|id| r["relay_id"] == id))
        .collect();
    if let (Some(id), true) = (relay_id, picked.is_empty()) {
        return Err(Failure::refused(
            "unknown_relay",
            format!("no relay `{id}` in session {}", s.id),
        ));
    }
    for r in picked {
        output::either(json_out, r, describe);
    }
    Ok(())
}

/// Cancels `relay_id` as its owner (found in the session's relays).
pub async fn cancel(
    socket: &Path,
    session: &str,
    relay_id: &str,
    force: bool,
    json_out: bool,
) -> Out {
    let c = link::connect(socket)
        .await
        .map_err(|e| super::link_failure(e, socket))?;
    let s = link::resolve_session(&c, session, false)
        .await
        .map_err(|e| super::link_failure(e, socket))?;
    let relays = list(&c, &s.id)
        .await
        .map_err(|e| super::link_failure(e, socket))?;
    let relay = relays
        .iter()
        .find(|r| r["relay_id"] == relay_id)
        .ok_or_else(|| {
            Failure::refused(
                "unknown_relay",
                format!("no relay `{relay_id}` in session {}", s.id),
            )
        })?;
    let owner = relay["owner_id"].as_str().unwrap_or_default().to_owned();
    let j = join(socket, &s.id, &owner, force).await?;
    let r = j
        .call(
            "relay.submit",
            json!({ "relay_id": relay_id, "cancel": true }),
        )
        .await
        .map_err(|e| super::link_failure(e, socket))?;
    output::either(json_out, &r, |r| {
        format!(
            "relay {relay_id} {}",
            r["status"].as_str().unwrap_or("cancelled")
        )
    });
    Ok(())
}

async fn join(socket: &Path, session: &str, name: &str, force: bool) -> Result<Joined, Failure> {
    let opts = JoinOptions {
        kind: Some("human"),
        force,
        ..JoinOptions::default()
    };
    Joined::join_with(socket, session, name, opts)
        .await
        .map_err(|e| super::link_failure(e, socket))
}

async fn list(
    c: &codex_weave_transport_uds::Client,
    session: &str,
) -> link::LinkResult<Vec<Value>> {
    let p = link::call(
        c,
        link::envelope("relays.list", Some(session), "weavectl", json!({})),
    )
    .await?;
    Ok(p["relays"].as_array().cloned().unwrap_or_default())
}

fn describe(r: &Value) -> String {
    let mut out = format!(
        "relay {} ({}) by {}: {}",
        r["relay_id"].as_str().unwrap_or(""),
        r["status"].as_str().unwrap_or(""),
        r["owner_id"].as_str().unwrap_or(""),
        r["summary"].as_str().unwrap_or("")
    );
    for t in r["tasks"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n  {:<20} {}",
            t["agent_id"].as_str().unwrap_or(""),
            t["status"].as_str().unwrap_or("")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_from_flags_become_the_actions_of_a_relay() {
        assert_eq!(
            step("bob: review it", 0).unwrap(),
            json!({ "type": "message", "dst": "bob", "text": "review it", "expects_reply": true, "plan_step_id": "1" })
        );
        assert_eq!(
            step("wait: bob, ann", 1).unwrap(),
            json!({ "type": "wait", "targets": ["bob", "ann"], "plan_step_id": "2" })
        );
        assert!(step("no colon", 0).is_err());
        assert!(step("wait:", 0).is_err());
        let p = payload(None, &["bob: x".into()], Some("r9".into())).unwrap();
        assert_eq!(p["relay_id"], "r9");
        assert!(payload(None, &[], None).is_err());
    }
}
