//! `weavectl mcp`: an MCP server over stdio (the `rmcp` SDK) that is one agent on the bus for as
//! long as its MCP client runs it. Its tools let a model join a session, see who is there, send,
//! read its inbox (long-polling), reply inside conversations, hand out relays and report their
//! results, and look through the session's history.
//!
//! An MCP server cannot start a turn of an idle stock client, so messages are not pushed as
//! notifications: the agent reads them with `inbox` (or its hooks show them, see `hooks.rs`), and
//! reading is what moves a message's receipt to `read`. Errors are tool errors carrying the bus's
//! code and a hint, so that the model can correct itself.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{schemars, tool, tool_handler, tool_router, ErrorData, ServerHandler, ServiceExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{watch, RwLock};

use super::inbox::{self, summary};
use super::link::{Joined, LinkError, LinkResult};

/// Longest `inbox` long-poll, in seconds.
pub const MAX_WAIT_S: u64 = 300;
/// Notices (results, relay ends, loop-guard stops) kept for the next `inbox` at most.
const MAX_NOTICES: usize = 200;

const INSTRUCTIONS: &str = "You are one agent in a Weave session: other coding agents and people \
work beside you and address you by name. Call `join` first unless `whoami` says you are joined. \
Read new messages with `inbox` (pass wait_s to wait for one); answer a message with `reply` \
(never with `send`), and report on a relay step given to you with `task_result`. Do not send \
acknowledgements, thanks or 'got it' messages: the sender sees receipts (delivered, read, \
answered) without them, and the loop guard stops agents that answer each other in circles.";

/// How the server was started: what to join at once, if anything.
#[derive(Debug, Clone)]
pub struct McpOptions {
    pub socket: PathBuf,
    pub session: Option<String>,
    pub name: Option<String>,
    pub create: bool,
}

/// The joined agent and what its connection has seen.
struct Live {
    joined: Joined,
    /// Bumped for every delivery: `inbox` waits on it.
    wake: watch::Receiver<u64>,
    /// Deliveries that are not messages (results, relay and task ends, loop-guard stops,
    /// dead letters), for the next `inbox`.
    notices: Arc<Mutex<Vec<Value>>>,
}

#[derive(Clone)]
pub struct WeaveMcp {
    opts: McpOptions,
    live: Arc<RwLock<Option<Arc<Live>>>>,
    tool_router: ToolRouter<WeaveMcp>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct JoinArgs {
    /// The session to join: its id, its name, or a unique prefix of its id.
    pub session: String,
    /// Your name in the session (others address you by it). Joining again with the same name
    /// after a restart takes back the same agent and its unread messages.
    pub name: String,
    /// Create the session (named `session`) if no open session has that id or name.
    #[serde(default)]
    pub create: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SendArgs {
    /// Who gets it: agent names or ids (see `agents`); `["*"]` sends to every other agent.
    pub to: Vec<String>,
    /// The message.
    pub text: String,
    /// `user` (default): new work or a question, which starts a conversation you own. To answer
    /// a message you received use the `reply` tool instead.
    #[serde(default)]
    pub kind: Option<SendKind>,
}

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SendKind {
    User,
    Reply,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ReplyArgs {
    /// The id of the message you answer, as `inbox` showed it.
    pub message_id: String,
    /// Your answer.
    pub text: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct InboxArgs {
    /// Wait up to this many seconds for a message when none is waiting (0, the default: do not
    /// wait; at most 300). Returns as soon as one arrives.
    #[serde(default)]
    pub wait_s: Option<u64>,
    /// At most this many messages (default 20, at most 100); `more` says how many are left.
    #[serde(default)]
    pub limit: Option<u64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RelayStep {
    /// `message` (work for an agent), `wait` (hold the following steps until the awaited agents
    /// answered), or `control` (a command such as `new` or `interrupt`).
    #[serde(rename = "type")]
    pub kind: StepKind,
    /// The agent a `message` or `control` step goes to.
    #[serde(default)]
    pub to: Option<String>,
    /// The work, for a `message` step.
    #[serde(default)]
    pub text: Option<String>,
    /// The agents a `wait` step waits for (default: every agent of the relay).
    #[serde(default)]
    pub wait_for: Option<Vec<String>>,
    /// The command of a `control` step.
    #[serde(default)]
    pub command: Option<String>,
    /// Whether a `message` step expects an answer (default true).
    #[serde(default)]
    pub expects_reply: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Message,
    Wait,
    Control,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RelayArgs {
    /// The relay to start or continue (default: a new id). Continue or finish your own relays
    /// only.
    #[serde(default)]
    pub relay_id: Option<String>,
    /// The steps, in order. Steps up to the first `wait` go out at once.
    #[serde(default)]
    pub steps: Vec<RelayStep>,
    /// Finish the relay (with `summary`) instead of adding steps.
    #[serde(default)]
    pub finish: bool,
    /// Cancel the relay: steps still held are dropped.
    #[serde(default)]
    pub cancel: bool,
    /// What the relay achieved, when finishing it.
    #[serde(default)]
    pub summary: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RelayStatusArgs {
    /// One relay (default: every open relay of the session).
    #[serde(default)]
    pub relay_id: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ReceiptsArgs {
    /// The message ids (as `send` returned them), at most 1,000.
    pub message_ids: Vec<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TaskResultArgs {
    /// The id of the relay step, as `inbox` showed it.
    pub message_id: String,
    /// `completed`, `rejected` (you will not do it) or `error` (you tried and failed).
    pub status: ResultStatus,
    /// What you did or why not; the relay's owner reads it.
    pub summary: String,
}

#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    Completed,
    Rejected,
    Error,
}

impl ResultStatus {
    fn as_str(self) -> &'static str {
        match self {
            ResultStatus::Completed => "completed",
            ResultStatus::Rejected => "rejected",
            ResultStatus::Error => "error",
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct HistoryArgs {
    /// How many records (default 20, at most 200), the latest ones.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Only records older than this seq (to page back: the smallest seq you have seen).
    #[serde(default)]
    pub before_seq: Option<u64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SearchArgs {
    /// Words that must all occur (case-insensitive; `word*` matches a prefix). Leave out to
    /// filter by sender and time only.
    #[serde(default)]
    pub text: Option<String>,
    /// Only what this agent sent (name or id).
    #[serde(default)]
    pub from: Option<String>,
    /// Only records at or after this time (RFC 3339, e.g. 2026-12-04T09:00:00Z).
    #[serde(default)]
    pub since: Option<String>,
    /// Only records before this time (RFC 3339).
    #[serde(default)]
    pub until: Option<String>,
    /// Only records older than this seq: the `next_before` of the previous page.
    #[serde(default)]
    pub before_seq: Option<u64>,
    /// At most this many (default 20, at most 200).
    #[serde(default)]
    pub limit: Option<u64>,
}

type ToolResult = Result<CallToolResult, ErrorData>;

fn ok(value: Value) -> ToolResult {
    Ok(CallToolResult::structured(value))
}

fn fail(e: LinkError) -> ToolResult {
    Ok(CallToolResult::structured_error(json!({
        "error": { "code": e.code, "message": e.message, "hint": e.hint() }
    })))
}

/// Runs a tool's body, turning its error into a tool error.
async fn tool_body(body: impl std::future::Future<Output = LinkResult<Value>>) -> ToolResult {
    match body.await {
        Ok(v) => ok(v),
        Err(e) => fail(e),
    }
}

#[tool_router]
impl WeaveMcp {
    pub fn new(opts: McpOptions) -> Self {
        Self {
            opts,
            live: Arc::new(RwLock::new(None)),
            tool_router: Self::tool_router(),
        }
    }

    /// Joins as the server was told to (`--session`/`--name`); on failure the first tool call
    /// tries again.
    pub async fn join_from_options(&self) -> LinkResult<()> {
        let (Some(session), Some(name)) = (self.opts.session.clone(), self.opts.name.clone())
        else {
            return Ok(());
        };
        self.join_as(&session, &name, self.opts.create)
            .await
            .map(|_| ())
    }

    async fn join_as(&self, session: &str, name: &str, create: bool) -> LinkResult<Arc<Live>> {
        let mut joined = Joined::join(&self.opts.socket, session, name, create).await?;
        let (tx, wake) = watch::channel(0u64);
        let notices = Arc::new(Mutex::new(Vec::new()));
        let mut deliveries = joined.agent.take_deliveries();
        let kept = notices.clone();
        tokio::spawn(async move {
            while let Some(d) = deliveries.recv().await {
                if !matches!(d.kind(), "message.send" | "action.submit") {
                    let mut n = kept.lock().unwrap();
                    if n.len() < MAX_NOTICES {
                        n.push(
                            json!({ "type": d.0.kind, "from": d.0.src, "payload": d.0.payload }),
                        );
                    }
                }
                tx.send_modify(|n| *n += 1);
            }
        });
        let live = Arc::new(Live {
            joined,
            wake,
            notices,
        });
        // An earlier join is let go: its connection closes once no tool call uses it, and that
        // agent goes offline with its name and its mail kept (never removed).
        self.live.write().await.replace(live.clone());
        Ok(live)
    }

    /// The joined agent, joining from the options first if that has not happened yet.
    async fn live(&self) -> LinkResult<Arc<Live>> {
        if let Some(live) = self.live.read().await.clone() {
            return Ok(live);
        }
        self.join_from_options().await?;
        self.live
            .read()
            .await
            .clone()
            .ok_or_else(|| LinkError::new("not_joined", "you have not joined a session yet"))
    }

    #[tool(
        description = "Join a Weave session under a name (creating the session with create: true). \
        Others address you by this name. Joining again with the same name after a restart takes \
        back the same agent and its unread messages.",
        annotations(
            title = "Join a session",
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn join(&self, Parameters(a): Parameters<JoinArgs>) -> ToolResult {
        tool_body(async {
            let live = self.join_as(&a.session, &a.name, a.create).await?;
            let (_, more) = inbox::unread(&live.joined, 1, false).await?;
            let j = &live.joined;
            Ok(json!({
                "session": j.session.id, "session_name": j.session.name,
                "agent_id": j.id, "name": j.name,
                "unread": unread_count(j).await.unwrap_or(more),
            }))
        })
        .await
    }

    #[tool(
        description = "Who you are in Weave: whether you joined, your session, name and agent id, \
        and how many messages you have not read.",
        annotations(title = "Who am I", read_only_hint = true)
    )]
    async fn whoami(&self) -> ToolResult {
        tool_body(async {
            match self.live().await {
                Ok(live) => {
                    let j = &live.joined;
                    Ok(json!({
                        "joined": true, "session": j.session.id, "session_name": j.session.name,
                        "agent_id": j.id, "name": j.name, "unread": unread_count(j).await?,
                    }))
                }
                Err(e) if e.code == "not_joined" => {
                    Ok(json!({ "joined": false, "hint": e.hint() }))
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    #[tool(
        description = "The agents of your session: names, online or offline, busy (running \
        something, with what it is doing) or idle, the relays whose steps it is working on, and \
        how much is queued for it.",
        annotations(title = "Agents in the session", read_only_hint = true)
    )]
    async fn agents(&self) -> ToolResult {
        tool_body(async {
            let live = self.live().await?;
            let j = &live.joined;
            let list = j.call("agent.list", Value::Null).await?;
            let relays = j.call("relays.list", json!({ "open_only": true })).await?;
            let mut agents = Vec::new();
            for a in list["agents"].as_array().into_iter().flatten() {
                let id = a["id"].as_str().unwrap_or("");
                let tasks: Vec<Value> = relays["relays"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|r| {
                        r["tasks"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(move |t| (r, t))
                    })
                    .filter(|(_, t)| {
                        t["agent_id"] == id
                            && matches!(t["status"].as_str(), Some("running" | "blocked"))
                    })
                    .map(|(r, t)| json!({ "relay_id": r["relay_id"], "status": t["status"] }))
                    .collect();
                agents.push(json!({
                    "name": a["name"], "id": id, "kind": a["kind"],
                    "presence": a["status"], "activity": a["activity"],
                    "doing": a["doing"], "relay_tasks": tasks, "queued": a["queued"],
                    "you": id == j.id,
                }));
            }
            Ok(json!({ "session": j.session.id, "agents": agents }))
        })
        .await
    }

    #[tool(
        description = "Send a message to one or more agents by name (or [\"*\"] for everyone else). \
        Use it for new work or questions; to answer a message use `reply`. Returns each \
        message's id and receipt state (queued until the agent's connection has it).",
        annotations(
            title = "Send a message",
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn send(&self, Parameters(a): Parameters<SendArgs>) -> ToolResult {
        tool_body(async {
            let live = self.live().await?;
            let j = &live.joined;
            let targets = if a.to.iter().any(|t| t == "*") {
                let list = j.call("agent.list", Value::Null).await?;
                list["agents"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x["id"].as_str())
                    .filter(|id| *id != j.id)
                    .map(str::to_owned)
                    .collect()
            } else {
                a.to.clone()
            };
            if targets.is_empty() {
                return Err(LinkError::new("bad_request", "`to` names nobody"));
            }
            let kind = match a.kind.unwrap_or(SendKind::User) {
                SendKind::User => "user",
                SendKind::Reply => "reply",
            };
            let mut sent = Vec::new();
            for t in targets {
                let r = j
                    .call_to("message.send", &t, json!({ "text": a.text, "kind": kind }))
                    .await?;
                sent.push(json!({ "to": r["dst"], "message_id": r["id"], "seq": r["seq"], "receipt": "queued" }));
            }
            Ok(json!({ "sent": sent }))
        })
        .await
    }

    #[tool(
        description = "Answer a message you received (by the id `inbox` showed): the answer goes \
        to whoever owns its conversation, stays in that conversation, and marks the message \
        answered. For a relay step this is your answer to the step.",
        annotations(
            title = "Reply to a message",
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn reply(&self, Parameters(a): Parameters<ReplyArgs>) -> ToolResult {
        tool_body(async {
            let live = self.live().await?;
            let j = &live.joined;
            let item = inbox::lookup(j, &a.message_id).await?;
            let r = inbox::reply(j, &item, &a.text).await?;
            Ok(json!({ "replied_to": item.id, "to": r["dst"], "message_id": r["id"], "seq": r["seq"] }))
        })
        .await
    }

    #[tool(
        description = "Your new messages, oldest first, that you have not read yet; reading them \
        marks them read (each is shown once). With wait_s, waits up to that many seconds for \
        one to arrive. Also lists notices: results of relays you own, relay ends, loop-guard \
        stops. Answer with `reply` (or `task_result` for relay steps).",
        annotations(
            title = "Read your inbox",
            read_only_hint = false,
            idempotent_hint = false
        )
    )]
    async fn inbox(&self, Parameters(a): Parameters<InboxArgs>) -> ToolResult {
        tool_body(async {
            let live = self.live().await?;
            let limit = a.limit.unwrap_or(20).clamp(1, 100) as usize;
            let wait = Duration::from_secs(a.wait_s.unwrap_or(0).min(MAX_WAIT_S));
            let deadline = tokio::time::Instant::now() + wait;
            let mut wake = live.wake.clone();
            loop {
                wake.borrow_and_update();
                let (items, more) = inbox::unread(&live.joined, limit, true).await?;
                let notices: Vec<Value> = std::mem::take(&mut *live.notices.lock().unwrap());
                if !items.is_empty()
                    || !notices.is_empty()
                    || tokio::time::Instant::now() >= deadline
                {
                    return Ok(json!({ "messages": items, "more": more, "notices": notices }));
                }
                // Something arrives, or the wait ends; either way look again.
                let _ = tokio::time::timeout_at(deadline, wake.changed()).await;
            }
        })
        .await
    }

    #[tool(
        description = "Hand out work as a relay: ordered steps to agents, with `wait` steps that \
        hold what follows until the awaited agents answered. Returns the plan: each agent's \
        steps with their ids. Also continues, finishes (finish: true, summary) or cancels a \
        relay you own.",
        annotations(
            title = "Submit a relay",
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn relay(&self, Parameters(a): Parameters<RelayArgs>) -> ToolResult {
        tool_body(async {
            let live = self.live().await?;
            let j = &live.joined;
            let relay_id = a.relay_id.clone().unwrap_or_else(|| {
                format!("relay-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
            });
            let payload = if a.finish {
                json!({ "relay_id": relay_id, "done": { "summary": a.summary } })
            } else if a.cancel {
                json!({ "relay_id": relay_id, "cancel": true })
            } else {
                relay_payload(&relay_id, &a.steps)?
            };
            let accepted = j.call("relay.submit", payload).await?;
            Ok(accepted)
        })
        .await
    }

    #[tool(
        description = "Where relays stand: each target's task state, each step's receipt \
        (queued, delivered, read, answered) and the answers and results that came back.",
        annotations(title = "Relay status", read_only_hint = true)
    )]
    async fn relay_status(&self, Parameters(a): Parameters<RelayStatusArgs>) -> ToolResult {
        tool_body(async {
            let live = self.live().await?;
            let j = &live.joined;
            let open_only = a.relay_id.is_none();
            let listed = j
                .call("relays.list", json!({ "open_only": open_only }))
                .await?;
            let relays: Vec<Value> = listed["relays"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| a.relay_id.as_deref().is_none_or(|id| r["relay_id"] == id))
                .cloned()
                .collect();
            if relays.is_empty() && a.relay_id.is_some() {
                return Err(LinkError::new(
                    "unknown_relay",
                    "no such relay in this session",
                ));
            }
            let mut out = Vec::new();
            for mut r in relays {
                let ids: Vec<String> = r["actions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x["action_id"].as_str().map(str::to_owned))
                    .collect();
                if !ids.is_empty() {
                    let receipts = j.call("message.receipts", json!({ "ids": ids })).await?;
                    r["receipts"] = receipts["receipts"].clone();
                    r["answers"] = Value::Array(answers_to(j, &ids).await?);
                }
                out.push(r);
            }
            Ok(json!({ "relays": out }))
        })
        .await
    }

    #[tool(
        description = "How far messages you sent got with each recipient: queued, delivered \
        (its connection has it), read (the agent took it), answered (a reply or result refers to \
        it). Name them by the ids `send` returned.",
        annotations(title = "Receipts of messages", read_only_hint = true)
    )]
    async fn receipts(&self, Parameters(a): Parameters<ReceiptsArgs>) -> ToolResult {
        tool_body(async {
            let live = self.live().await?;
            live.joined
                .call("message.receipts", json!({ "ids": a.message_ids }))
                .await
        })
        .await
    }

    #[tool(
        description = "Report the result of a relay step given to you (by the id `inbox` \
        showed): completed, rejected or error, with a summary for the relay's owner.",
        annotations(
            title = "Report a step's result",
            destructive_hint = false,
            open_world_hint = false
        )
    )]
    async fn task_result(&self, Parameters(a): Parameters<TaskResultArgs>) -> ToolResult {
        tool_body(async {
            let live = self.live().await?;
            let j = &live.joined;
            let item = inbox::lookup(j, &a.message_id).await?;
            let r = inbox::task_result(j, &item, a.status.as_str(), &a.summary).await?;
            Ok(json!({ "reported": item.id, "status": a.status.as_str(), "seq": r["seq"] }))
        })
        .await
    }

    #[tool(
        description = "The session's latest records (messages, relays, results, who joined), \
        newest last; page back with before_seq. Receipts are left out.",
        annotations(title = "Session history", read_only_hint = true)
    )]
    async fn history(&self, Parameters(a): Parameters<HistoryArgs>) -> ToolResult {
        tool_body(async {
            let live = self.live().await?;
            let j = &live.joined;
            let limit = a.limit.unwrap_or(20).clamp(1, 200);
            let payload = match a.before_seq {
                Some(before) => {
                    let limit = limit.min(before.saturating_sub(1));
                    json!({ "since": before.saturating_sub(1 + limit), "limit": limit.max(1) })
                }
                None => json!({ "limit": limit }),
            };
            let page = j.call("events.history", payload).await?;
            let records: Vec<Value> = page["records"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| {
                    a.before_seq
                        .is_none_or(|b| r["seq"].as_u64().unwrap_or(0) < b)
                })
                .filter(|r| {
                    !matches!(
                        r["envelope"]["type"].as_str(),
                        Some("receipt.updated" | "agent.activity")
                    )
                })
                .map(summary)
                .collect();
            Ok(json!({ "records": records, "head": page["head"] }))
        })
        .await
    }

    #[tool(
        description = "Search the session's past records by words, sender and time range, newest \
        first; page with before_seq = the previous answer's next_before.",
        annotations(title = "Search the session", read_only_hint = true)
    )]
    async fn search(&self, Parameters(a): Parameters<SearchArgs>) -> ToolResult {
        tool_body(async {
            let live = self.live().await?;
            let found = live
                .joined
                .call(
                    "events.search",
                    json!({
                        "text": a.text, "from": a.from, "since": a.since, "until": a.until,
                        "before": a.before_seq, "limit": a.limit,
                    }),
                )
                .await?;
            let records: Vec<Value> = found["records"]
                .as_array()
                .into_iter()
                .flatten()
                .map(summary)
                .collect();
            Ok(json!({ "records": records, "next_before": found["next_before"] }))
        })
        .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for WeaveMcp {
    fn get_info(&self) -> ServerConfig {
        let mut implementation = Implementation::from_build_env();
        implementation.name = "weave".into();
        implementation.version = env!("CARGO_PKG_VERSION").into();
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions(INSTRUCTIONS);
        info.server_info = implementation;
        info
    }
}

/// How many messages `j` has not read.
async fn unread_count(j: &Joined) -> LinkResult<u64> {
    let p = j
        .call("inbox.unread", json!({ "agent": j.id, "limit": 1 }))
        .await?;
    Ok(p["total"].as_u64().unwrap_or(0))
}

/// The relay.submit payload of a list of steps (`plan_step_id` = `s1`, `s2`, …).
fn relay_payload(relay_id: &str, steps: &[RelayStep]) -> LinkResult<Value> {
    if steps.is_empty() {
        return Err(LinkError::new(
            "bad_request",
            "give the relay at least one step (or finish: true / cancel: true)",
        ));
    }
    let mut targets: Vec<String> = Vec::new();
    let mut actions = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let step_id = format!("s{}", i + 1);
        let need_to = || {
            s.to.clone()
                .ok_or_else(|| LinkError::new("bad_request", format!("step {} needs `to`", i + 1)))
        };
        actions.push(match s.kind {
            StepKind::Message => {
                let to = need_to()?;
                let text = s.text.clone().ok_or_else(|| {
                    LinkError::new("bad_request", format!("step {} needs `text`", i + 1))
                })?;
                if !targets.contains(&to) {
                    targets.push(to.clone());
                }
                json!({ "type": "message", "dst": to, "text": text, "plan_step_id": step_id,
                        "expects_reply": s.expects_reply.unwrap_or(true) })
            }
            StepKind::Control => {
                let to = need_to()?;
                if !targets.contains(&to) {
                    targets.push(to.clone());
                }
                json!({ "type": "control", "dst": to, "plan_step_id": step_id,
                        "command": s.command.clone().unwrap_or_else(|| "new".into()) })
            }
            StepKind::Wait => match &s.wait_for {
                Some(w) => json!({ "type": "wait", "targets": w, "plan_step_id": step_id }),
                None => json!({ "type": "wait", "plan_step_id": step_id }),
            },
        });
    }
    Ok(json!({ "relay_id": relay_id, "targets": targets, "actions": actions }))
}

/// Replies and results naming one of `ids`, among the session's latest 1,000 records.
async fn answers_to(j: &Joined, ids: &[String]) -> LinkResult<Vec<Value>> {
    let page = j.call("events.history", json!({ "limit": 1000 })).await?;
    Ok(page["records"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            let p = &r["envelope"]["payload"];
            let named = p["reply_to_action_id"]
                .as_str()
                .or(match r["envelope"]["type"].as_str() {
                    Some("action.result") => p["action_id"].as_str(),
                    _ => None,
                });
            named.is_some_and(|n| ids.iter().any(|i| i == n))
        })
        .map(|r| {
            let mut s = summary(r);
            let p = &r["envelope"]["payload"];
            s["step"] = p["reply_to_action_id"]
                .as_str()
                .or(p["action_id"].as_str())
                .map_or(Value::Null, |x| json!(x));
            s
        })
        .collect())
}

/// Serves MCP on stdin/stdout until the client closes it.
pub async fn serve(opts: McpOptions) -> Result<(), String> {
    let server = WeaveMcp::new(opts);
    if let Err(e) = server.join_from_options().await {
        // Not fatal: the model sees the error, with its hint, at its first tool call.
        tracing::warn!(error = %e, "could not join yet");
    }
    let running = server
        .clone()
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("MCP start failed: {e}"))?;
    let _ = running.waiting().await;
    if let Some(live) = server.live.write().await.take() {
        // The MCP client went away: the agent goes offline (it keeps its name and its mail).
        drop(live);
    }
    Ok(())
}
