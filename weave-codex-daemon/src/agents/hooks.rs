//! `weavectl hook claude|codex|gemini EVENT`: the doorbell. An agent's own hooks run it at its
//! lifecycle events; it reads the hook's JSON on stdin as that agent documents it and prints
//! what that agent reads back, so new messages reach a busy agent at its next step and an agent
//! about to go idle takes them up:
//!
//! - at session start, a prompt, or after a tool: extra context listing the new messages
//!   (at most [`DEFAULT_MAX_MESSAGES`], each cut to [`DEFAULT_MAX_CHARS`], "… and N more");
//! - when the agent is about to stop: a decision to go on ("block" / Gemini's "deny") with the
//!   messages as the reason.
//!
//! What it shows is marked read, so each message is injected once. It never takes longer than
//! its deadline (default 300 ms) and, when no daemon runs or anything fails, prints nothing and
//! exits 0: a doorbell must never break the agent it serves.
//!
//! Formats, as documented by each agent (the fixtures in `tests/daemon/fixtures/hooks/` follow them):
//! Claude Code hooks reference (code.claude.com/docs/en/hooks, Claude Code 2.1); Codex CLI hooks
//! (developers.openai.com/codex/hooks, Codex 0.130, same wire shapes as Claude Code); Gemini CLI
//! hooks reference (geminicli.com/docs/hooks/reference, Gemini CLI 0.30).

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::inbox::{cut, escape_controls, Item};
use super::link::{agent_id_for, call, connect, envelope, resolve_session, LinkResult};

/// Messages listed at most by one hook run.
pub const DEFAULT_MAX_MESSAGES: usize = 5;
/// Characters of one message shown at most.
pub const DEFAULT_MAX_CHARS: usize = 500;
/// How long a hook run may take, whatever happens.
pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(300);
/// Most bytes of hook input read.
const MAX_INPUT: u64 = 1 << 20;

/// The agents whose hooks we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AgentKind {
    Claude,
    Codex,
    Gemini,
}

/// What a hook event asks of us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Extra context for the model (`hookSpecificOutput.additionalContext`).
    Context,
    /// A decision to keep the agent going, with the messages as the reason.
    KeepGoing,
    /// An event we do not act on.
    Nothing,
}

impl AgentKind {
    /// The events each agent documents that we answer, and how.
    fn answer(self, event: &str) -> Answer {
        match (self, event) {
            (
                AgentKind::Claude | AgentKind::Codex,
                "SessionStart" | "UserPromptSubmit" | "PostToolUse",
            ) => Answer::Context,
            (AgentKind::Claude | AgentKind::Codex, "Stop") => Answer::KeepGoing,
            (AgentKind::Gemini, "SessionStart" | "BeforeAgent" | "AfterTool") => Answer::Context,
            (AgentKind::Gemini, "AfterAgent") => Answer::KeepGoing,
            _ => Answer::Nothing,
        }
    }

    /// The events `weavectl install` hooks.
    pub fn events(self) -> &'static [&'static str] {
        match self {
            AgentKind::Claude | AgentKind::Codex => {
                &["SessionStart", "UserPromptSubmit", "PostToolUse", "Stop"]
            }
            AgentKind::Gemini => &["SessionStart", "BeforeAgent", "AfterTool", "AfterAgent"],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Claude => "claude",
            AgentKind::Codex => "codex",
            AgentKind::Gemini => "gemini",
        }
    }

    /// What the agent reads back: the JSON it documents for this event.
    fn output(self, event: &str, answer: Answer, text: &str) -> Option<Value> {
        match answer {
            Answer::Nothing => None,
            Answer::Context => Some(match self {
                AgentKind::Claude | AgentKind::Codex => json!({
                    "hookSpecificOutput": { "hookEventName": event, "additionalContext": text }
                }),
                AgentKind::Gemini => json!({ "hookSpecificOutput": { "additionalContext": text } }),
            }),
            Answer::KeepGoing => Some(match self {
                AgentKind::Claude | AgentKind::Codex => {
                    json!({ "decision": "block", "reason": text })
                }
                AgentKind::Gemini => json!({ "decision": "deny", "reason": text }),
            }),
        }
    }
}

/// Who the hook speaks for, and its bounds.
#[derive(Debug, Clone)]
pub struct HookOptions {
    pub agent: AgentKind,
    pub event: String,
    pub session: Option<String>,
    pub name: Option<String>,
    pub max_messages: usize,
    pub max_chars: usize,
    pub deadline: Duration,
}

/// Runs the hook: reads stdin, asks the bus, returns what to print (nothing on any failure).
pub async fn run(socket: &Path, opts: &HookOptions, input: &str) -> Option<String> {
    // The event the input names (every agent sends `hook_event_name`) wins over the argument.
    let input: Value = serde_json::from_str(input).unwrap_or(Value::Null);
    let event = input["hook_event_name"].as_str().unwrap_or(&opts.event);
    let answer = opts.agent.answer(event);
    if answer == Answer::Nothing {
        return None;
    }
    let (Some(session), Some(name)) = (opts.session.as_deref(), opts.name.as_deref()) else {
        return None;
    };
    let work = async {
        let text = context(socket, session, name, opts, event).await.ok()??;
        opts.agent.output(event, answer, &text)
    };
    let out = tokio::time::timeout(opts.deadline, work).await.ok()??;
    Some(out.to_string())
}

/// The text to inject: new messages for the agent (marked read), or `None` when there are none.
async fn context(
    socket: &Path,
    session: &str,
    name: &str,
    opts: &HookOptions,
    event: &str,
) -> LinkResult<Option<String>> {
    let client = connect(socket).await?;
    let s = resolve_session(&client, session, false).await?;
    let id = agent_id_for(name);
    let p = call(
        &client,
        envelope(
            "inbox.unread",
            Some(&s.id),
            "weavectl-hook",
            json!({ "agent": id, "limit": opts.max_messages.max(1), "mark_read": true }),
        ),
    )
    .await?;
    let items = Item::from_unread(&p);
    let more = p["more"].as_u64().unwrap_or(0);
    if items.is_empty() {
        return Ok(None);
    }
    let session_name = s.name.as_deref().unwrap_or(&s.id);
    let mut text = format!(
        "Weave: {} new message{} for you ({name}) in session {session_name}:\n",
        items.len() + more as usize,
        if items.len() + more as usize == 1 {
            ""
        } else {
            "s"
        }
    );
    for item in &items {
        text.push_str("- ");
        text.push_str(&item.line(opts.max_chars));
        text.push('\n');
    }
    if more > 0 {
        text.push_str(&format!(
            "… and {more} more: call the `inbox` tool of the weave MCP server.\n"
        ));
    }
    text.push_str(
        "Answer each with the weave `reply` tool (a relay step with `task_result`); \
         do not send acknowledgements.",
    );
    if matches!(event, "Stop" | "AfterAgent") {
        text.insert_str(0, "Before you stop: ");
    }
    Ok(Some(escape_controls(&cut(
        &text,
        opts.max_chars * (opts.max_messages + 2),
    ))))
}

/// Reads the hook's input from stdin, bounded in size and time (an agent that never closes
/// stdin must not hold the hook past its deadline).
pub async fn read_input(deadline: Duration) -> String {
    let read = tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        let _ = std::io::stdin().take(MAX_INPUT).read_to_string(&mut s);
        s
    });
    tokio::time::timeout(deadline, read)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_agent_answers_its_documented_events() {
        assert_eq!(AgentKind::Claude.answer("Stop"), Answer::KeepGoing);
        assert_eq!(AgentKind::Codex.answer("UserPromptSubmit"), Answer::Context);
        assert_eq!(AgentKind::Gemini.answer("AfterAgent"), Answer::KeepGoing);
        assert_eq!(AgentKind::Gemini.answer("Stop"), Answer::Nothing);
        assert_eq!(AgentKind::Claude.answer("PreToolUse"), Answer::Nothing);
        for kind in [AgentKind::Claude, AgentKind::Codex, AgentKind::Gemini] {
            for event in kind.events() {
                assert_ne!(kind.answer(event), Answer::Nothing, "{kind:?} {event}");
            }
        }
    }
}
