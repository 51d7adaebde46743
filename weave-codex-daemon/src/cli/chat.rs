//! `weavectl join`: a person in a session from a terminal, holding conversations the way a chat
//! user expects. What arrives is numbered; plain text answers the last message, inside its
//! conversation; `#name text` starts a new one; `/reply N`, `/answer N`, `/approve N`,
//! `/deny N` act on message N; `/inbox` lists what still waits on the person.
//!
//! The person joins as kind `human`: the loop guard never counts their messages, and an answer
//! of theirs starts a fresh budget for the agents it reaches.

use std::path::Path;

use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;

use super::output::{self, Failure, Out};
use crate::agents::inbox::{self, Item};
use crate::agents::link::{JoinOptions, Joined, LinkError};

/// One typed line, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// `#ann #bob text`: new messages.
    Say {
        to: Vec<String>,
        text: String,
    },
    /// Plain text (no number) or `/reply N text`: an answer inside a conversation.
    Reply {
        n: Option<usize>,
        text: String,
    },
    /// `/answer [N] text`: the answer to a relay step (the last one waiting by default).
    Answer {
        n: Option<usize>,
        text: String,
    },
    /// `/approve [N]`, `/deny [N] [reason]`: the result of a relay step.
    Decide {
        n: Option<usize>,
        approve: bool,
        reason: String,
    },
    Inbox,
    Help,
    Nothing,
    Bad(String),
}

pub const HELP: &str = "type to answer the last message · #name text starts a new conversation · \
/reply N text · /answer [N] text · /approve [N] · /deny [N] [reason] · /inbox · /help · Ctrl-D leaves";

/// `N rest` → (Some(N), rest); no leading number → (None, everything).
fn numbered(rest: &str) -> (Option<usize>, String) {
    let rest = rest.trim();
    let (head, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    match head.trim_start_matches('#').parse::<usize>() {
        Ok(n) => (Some(n), tail.trim().to_owned()),
        Err(_) => (None, rest.to_owned()),
    }
}

pub fn parse(line: &str) -> Typed {
    let line = line.trim();
    if line.is_empty() {
        return Typed::Nothing;
    }
    if line.starts_with('#') && !line[1..].starts_with(|c: char| c.is_ascii_digit()) {
        let (to, text) = parse_addressed(line);
        if text.is_empty() {
            return Typed::Bad("nothing to say: `#name text`".into());
        }
        return Typed::Say { to, text };
    }
    let Some(command) = line.strip_prefix('/') else {
        return Typed::Reply {
            n: None,
            text: line.to_owned(),
        };
    };
    let (word, rest) = command
        .split_once(char::is_whitespace)
        .unwrap_or((command, ""));
    let (n, text) = numbered(rest);
    match word {
        "reply" | "r" if text.is_empty() => Typed::Bad("`/reply N text`: say something".into()),
        "reply" | "r" => Typed::Reply { n, text },
        "answer" | "a" if text.is_empty() => Typed::Bad("`/answer [N] text`: say something".into()),
        "answer" | "a" => Typed::Answer { n, text },
        "approve" | "yes" => Typed::Decide {
            n,
            approve: true,
            reason: text,
        },
        "deny" | "no" => Typed::Decide {
            n,
            approve: false,
            reason: text,
        },
        "inbox" | "i" => Typed::Inbox,
        "help" | "h" | "?" => Typed::Help,
        other => Typed::Bad(format!("unknown command `/{other}`; /help lists them")),
    }
}

/// `#ann #bob text` → (["ann", "bob"], "text").
pub fn parse_addressed(line: &str) -> (Vec<String>, String) {
    let mut targets = Vec::new();
    let mut rest = line.trim();
    while let Some(stripped) = rest.strip_prefix('#') {
        let end = stripped.find(char::is_whitespace).unwrap_or(stripped.len());
        targets.push(stripped[..end].to_owned());
        rest = stripped[end..].trim_start();
    }
    (targets, rest.to_owned())
}

/// What arrived, numbered from 1 in arrival order, and what is still waiting on the person.
#[derive(Default)]
struct Seen {
    items: Vec<Item>,
    /// Numbers answered or decided.
    done: std::collections::BTreeSet<usize>,
}

impl Seen {
    fn add(&mut self, item: Item) -> usize {
        self.items.push(item);
        self.items.len()
    }

    fn get(&self, n: usize) -> Result<&Item, String> {
        self.items
            .get(n.wrapping_sub(1))
            .ok_or_else(|| format!("no message [{n}] yet"))
    }

    /// Message `n`, else the last one that matches `want` and waits.
    fn pick(
        &self,
        n: Option<usize>,
        want: impl Fn(&Item) -> bool,
        what: &str,
    ) -> Result<usize, String> {
        if let Some(n) = n {
            self.get(n)?;
            return Ok(n);
        }
        (1..=self.items.len())
            .rev()
            .find(|n| !self.done.contains(n) && want(&self.items[n - 1]))
            .or_else(|| {
                (1..=self.items.len())
                    .rev()
                    .find(|n| want(&self.items[n - 1]))
            })
            .ok_or_else(|| format!("no {what} to answer yet"))
    }

    fn waiting(&self) -> Vec<(usize, &Item)> {
        (1..=self.items.len())
            .filter(|n| !self.done.contains(n) && self.items[n - 1].expects_reply)
            .map(|n| (n, &self.items[n - 1]))
            .collect()
    }
}

fn shown_item(n: usize, item: &Item) -> String {
    let what = match item.kind.as_str() {
        "relay_step" => format!(
            " asks (relay {}{}) — /answer {n} text, /approve {n}, /deny {n}",
            item.relay_id.as_deref().unwrap_or("?"),
            item.action_index
                .map(|i| format!(", step {i}"))
                .unwrap_or_default()
        ),
        "control" => " (control)".to_owned(),
        "reply" => " replies".to_owned(),
        _ => String::new(),
    };
    format!("[{n}] {}{what}: {}", item.from_name, item.text)
}

/// A delivery that is not a message for the person: results, notices, relay updates.
fn notice(env: &Value) -> Option<String> {
    let p = &env["payload"];
    let from = env
        .pointer("/meta/weave/origin_src_name")
        .and_then(Value::as_str)
        .or(env["src"].as_str())
        .unwrap_or("");
    match env["type"].as_str()? {
        "action.result" => Some(format!(
            "· {from}: step {} {}{}",
            p["action_id"].as_str().unwrap_or(""),
            p["status"].as_str().unwrap_or(""),
            p["detail"]
                .as_str()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        )),
        "task.updated" | "task.done" | "relay.done" => Some(format!(
            "· relay {} {}{}",
            p["relay_id"]
                .as_str()
                .or(p["task_id"].as_str())
                .unwrap_or(""),
            p["status"].as_str().unwrap_or("done"),
            p["summary"]
                .as_str()
                .map(|s| format!(": {s}"))
                .unwrap_or_default()
        )),
        "session.closed" => Some("· the session was closed".to_owned()),
        "agent.displaced" => {
            Some("· you joined from somewhere else: this terminal leaves".to_owned())
        }
        kind => Some(format!("· {kind} from {from}")),
    }
}

fn refused(e: &LinkError) -> String {
    format!("refused: {}: {} ({})", e.code, e.message, e.hint())
}

/// Joins `session` as the person `name` and chats until stdin ends or the session closes.
pub async fn run(socket: &Path, session: &str, name: &str, force: bool, json_out: bool) -> Out {
    let opts = JoinOptions {
        kind: Some("human"),
        force,
        ..JoinOptions::default()
    };
    let mut j = Joined::join_with(socket, session, name, opts)
        .await
        .map_err(|e| super::link_failure(e, socket))?;
    let label = j
        .session
        .name
        .clone()
        .unwrap_or_else(|| j.session.id.clone());
    if json_out {
        output::value(&json!({ "joined": j.session.id, "id": j.id, "name": j.name }));
    } else {
        codex_weave_transport_uds::console::complain(format_args!(
            "joined {label} as {} ({}): {HELP}",
            j.name, j.id
        ));
    }
    let mut seen = Seen::default();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            delivery = j.agent.recv() => {
                let Some(d) = delivery else { break };
                let items = inbox::items_of(&j.id, &d);
                let env = serde_json::to_value(&d.0).unwrap_or_default();
                if items.is_empty() {
                    if json_out {
                        output::value(&json!({ "notice": env }));
                    } else if let Some(text) = notice(&env) {
                        output::human(&text);
                    }
                    if matches!(d.kind(), "session.closed" | "agent.displaced") {
                        return Ok(());
                    }
                    continue;
                }
                let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
                for item in items {
                    let n = seen.add(item.clone());
                    if json_out {
                        output::value(&json!({ "n": n, "message": item }));
                    } else {
                        output::human(&shown_item(n, &item));
                    }
                }
                // Printed on the person's terminal: read.
                let _ = j.call("message.read", json!({ "ids": ids })).await;
            }
            line = stdin.next_line() => {
                let Ok(Some(line)) = line else { break };
                let said = act(&mut j, &mut seen, parse(&line)).await;
                match (said, json_out) {
                    (Ok(Some(v)), true) => output::value(&v),
                    (Ok(Some(v)), false) => output::human(&format!("  sent ({})", v["id"].as_str().unwrap_or(""))),
                    (Ok(None), _) => {}
                    (Err(e), true) => output::value(&json!({ "error": e })),
                    (Err(e), false) => output::human(&format!("  {e}")),
                }
            }
        }
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), j.agent.leave()).await;
    Ok(())
}

/// Does what one typed line says; what was sent, or why nothing was.
async fn act(j: &mut Joined, seen: &mut Seen, typed: Typed) -> Result<Option<Value>, String> {
    match typed {
        Typed::Nothing => Ok(None),
        Typed::Bad(why) => Err(why),
        Typed::Help => {
            output::line(HELP);
            Ok(None)
        }
        Typed::Inbox => {
            let waiting = seen.waiting();
            if waiting.is_empty() {
                output::line("  nothing waits on you");
            }
            for (n, item) in waiting {
                output::human(&format!("  {}", shown_item(n, item)));
            }
            Ok(None)
        }
        Typed::Say { to, text } => {
            let mut last = Value::Null;
            for t in to {
                last = j
                    .call_to("message.send", &t, json!({ "text": text, "kind": "user" }))
                    .await
                    .map_err(|e| format!("{t}: {}", refused(&e)))?;
            }
            Ok(Some(last))
        }
        Typed::Reply { n, text } => {
            let n = seen
                .pick(n, |_| true, "message")
                .map_err(|e| format!("{e}: start a conversation with `#name text`"))?;
            let item = seen.get(n)?.clone();
            let sent = inbox::reply(j, &item, &text)
                .await
                .map_err(|e| refused(&e))?;
            seen.done.insert(n);
            Ok(Some(sent))
        }
        Typed::Answer { n, text } => {
            let n = seen.pick(n, Item::is_relay_step, "relay step")?;
            let item = seen.get(n)?.clone();
            if !item.is_relay_step() {
                return Err(format!(
                    "[{n}] is a message, not a relay step: /reply {n} text"
                ));
            }
            let sent = inbox::reply(j, &item, &text)
                .await
                .map_err(|e| refused(&e))?;
            seen.done.insert(n);
            Ok(Some(sent))
        }
        Typed::Decide { n, approve, reason } => {
            let n = seen.pick(n, Item::is_relay_step, "relay step")?;
            let item = seen.get(n)?.clone();
            let (status, default) = if approve {
                ("completed", "approved")
            } else {
                ("rejected", "denied")
            };
            let detail = if reason.is_empty() {
                default
            } else {
                reason.as_str()
            };
            let sent = inbox::task_result(j, &item, status, detail)
                .await
                .map_err(|e| refused(&e))?;
            j.ack(&item.id);
            seen.done.insert(n);
            Ok(Some(sent))
        }
    }
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Other(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_lines_are_understood_as_a_chat_user_means_them() {
        assert_eq!(
            parse("sounds good"),
            Typed::Reply {
                n: None,
                text: "sounds good".into()
            }
        );
        assert_eq!(
            parse("#ann #Bob please look"),
            Typed::Say {
                to: vec!["ann".into(), "Bob".into()],
                text: "please look".into()
            }
        );
        assert_eq!(
            parse("/reply 3 yes"),
            Typed::Reply {
                n: Some(3),
                text: "yes".into()
            }
        );
        assert_eq!(
            parse("/r #3 yes"),
            Typed::Reply {
                n: Some(3),
                text: "yes".into()
            }
        );
        assert_eq!(
            parse("/answer the diff is fine"),
            Typed::Answer {
                n: None,
                text: "the diff is fine".into()
            }
        );
        assert_eq!(
            parse("/approve 2"),
            Typed::Decide {
                n: Some(2),
                approve: true,
                reason: String::new()
            }
        );
        assert_eq!(
            parse("/deny not now"),
            Typed::Decide {
                n: None,
                approve: false,
                reason: "not now".into()
            }
        );
        assert_eq!(parse("  "), Typed::Nothing);
        assert_eq!(parse("/inbox"), Typed::Inbox);
        assert!(matches!(parse("/frobnicate"), Typed::Bad(_)));
        assert!(matches!(parse("/reply 2"), Typed::Bad(_)));
        assert!(matches!(parse("#bob"), Typed::Bad(_)));
    }
}
