//! A message as an adapter hands it to an agent: who sent it, what it says, what it belongs to
//! (conversation, relay step), and how to answer it — built from the records the bus serves
//! (`inbox.unread`, `events.history`), so that the MCP server, the hooks and the headless runner
//! show and answer messages the same way.

use codex_weave_transport_uds::Delivery;
use serde::Serialize;
use serde_json::{json, Value};

use super::link::{Joined, LinkError, LinkResult};

/// One message to an agent: a `message.send`, or one action of a group (a relay step).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    /// What to name in `reply`, `task_result` and `message.read`: the message id, or the
    /// action id of a relay step.
    pub id: String,
    pub seq: u64,
    pub ts: String,
    pub from: String,
    pub from_name: String,
    /// `user` (new work), `reply`, `control`, or `relay_step`.
    pub kind: String,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_index: Option<u64>,
    /// The sender expects an answer (a relay step with `expects_reply`, or new work).
    pub expects_reply: bool,
}

fn text_of(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

impl Item {
    /// The item for `id` in a recorded envelope (`message.send`, or the action `id` of an
    /// `action.submit`); `None` when the record holds no such message.
    pub fn from_record(id: &str, seq: u64, ts: &str, env: &Value) -> Option<Item> {
        let p = &env["payload"];
        let from = env["src"].as_str()?.to_owned();
        let from_name = env
            .pointer("/meta/weave/origin_src_name")
            .and_then(Value::as_str)
            .unwrap_or(&from)
            .to_owned();
        let base = Item {
            id: id.to_owned(),
            seq,
            ts: ts.to_owned(),
            from,
            from_name,
            kind: String::new(),
            text: String::new(),
            context_id: None,
            owner_id: None,
            relay_id: None,
            task_id: None,
            group_id: None,
            action_index: None,
            expects_reply: true,
        };
        match env["type"].as_str()? {
            "message.send" => {
                let kind = p["kind"].as_str().unwrap_or("user").to_owned();
                Some(Item {
                    text: text_of(p)
                        .or_else(|| text_of(&p["text"]))
                        .unwrap_or_default(),
                    expects_reply: kind != "reply",
                    kind,
                    context_id: text_of(&p["context_id"]),
                    owner_id: text_of(&p["owner_id"]),
                    task_id: text_of(&p["task_id"]),
                    ..base
                })
            }
            "action.submit" => {
                let action = p["actions"]
                    .as_array()?
                    .iter()
                    .find(|a| a["action_id"].as_str() == Some(id))?;
                let control = action["type"] == "control";
                Some(Item {
                    kind: if control { "control" } else { "relay_step" }.to_owned(),
                    text: if control {
                        format!("[{}]", action["command"].as_str().unwrap_or("control"))
                    } else {
                        action["text"].as_str().unwrap_or_default().to_owned()
                    },
                    context_id: text_of(&p["context"]["context_id"]),
                    owner_id: text_of(&p["context"]["owner_id"]),
                    relay_id: text_of(&p["relay_id"])
                        .or_else(|| env.pointer("/meta/weave/relay_id").and_then(text_of)),
                    task_id: text_of(&p["task_id"]),
                    group_id: text_of(&p["group_id"]),
                    action_index: action["action_index"].as_u64(),
                    expects_reply: !control && action["expects_reply"] != false,
                    ..base
                })
            }
            _ => None,
        }
    }

    /// The items of an `inbox.unread` answer, oldest first.
    pub fn from_unread(payload: &Value) -> Vec<Item> {
        payload["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| {
                Item::from_record(
                    m["id"].as_str()?,
                    m["seq"].as_u64().unwrap_or(0),
                    m["ts"].as_str().unwrap_or_default(),
                    &m["envelope"],
                )
            })
            .collect()
    }

    pub fn is_relay_step(&self) -> bool {
        self.kind == "relay_step" || self.kind == "control"
    }

    /// The line a person or a model reads: `[from] (relay r1 step) text`, the text cut to
    /// `max_chars`.
    pub fn line(&self, max_chars: usize) -> String {
        let what = match (self.kind.as_str(), &self.relay_id) {
            ("relay_step", Some(r)) => format!(" (step of relay {r})"),
            ("reply", _) => " (reply)".to_owned(),
            ("control", _) => " (control)".to_owned(),
            _ => String::new(),
        };
        format!(
            "[{}] {}{what}: {}  (id {})",
            self.ts.get(11..19).unwrap_or(&self.ts),
            self.from_name,
            cut(&escape_controls(&self.text), max_chars),
            self.id
        )
    }
}

/// `text` cut to `max` characters, with `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Control characters and escape sequences shown, not obeyed (a message must not drive the
/// reader's terminal); newlines and tabs stay.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// The messages a delivery holds for agent `me`: a message, or `me`'s actions of a group (each
/// a relay step or a control); nothing for results and notices.
pub fn items_of(me: &str, d: &Delivery) -> Vec<Item> {
    let env = serde_json::to_value(&d.0).unwrap_or_default();
    let seq = env
        .pointer("/meta/weave/seq")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    match d.kind() {
        "message.send" => Item::from_record(d.ack_id(), seq, &d.0.ts, &env)
            .into_iter()
            .collect(),
        "action.submit" => env["payload"]["actions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["dst"] == me)
            .filter_map(|a| Item::from_record(a["action_id"].as_str()?, seq, &d.0.ts, &env))
            .collect(),
        _ => Vec::new(),
    }
}

/// The agent's unread messages, oldest first (at most `limit`), marked read when `mark`; and how
/// many are left beyond them.
pub async fn unread(j: &Joined, limit: usize, mark: bool) -> LinkResult<(Vec<Item>, u64)> {
    let p = j
        .call(
            "inbox.unread",
            json!({ "agent": j.id, "limit": limit, "mark_read": mark }),
        )
        .await?;
    Ok((Item::from_unread(&p), p["more"].as_u64().unwrap_or(0)))
}

/// The message `id` as delivered to `j`: found through its receipt, then its record.
pub async fn lookup(j: &Joined, id: &str) -> LinkResult<Item> {
    let receipts = j.call("message.receipts", json!({ "ids": [id] })).await?;
    let mine = receipts["receipts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["agent"] == j.id.as_str())
        .and_then(|r| r["seq"].as_u64())
        .ok_or_else(|| {
            LinkError::new(
                "unknown_message",
                format!("no message `{id}` was sent to you (use the id that `inbox` shows)"),
            )
        })?;
    let page = j
        .call(
            "events.history",
            json!({ "since": mine.saturating_sub(1), "limit": 1 }),
        )
        .await?;
    page["records"]
        .as_array()
        .and_then(|r| r.first())
        .and_then(|r| {
            Item::from_record(
                id,
                mine,
                r["ts"].as_str().unwrap_or_default(),
                &r["envelope"],
            )
        })
        .ok_or_else(|| {
            LinkError::new(
                "unknown_message",
                format!("the record of `{id}` is no longer kept"),
            )
        })
}

/// Answers `item` with `text` as `j`, inside its conversation: a relay step gets a `reply` naming
/// the action (and its delivery is acknowledged); work from a conversation's owner gets a
/// `reply`; an answer in one's own conversation is a follow-up naming the message. Every form
/// names what it answers, so its receipt becomes `answered`. Returns the `message.send` answer.
pub async fn reply(j: &Joined, item: &Item, text: &str) -> LinkResult<Value> {
    let mine = item.owner_id.as_deref() == Some(j.id.as_str());
    let mut payload = json!({ "text": text });
    if let Some(ctx) = &item.context_id {
        payload["context_id"] = json!(ctx);
    }
    if item.is_relay_step() {
        payload["kind"] = json!("reply");
        payload["reply_to_action_id"] = json!(item.id);
    } else if mine {
        payload["kind"] = json!("user");
        payload["parent_message_id"] = json!(item.id);
    } else {
        payload["kind"] = json!("reply");
        payload["parent_message_id"] = json!(item.id);
    }
    let dst = if mine {
        &item.from
    } else {
        item.owner_id.as_ref().unwrap_or(&item.from)
    };
    let sent = j.call_to("message.send", dst, payload).await?;
    if item.is_relay_step() {
        j.ack(&item.id);
    }
    Ok(sent)
}

/// Reports the result of a relay step given to `j`: `completed`, `rejected` or `error`, with a
/// summary, to the relay's owner.
pub async fn task_result(
    j: &Joined,
    item: &Item,
    status: &str,
    summary: &str,
) -> LinkResult<Value> {
    if !item.is_relay_step() {
        return Err(LinkError::new(
            "bad_request",
            format!(
                "`{}` is a message, not a relay step: answer it with `reply`",
                item.id
            ),
        ));
    }
    let payload = json!({
        "group_id": item.group_id,
        "action_id": item.id,
        "action_index": item.action_index,
        "status": status,
        "detail": summary,
    });
    let dst = item.owner_id.as_ref().unwrap_or(&item.from);
    j.call_to("action.result", dst, payload).await
}

/// A record in a few fields a reader (or a model) takes in at a glance.
pub fn summary(record: &Value) -> Value {
    let env = &record["envelope"];
    let p = &env["payload"];
    let text = match env["type"].as_str().unwrap_or("") {
        "message.send" => p.as_str().or(p["text"].as_str()).map(str::to_owned),
        "action.submit" | "relay.submit" => p["actions"].as_array().map(|a| {
            a.iter()
                .filter_map(|x| x["text"].as_str())
                .collect::<Vec<_>>()
                .join(" · ")
        }),
        "action.result" => Some(format!(
            "{}{}",
            p["status"].as_str().unwrap_or(""),
            p["detail"]
                .as_str()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        )),
        "relay.done" | "task.done" => p["summary"].as_str().map(str::to_owned),
        "loop.suppressed" => Some(format!(
            "stopped by the loop guard ({}) : {} → {}",
            p["rule"].as_str().unwrap_or(""),
            p["from"].as_str().unwrap_or(""),
            p["to"]
        )),
        _ => None,
    };
    let mut out = json!({
        "seq": record["seq"],
        "ts": record["ts"],
        "type": env["type"],
        "from": env.pointer("/meta/weave/origin_src_name").unwrap_or(&env["src"]),
    });
    if let Some(dst) = env["dst"].as_str() {
        out["to"] = json!(dst);
    }
    if let Some(text) = text {
        out["text"] = json!(text);
    }
    if let Some(id) = env["id"].as_str() {
        out["id"] = json!(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_step_is_found_in_its_group_and_a_message_as_sent() {
        let group = json!({
            "type": "action.submit", "src": "o", "meta": { "weave": { "origin_src_name": "Owner", "relay_id": "r1" } },
            "payload": { "group_id": "g", "relay_id": "r1", "context": { "context_id": "r1:w", "owner_id": "o" },
                "actions": [ { "action_id": "a0", "action_index": 0, "type": "message", "text": "first", "dst": "w" },
                             { "action_id": "a1", "action_index": 1, "type": "message", "text": "second", "dst": "w", "expects_reply": false } ] }
        });
        let item = Item::from_record("a1", 9, "2026-12-04T10:00:00Z", &group).unwrap();
        assert_eq!(
            (
                item.kind.as_str(),
                item.text.as_str(),
                item.from_name.as_str()
            ),
            ("relay_step", "second", "Owner")
        );
        assert_eq!(
            (
                item.relay_id.as_deref(),
                item.action_index,
                item.expects_reply
            ),
            (Some("r1"), Some(1), false)
        );
        assert_eq!(Item::from_record("zz", 9, "", &group), None);
        let msg = json!({ "type": "message.send", "src": "b", "payload": "plain" });
        let item = Item::from_record("m", 1, "", &msg).unwrap();
        assert_eq!(
            (
                item.kind.as_str(),
                item.text.as_str(),
                item.from_name.as_str()
            ),
            ("user", "plain", "b")
        );
    }

    #[test]
    fn text_is_cut_and_its_escape_sequences_shown() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
        assert_eq!(escape_controls("red\u{1b}[31m\nok"), "red\\u{1b}[31m\nok");
    }
}
