//! `weavectl doctor [--session S] [AGENT]`: why has an agent not answered? For each agent it
//! reads what the bus knows — presence and since when, unread messages, whether it ever read
//! one, deliveries waiting behind unacked ones, loop-guard stops, dead letters — and whether its
//! doorbell hooks are installed where its agent would read them, and says what to do.

use std::path::Path;

use serde::Serialize;
use serde_json::{json, Value};

use super::link::{call, envelope, LinkResult, SessionRef};
use codex_weave_transport_uds::Client;

/// What the doctor found about one agent.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    pub agent: String,
    pub name: String,
    pub presence: String,
    pub unread: u64,
    /// Each finding: a fact and what to do about it.
    pub findings: Vec<String>,
}

/// Records looked through for presence changes, reads and loop-guard stops.
const LOOK_BACK: u64 = 5000;

pub async fn diagnose(
    client: &Client,
    session: &SessionRef,
    only: Option<&str>,
    config_dirs: &[&Path],
) -> LinkResult<Vec<Diagnosis>> {
    let sid = session.id.as_str();
    let ask =
        |kind: &str, payload: Value| call(client, envelope(kind, Some(sid), "weavectl", payload));
    let agents = ask("agent.list", Value::Null).await?;
    let history = ask("events.history", json!({ "limit": LOOK_BACK })).await?;
    let dead = ask("deliveries.dead", json!({ "limit": 1000 })).await?;
    let records: Vec<&Value> = history["records"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let mut out = Vec::new();
    for a in agents["agents"].as_array().into_iter().flatten() {
        let id = a["id"].as_str().unwrap_or_default();
        let name = a["name"].as_str().unwrap_or(id);
        if only.is_some_and(|o| !o.eq_ignore_ascii_case(id) && !o.eq_ignore_ascii_case(name)) {
            continue;
        }
        let unread = ask("inbox.unread", json!({ "agent": id, "limit": 1 })).await?["total"]
            .as_u64()
            .unwrap_or(0);
        let presence = a["status"].as_str().unwrap_or("offline").to_owned();
        let mut findings = Vec::new();
        if presence == "offline" {
            let since = records
                .iter()
                .rfind(|r| {
                    r["envelope"]["type"] == "agent.offline" && r["envelope"]["payload"]["id"] == id
                })
                .and_then(|r| r["ts"].as_str())
                .unwrap_or("before the kept log")
                .to_owned();
            findings.push(format!(
                "offline since {since}: nothing reads its messages; start its agent (its MCP server \
                 `weavectl mcp`, or `weavectl agent run`) again"
            ));
        }
        let reads = records.iter().any(|r| {
            r["envelope"]["type"] == "receipt.updated"
                && r["envelope"]["payload"]["agent"] == id
                && matches!(
                    r["envelope"]["payload"]["state"].as_str(),
                    Some("read" | "answered")
                )
        });
        if unread > 0 && !reads {
            findings.push(format!(
                "{unread} message(s) delivered or queued and it never read one: its model does not call \
                 `inbox` and no hook shows them; install the doorbell (`weavectl install claude|codex|gemini \
                 --name {name}`)"
            ));
        } else if unread > 0 {
            findings.push(format!(
                "{unread} message(s) not read yet: it reads, but has not come to these"
            ));
        }
        if a["queued"].as_u64().unwrap_or(0) > 0 && presence == "online" {
            findings.push(format!(
                "{} deliveries wait behind {} unacked ones (the in-flight cap, --max-inflight-per-agent): \
                 its client does not ack what it receives",
                a["queued"], a["unacked"]
            ));
        }
        let stops: Vec<&Value> = records
            .iter()
            .filter(|r| r["envelope"]["type"] == "loop.suppressed")
            .map(|r| &r["envelope"]["payload"])
            .filter(|p| {
                p["from"] == id
                    || p["to"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|x| x == id))
            })
            .collect();
        if let Some(last) = stops.last() {
            findings.push(format!(
                "the loop guard stopped {} message(s) to or from it (last: rule {}, hop {}): agents were \
                 answering each other in circles; a person's message starts a fresh budget",
                stops.len(),
                last["rule"].as_str().unwrap_or("?"),
                last["hop"]
            ));
        }
        let dead_here = dead["dead"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["dst"] == id)
            .count();
        if dead_here > 0 {
            findings.push(format!(
                "{dead_here} message(s) to it were dead-lettered (see `deliveries.dead`): delivered \
                 --max-deliver times and never acked"
            ));
        }
        if a["kind"] == "agent" && !hooks_installed(config_dirs, name) {
            findings.push(format!(
                "no doorbell hooks for `{name}` in {}: an idle agent is not woken by new messages",
                config_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if findings.is_empty() {
            findings.push("nothing wrong: it reads and answers".into());
        }
        out.push(Diagnosis {
            agent: id.to_owned(),
            name: name.to_owned(),
            presence,
            unread,
            findings,
        });
    }
    Ok(out)
}

/// Whether any agent configuration under `dirs` runs `weavectl hook` for `name`.
fn hooks_installed(dirs: &[&Path], name: &str) -> bool {
    let files = [
        ".claude/settings.json",
        ".codex/hooks.json",
        ".gemini/settings.json",
    ];
    dirs.iter().any(|d| {
        files.iter().any(|f| {
            std::fs::read_to_string(d.join(f)).is_ok_and(|text| {
                text.contains("weavectl") && text.contains(" hook ") && text.contains(name)
            })
        })
    })
}
