//! The socket side every adapter shares: find a session by id, name or prefix (or create it),
//! join it as a named agent, and make requests whose refusals keep the bus's code.

use std::path::{Path, PathBuf};

use codex_weave_transport_uds::{Agent, AgentOptions, Client, ClientError, Envelope};
use serde_json::{json, Value};

use super::secrets;

/// Why an adapter's request failed: the bus's error code (or one of ours: `no_bus`,
/// `not_joined`, `ambiguous_session`, `unknown_message`, `unknown_relay`), its message, and a hint for whoever reads
/// it — often a language model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkError {
    pub code: String,
    pub message: String,
}

impl LinkError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub fn no_bus(socket: &Path) -> Self {
        Self::new(
            "no_bus",
            format!("no Weave daemon is running at {}", socket.display()),
        )
    }

    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self.code.as_str() {
            "no_bus" => "start the daemon with `weaved` (or check WEAVE_HOME), then try again",
            "not_joined" => "call `join` with a session and your name first",
            "unknown_message" => "name a message by the id `inbox` showed for it",
            "unknown_relay" => "call `relay_status` without a relay id to see the open relays",
            "unknown_session" => {
                "list sessions with `weavectl session list`, or join with create: true"
            }
            "ambiguous_session" => "name the session by its full id",
            "unknown_agent" => "call `agents` to see who is in the session and how they are named",
            "name_taken" => "another live agent has that name: pick another one",
            "not_owner" => {
                "only the conversation's owner may send new work in it: use `reply` to answer"
            }
            "forbidden" => "a reply goes to the owner of the conversation it belongs to",
            "loop_suppressed" => {
                "the loop guard stopped this message: do not answer acknowledgements or thanks; \
                 stop here unless there is new work"
            }
            "inbox_full" => "the receiver is far behind; wait and try again later",
            "session_closed" => "the session is closed: join another one",
            "agent_online" => "pick another name, or pass --force to take the agent over",
            "agent_busy" => {
                "the agent runs on another connection, started by a client whose secret weavectl \
                 does not keep: stop it there, or pick another name"
            }
            "bad_request" => "check the arguments against the tool's schema",
            _ => "see `weavectl doctor` for what the bus knows",
        }
    }
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for LinkError {}

impl From<ClientError> for LinkError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused(err) => LinkError::new(&err.code, err.message),
            ClientError::Closed => LinkError::new("no_bus", "the connection to the bus closed"),
            ClientError::Io(e) => LinkError::new("no_bus", format!("socket error: {e}")),
        }
    }
}

pub type LinkResult<T> = Result<T, LinkError>;

/// A session as found: its id and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRef {
    pub id: String,
    pub name: Option<String>,
}

/// Connects to the bus at `socket`.
pub async fn connect(socket: &Path) -> LinkResult<Client> {
    match Client::connect(socket).await {
        Ok((client, _events)) => Ok(client),
        Err(_) => Err(LinkError::no_bus(socket)),
    }
}

/// A request envelope (`id` and `ts` are filled in when sent).
pub fn envelope(kind: &str, session: Option<&str>, src: &str, payload: Value) -> Envelope {
    let mut env = Envelope::new(kind, String::new(), String::new(), src);
    env.session = session.map(str::to_owned);
    if !payload.is_null() {
        env.payload = Some(payload);
    }
    env
}

/// Sends a request and returns its `ok` payload.
pub async fn call(client: &Client, env: Envelope) -> LinkResult<Value> {
    let resp = client.call(env).await?;
    Ok(resp.payload.unwrap_or(Value::Null))
}

/// The open session `wanted` names: its id, else its name (case-insensitive, when one session
/// has it), else a unique id prefix; with `create`, a new session of that name when none matches.
pub async fn resolve_session(
    client: &Client,
    wanted: &str,
    create: bool,
) -> LinkResult<SessionRef> {
    let wanted = wanted.trim();
    if wanted.is_empty() {
        return Err(LinkError::new(
            "bad_request",
            "name a session (its id or name)",
        ));
    }
    let listed = call(
        client,
        envelope("session.list", None, "weavectl", json!({})),
    )
    .await?;
    let sessions: Vec<SessionRef> = listed["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            Some(SessionRef {
                id: s["id"].as_str()?.to_owned(),
                name: s["name"].as_str().map(str::to_owned),
            })
        })
        .collect();
    if let Some(s) = sessions.iter().find(|s| s.id == wanted) {
        return Ok(s.clone());
    }
    let lower = wanted.to_lowercase();
    let named: Vec<&SessionRef> = sessions
        .iter()
        .filter(|s| s.name.as_deref().is_some_and(|n| n.to_lowercase() == lower))
        .collect();
    let prefixed: Vec<&SessionRef> = sessions
        .iter()
        .filter(|s| s.id.starts_with(wanted))
        .collect();
    match (named.as_slice(), prefixed.as_slice()) {
        ([one], _) | ([], [one]) => return Ok((*one).clone()),
        ([_, _, ..], _) | ([], [_, _, ..]) => {
            return Err(LinkError::new(
                "ambiguous_session",
                format!("more than one open session is called `{wanted}`"),
            ))
        }
        ([], []) => {}
    }
    if !create {
        return Err(LinkError::new(
            "unknown_session",
            format!("no open session with id or name `{wanted}`"),
        ));
    }
    let resp = client
        .call(envelope(
            "session.create",
            None,
            "weavectl",
            json!({ "name": wanted }),
        ))
        .await?;
    Ok(SessionRef {
        id: resp.session.unwrap_or_default(),
        name: Some(wanted.to_owned()),
    })
}

/// The agent id a display name joins under: lower-cased, spaces as dashes (so the same name
/// reclaims the same agent after a restart).
pub fn agent_id_for(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| {
            if c.is_whitespace() {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// How [`Joined::join_with`] joins.
#[derive(Debug, Clone, Copy)]
pub struct JoinOptions {
    /// Create the session if none has that id or name.
    pub create: bool,
    /// Ack deliveries on receipt (else the caller acks each once it is done with it, so a
    /// crash redelivers it).
    pub auto_ack: bool,
    /// `human` for a person; `None`: the bus's default (`agent`).
    pub kind: Option<&'static str>,
    /// Take the agent over even when it is live on another connection (which is then told
    /// `agent.displaced`). Without it, a live agent is `agent_online`.
    pub force: bool,
}

impl Default for JoinOptions {
    fn default() -> Self {
        JoinOptions {
            create: false,
            auto_ack: true,
            kind: None,
            force: true,
        }
    }
}

/// `agent_online` when agent `id` of `session` is live on some connection: acting as it from
/// here would take it away from the process that runs it.
pub async fn refuse_if_live(client: &Client, session: &str, id: &str) -> LinkResult<()> {
    let listed = call(
        client,
        envelope("agent.list", Some(session), "weavectl", json!({})),
    )
    .await?;
    let live = listed["agents"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|a| a["id"] == id && a["status"] == "online");
    if live {
        return Err(LinkError::new(
            "agent_online",
            format!("agent `{id}` is running on another connection; acting as it would take it away from there (pass --force to do it anyway)"),
        ));
    }
    Ok(())
}

/// An agent in a session, over its own connection (re-added after a reconnect).
#[derive(Debug)]
pub struct Joined {
    pub socket: PathBuf,
    pub session: SessionRef,
    pub id: String,
    pub name: String,
    pub agent: Agent,
}

impl Joined {
    /// Joins `session` (id, name or prefix; created with `create`) as `name`. Automatic acks
    /// stay on: they prove delivery only; what the agent reads it says with `inbox.unread`.
    pub async fn join(
        socket: &Path,
        session: &str,
        name: &str,
        create: bool,
    ) -> LinkResult<Joined> {
        let opts = JoinOptions {
            create,
            ..JoinOptions::default()
        };
        Self::join_with(socket, session, name, opts).await
    }

    /// [`Joined::join`] with [`JoinOptions`].
    pub async fn join_with(
        socket: &Path,
        session: &str,
        name: &str,
        join: JoinOptions,
    ) -> LinkResult<Joined> {
        let client = connect(socket).await?;
        let session = resolve_session(&client, session, join.create).await?;
        let id = agent_id_for(name);
        if id.is_empty() {
            return Err(LinkError::new("bad_request", "a name must not be empty"));
        }
        if !join.force {
            refuse_if_live(&client, &session.id, &id).await?;
        }
        let mut opts = AgentOptions::new(socket, &session.id, &id).name(name.trim());
        opts.auto_ack = join.auto_ack;
        opts.kind = join.kind.map(str::to_owned);
        opts.secret = secrets::load(socket, &session.id, &id);
        let kept = opts.secret.clone();
        let agent = Agent::connect(opts).await.map_err(|e| match e {
            ClientError::Io(_) => LinkError::no_bus(socket),
            other => other.into(),
        })?;
        if let Some(told) = agent.secret().filter(|s| kept.as_ref() != Some(s)) {
            secrets::save(socket, &session.id, &id, &told);
        }
        Ok(Joined {
            socket: socket.to_owned(),
            session,
            id,
            name: name.trim().to_owned(),
            agent,
        })
    }

    /// A request as this agent, in its session.
    pub async fn call(&self, kind: &str, payload: Value) -> LinkResult<Value> {
        let env = envelope(kind, Some(&self.session.id), &self.id, payload);
        let resp = self.agent.request(env).await?;
        match (resp.status, resp.error) {
            (_, Some(err)) => Err(LinkError::new(&err.code, err.message)),
            _ => Ok(resp.payload.unwrap_or(Value::Null)),
        }
    }

    /// A request with a destination (`message.send`, `action.result`).
    pub async fn call_to(&self, kind: &str, dst: &str, payload: Value) -> LinkResult<Value> {
        let mut env = envelope(kind, Some(&self.session.id), &self.id, payload);
        env.dst = Some(dst.to_owned());
        let resp = self.agent.request(env).await?;
        match resp.error {
            Some(err) => Err(LinkError::new(&err.code, err.message)),
            None => Ok(resp.payload.unwrap_or(Value::Null)),
        }
    }

    /// Acknowledges a delivery by its ack id (a message id, or an action id of a group), on the
    /// connection that holds the agent.
    pub fn ack(&self, ack_id: &str) {
        let mut env = envelope("message.ack", Some(&self.session.id), &self.id, Value::Null);
        env.corr = Some(ack_id.to_owned());
        let _ = self.agent.client().send(env);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_joins_under_a_stable_id() {
        assert_eq!(agent_id_for(" Code Reviewer "), "code-reviewer");
        assert_eq!(agent_id_for("Bob"), "bob");
    }
}
