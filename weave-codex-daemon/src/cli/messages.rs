//! Messages from a terminal, one command at a time: `send`, `reply`, `inbox [--wait]`,
//! `history`, `tail`. Acting as an agent (`send`, `reply`) binds it to this short connection, so
//! an agent live elsewhere is refused (`agent_online`) unless `--force`; deliveries that reach
//! the short connection are not acked and wait for the agent's next connection.

use std::path::Path;
use std::time::{Duration, Instant};

use codex_weave_transport_uds::Client;
use serde_json::{json, Value};

use super::link_failure;
use super::output::{self, Failure, Out};
use crate::agents::inbox::{self, Item};
use crate::agents::link::{self, JoinOptions, Joined, SessionRef};

/// Who a one-shot command acts as: a person unless the agent exists already as something else.
async fn act_as(socket: &Path, session: &str, name: &str, force: bool) -> Result<Joined, Failure> {
    let opts = JoinOptions {
        kind: Some("human"),
        auto_ack: false,
        force,
        ..JoinOptions::default()
    };
    Joined::join_with(socket, session, name, opts)
        .await
        .map_err(|e| link_failure(e, socket))
}

async fn session_of(socket: &Path, wanted: &str) -> Result<(Client, SessionRef), Failure> {
    let c = link::connect(socket)
        .await
        .map_err(|e| link_failure(e, socket))?;
    let s = link::resolve_session(&c, wanted, false)
        .await
        .map_err(|e| link_failure(e, socket))?;
    Ok((c, s))
}

pub struct Send<'a> {
    pub session: &'a str,
    pub to: &'a [String],
    pub as_name: &'a str,
    pub force: bool,
    pub text: &'a str,
}

pub async fn send(socket: &Path, a: Send<'_>, json_out: bool) -> Out {
    let j = act_as(socket, a.session, a.as_name, a.force).await?;
    for target in a.to {
        let p = j
            .call_to(
                "message.send",
                target,
                json!({ "text": a.text, "kind": "user" }),
            )
            .await
            .map_err(|e| link_failure(e, socket))?;
        output::either(json_out, &p, |p| {
            format!(
                "sent to {} (message {}, seq {})",
                p["dst"].as_str().unwrap_or(target),
                p["id"].as_str().unwrap_or(""),
                p["seq"]
            )
        });
    }
    Ok(())
}

/// Answers message `id` (a message id, or a relay step's action id, as `inbox` shows) inside
/// its conversation.
pub async fn reply(
    socket: &Path,
    session: &str,
    as_name: &str,
    force: bool,
    id: &str,
    text: &str,
    json_out: bool,
) -> Out {
    let j = act_as(socket, session, as_name, force).await?;
    let item = inbox::lookup(&j, id)
        .await
        .map_err(|e| link_failure(e, socket))?;
    let p = inbox::reply(&j, &item, text)
        .await
        .map_err(|e| link_failure(e, socket))?;
    output::either(json_out, &p, |p| {
        format!(
            "replied to {} (message {}, seq {})",
            item.from_name,
            p["id"].as_str().unwrap_or(""),
            p["seq"]
        )
    });
    Ok(())
}

pub struct InboxQuery<'a> {
    pub session: &'a str,
    pub name: &'a str,
    pub wait: Option<Duration>,
    pub limit: usize,
    pub mark_read: bool,
}

/// What waits for agent `name` (messages and relay steps not yet read), oldest first; with
/// `wait`, blocks until something is there or the time is up. Reads on any connection: it
/// does not take the agent over.
pub async fn inbox(socket: &Path, q: InboxQuery<'_>, json_out: bool) -> Out {
    let (c, s) = session_of(socket, q.session).await?;
    let agent = link::agent_id_for(q.name);
    let deadline = q.wait.map(|w| Instant::now() + w);
    // The connection following the log, once something must be waited for.
    let mut follow: Option<(Client, codex_weave_transport_uds::client::Events)> = None;
    let (items, total) = loop {
        let p = link::call(
            &c,
            link::envelope(
                "inbox.unread",
                Some(&s.id),
                "weavectl",
                json!({ "agent": agent, "limit": q.limit, "mark_read": q.mark_read }),
            ),
        )
        .await
        .map_err(|e| link_failure(e, socket))?;
        let items = Item::from_unread(&p);
        let Some(deadline) = deadline.filter(|_| items.is_empty()) else {
            break (items, p["total"].as_u64().unwrap_or(0));
        };
        // Nothing yet: wake on the session's next record (a delivery is one), or give up.
        if follow.is_none() {
            let (fc, events) = Client::connect(socket)
                .await
                .map_err(|_| Failure::NoBus(socket.to_owned()))?;
            let since = session_head(&c, &s.id).await;
            fc.call(link::envelope(
                "events.stream",
                Some(&s.id),
                "weavectl",
                json!({ "since": since, "follow": true }),
            ))
            .await?;
            // Between the look above and the stream's start something may have arrived.
            follow = Some((fc, events));
            continue;
        }
        let Some((_, events)) = follow.as_mut() else {
            continue;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(_)) => continue,
            Ok(None) => return Err(Failure::NoBus(socket.to_owned())),
            Err(_) => break (Vec::new(), 0),
        }
    };
    if items.is_empty() && !json_out {
        codex_weave_transport_uds::console::complain(format_args!(
            "weavectl: nothing waits for {agent}"
        ));
    }
    for item in &items {
        let v = serde_json::to_value(item).unwrap_or_default();
        output::either(json_out, &v, |_| {
            format!("{}  {}", item.id, item.line(2000))
        });
    }
    let more = total.saturating_sub(items.len() as u64);
    if more > 0 && !json_out {
        codex_weave_transport_uds::console::complain(format_args!(
            "weavectl: {more} more; raise --limit"
        ));
    }
    Ok(())
}

async fn session_head(c: &Client, session: &str) -> u64 {
    let p = link::call(
        c,
        link::envelope(
            "events.history",
            Some(session),
            "weavectl",
            json!({ "limit": 1 }),
        ),
    )
    .await
    .unwrap_or_default();
    p["head"].as_u64().unwrap_or(0)
}

/// One page of the session's event log from `since`.
pub async fn history(socket: &Path, session: &str, since: u64, limit: u64, json_out: bool) -> Out {
    let (c, s) = session_of(socket, session).await?;
    let page = link::call(
        &c,
        link::envelope(
            "events.history",
            Some(&s.id),
            "weavectl",
            json!({ "since": since, "limit": limit }),
        ),
    )
    .await
    .map_err(|e| link_failure(e, socket))?;
    for r in page["records"].as_array().into_iter().flatten() {
        output::either(json_out, r, describe);
    }
    if let (false, Some(next), Some(head)) =
        (json_out, page["next"].as_u64(), page["head"].as_u64())
    {
        if next < head {
            codex_weave_transport_uds::console::complain(format_args!(
                "weavectl: more with --since {next}"
            ));
        }
    }
    Ok(())
}

/// Follows the session's event log live, from `since`.
pub async fn tail(socket: &Path, session: &str, since: u64, json_out: bool) -> Out {
    let (_, s) = session_of(socket, session).await?;
    let (c, mut events) = Client::connect(socket)
        .await
        .map_err(|_| Failure::NoBus(socket.to_owned()))?;
    c.call(link::envelope(
        "events.stream",
        Some(&s.id),
        "weavectl",
        json!({ "since": since, "follow": true }),
    ))
    .await?;
    while let Some(env) = events.recv().await {
        if env.kind != "events.record" {
            continue;
        }
        let record = env.payload.unwrap_or_default();
        output::either(json_out, &record, describe);
    }
    Ok(())
}

/// One record for a person: `seq type src → dst: text`.
pub fn describe(record: &Value) -> String {
    let env = &record["envelope"];
    let text = env["payload"]["text"]
        .as_str()
        .or(env["payload"].as_str())
        .map(|t| format!(": {t}"))
        .unwrap_or_default();
    let dst = env["dst"]
        .as_str()
        .map(|d| format!(" → {d}"))
        .unwrap_or_default();
    format!(
        "{:>5} {} {}{}{}",
        record["seq"],
        env["type"].as_str().unwrap_or(""),
        env["src"].as_str().unwrap_or(""),
        dst,
        text
    )
}
