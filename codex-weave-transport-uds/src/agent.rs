//! An agent's long-lived connection: `agent.add` on connect, deliveries handed to the caller,
//! `message.ack` sent for `ack.mode: "auto"` deliveries as the Codex client does, and — when the
//! socket drops — reconnect with backoff, re-add the agent, and resume (the bus redelivers what
//! was not acked, in order, before anything new).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_weave_runtime::{AckMode, Envelope};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::client::{Client, ClientError, Events};
use crate::frame::Framing;

/// How to join a session as an agent.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub socket: PathBuf,
    pub session: String,
    pub id: String,
    pub name: Option<String>,
    /// Ack `ack.mode: "auto"` deliveries on receipt (what the Codex client does).
    pub auto_ack: bool,
    /// Reconnect and re-add the agent when the connection drops.
    pub reconnect: bool,
    /// NDJSON (the default) or protobuf frames.
    pub framing: Framing,
    /// `agent` (the bus's default when unset), `human` or `sdk`: a `human` is a person, whom
    /// the loop guard never counts.
    pub kind: Option<String>,
    /// The agent's secret (returned by the `agent.add` that registered it): lets this
    /// connection take the agent over while another one holds it. The secret the bus returns
    /// is kept and presented on every re-add ([`Agent::secret`]).
    pub secret: Option<String>,
}

impl AgentOptions {
    pub fn new(socket: impl Into<PathBuf>, session: &str, id: &str) -> Self {
        Self {
            socket: socket.into(),
            session: session.to_owned(),
            id: id.to_owned(),
            name: None,
            auto_ack: true,
            reconnect: true,
            framing: Framing::Ndjson,
            kind: None,
            secret: None,
        }
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }
}

/// One line the bus sent to this agent: a message, an action group, a result or a notice.
#[derive(Debug, Clone)]
pub struct Delivery(pub Envelope);

impl Delivery {
    pub fn kind(&self) -> &str {
        &self.0.kind
    }

    /// The message text: `payload.text`, or the payload itself when it is a string.
    pub fn text(&self) -> Option<&str> {
        match &self.0.payload {
            Some(Value::String(s)) => Some(s),
            Some(p) => p.get("text").and_then(Value::as_str),
            None => None,
        }
    }

    /// The id to acknowledge: the delivery's `corr` (the original message id), else its `id`.
    pub fn ack_id(&self) -> &str {
        self.0.corr.as_deref().unwrap_or(&self.0.id)
    }

    pub fn ack_mode(&self) -> Option<AckMode> {
        self.0.ack.as_ref().map(|a| a.mode.unwrap_or_default())
    }

    pub fn redelivered(&self) -> bool {
        self.0
            .meta
            .as_ref()
            .and_then(|m| m.pointer("/weave/redelivered"))
            .and_then(Value::as_bool)
            == Some(true)
    }
}

/// A connected agent. Dropping it closes the connection without `agent.remove` (the agent stays
/// registered, offline); [`Agent::leave`] removes it cleanly.
pub struct Agent {
    opts: Arc<AgentOptions>,
    secret: Secret,
    client: Arc<Mutex<Client>>,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").field("id", &self.opts.id).finish()
    }
}

impl Agent {
    /// Connects and adds the agent; fails if the bus refuses `agent.add`.
    pub async fn connect(opts: AgentOptions) -> Result<Agent, ClientError> {
        let secret: Secret = Arc::new(Mutex::new(opts.secret.clone()));
        let opts = Arc::new(opts);
        let (client, events) = join(&opts, &secret).await?;
        let client = Arc::new(Mutex::new(client));
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        tokio::spawn(supervise(
            opts.clone(),
            secret.clone(),
            client.clone(),
            events,
            tx,
            stop.clone(),
        ));
        Ok(Agent {
            opts,
            secret,
            client,
            deliveries: rx,
            stop,
        })
    }

    pub fn id(&self) -> &str {
        &self.opts.id
    }

    /// The agent's secret, once the bus told it (keep it to take the agent over later).
    pub fn secret(&self) -> Option<String> {
        self.secret.lock().unwrap().clone()
    }

    /// The next delivery; `None` once the agent is stopped or cannot reconnect.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.deliveries.recv().await
    }

    /// Takes the stream of deliveries, for a task of its own to read while the agent's requests
    /// go on from elsewhere; [`Agent::recv`] returns `None` from then on. Dropping the stream
    /// stops the agent's connection supervisor (nobody listens any more).
    pub fn take_deliveries(&mut self) -> mpsc::UnboundedReceiver<Delivery> {
        let (_, closed) = mpsc::unbounded_channel();
        std::mem::replace(&mut self.deliveries, closed)
    }

    /// The next delivery of one of `kinds`, skipping others, with a timeout.
    pub async fn recv_kind(&mut self, kinds: &[&str], within: Duration) -> Option<Delivery> {
        tokio::time::timeout(within, async {
            while let Some(d) = self.recv().await {
                if kinds.contains(&d.kind()) {
                    return Some(d);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    /// The current connection.
    pub fn client(&self) -> Client {
        self.client.lock().unwrap().clone()
    }

    /// Sends a request as this agent: `src` and `session` are filled in when empty.
    pub async fn request(&self, mut env: Envelope) -> Result<Envelope, ClientError> {
        if env.src.is_empty() {
            env.src = self.opts.id.clone();
        }
        if env.session.is_none() {
            env.session = Some(self.opts.session.clone());
        }
        self.client().request(env).await
    }

    /// `message.send` of `text` to `dst` (an id or a name); returns the response.
    pub async fn send_text(&self, dst: &str, text: &str) -> Result<Envelope, ClientError> {
        let mut env = Envelope::new("message.send", String::new(), String::new(), "");
        env.dst = Some(dst.to_owned());
        env.payload = Some(json!({ "text": text }));
        self.request(env).await
    }

    /// Acknowledges a delivery (`message.ack` with `corr` = its ack id).
    pub fn ack(&self, delivery: &Delivery) -> Result<(), ClientError> {
        self.client().send(ack_for(&self.opts, delivery))
    }

    /// Removes the agent (`agent.remove`) and stops reconnecting.
    pub async fn leave(self) -> Result<Envelope, ClientError> {
        self.stop.cancel();
        let mut env = Envelope::new("agent.remove", String::new(), String::new(), "");
        env.payload = Some(json!({ "id": self.opts.id }));
        self.request(env).await
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn ack_for(opts: &AgentOptions, delivery: &Delivery) -> Envelope {
    let mut ack = Envelope::new("message.ack", String::new(), String::new(), opts.id.clone());
    ack.session = Some(opts.session.clone());
    ack.corr = Some(delivery.ack_id().to_owned());
    ack
}

/// The agent's secret as last known, shared with the reconnecting supervisor.
type Secret = Arc<Mutex<Option<String>>>;

async fn join(opts: &AgentOptions, secret: &Secret) -> Result<(Client, Events), ClientError> {
    let (client, events) = Client::connect_with(&opts.socket, opts.framing)
        .await
        .map_err(ClientError::Io)?;
    let mut add = Envelope::new("agent.add", String::new(), String::new(), opts.id.clone());
    add.session = Some(opts.session.clone());
    let mut payload = json!({ "id": opts.id });
    if let Some(name) = &opts.name {
        payload["name"] = json!(name);
    }
    if let Some(kind) = &opts.kind {
        payload["kind"] = json!(kind);
    }
    if let Some(known) = secret.lock().unwrap().as_ref() {
        payload["secret"] = json!(known);
    }
    add.payload = Some(payload);
    let added = client.call(add).await?;
    let told = added.payload.as_ref().and_then(|p| p["secret"].as_str());
    if let Some(told) = told {
        *secret.lock().unwrap() = Some(told.to_owned());
    }
    Ok((client, events))
}

async fn supervise(
    opts: Arc<AgentOptions>,
    secret: Secret,
    client: Arc<Mutex<Client>>,
    mut events: Events,
    out: mpsc::UnboundedSender<Delivery>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        loop {
            let env = tokio::select! {
                _ = stop.cancelled() => return,
                env = events.recv() => env,
            };
            let Some(env) = env else { break };
            let delivery = Delivery(env);
            if opts.auto_ack && delivery.ack_mode() == Some(AckMode::Auto) {
                let _ = client.lock().unwrap().send(ack_for(&opts, &delivery));
            }
            let displaced = delivery.kind() == "agent.displaced";
            if out.send(delivery).is_err() || displaced {
                return; // nobody listens, or another connection now owns the agent
            }
        }
        if !opts.reconnect {
            return;
        }
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            match join(&opts, &secret).await {
                Ok((c, e)) => {
                    *client.lock().unwrap() = c;
                    events = e;
                    backoff = Duration::from_millis(10);
                    break;
                }
                Err(ClientError::Refused(err)) => {
                    tracing::warn!(code = %err.code, "bus refused to re-add the agent");
                    return;
                }
                Err(_) => backoff = (backoff * 2).min(Duration::from_secs(1)),
            }
        }
    }
}
