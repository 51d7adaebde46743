//! HTTP agents: a person in the browser or an SDK client is a full agent of its session. Each
//! gets a *link* — an in-process connection to the bus that added the agent — so that what it
//! sends obeys the same rule as any agent (only its own connection may act as it), and what is
//! delivered to it waits in the link's inbox, unacked, until an inbox stream takes it and
//! `POST .../inbox/ack` acknowledges it. A link lives from the agent's registration (or, after a
//! restart, its first use) until the daemon stops; the bus's redelivery rules apply unchanged.
//! Links only ever speak for agents of kind `human` or `sdk`, never for a terminal agent.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_weave_runtime::Envelope;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use weave_bus::{Bus, LocalSender};

use crate::problem::Problem;

/// Most deliveries kept in one inbox; past it the oldest notices (which need no ack) go first.
pub const MAX_INBOX: usize = 10_000;
/// How long a request through a link waits for the bus.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One delivery waiting in an inbox.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The record delivered (`meta.weave.seq`): the inbox stream's event id.
    pub seq: u64,
    /// What acknowledges it (`corr` of the delivery).
    pub ack_id: String,
    pub kind: String,
    /// The delivered envelope, as the bus wrote it.
    pub line: String,
    pub needs_ack: bool,
}

#[derive(Debug, Default)]
struct Inbox {
    entries: BTreeMap<u64, Entry>,
    next: u64,
    subscribers: Vec<mpsc::UnboundedSender<Entry>>,
}

#[derive(Debug)]
pub struct Link {
    pub session: String,
    pub agent: String,
    sender: LocalSender,
    waiters: Mutex<HashMap<String, oneshot::Sender<Envelope>>>,
    inbox: Mutex<Inbox>,
}

/// The daemon's links, by (session, agent).
#[derive(Debug, Default)]
pub struct Links {
    map: Mutex<HashMap<(String, String), Arc<Link>>>,
}

impl Links {
    /// The link of an HTTP agent, binding it (`agent.add` on a new connection) when there is
    /// none yet. `register` carries `{name, kind}` for a new agent; without it the agent must
    /// exist already and be of kind `human` or `sdk`.
    pub async fn bind(
        self: &Arc<Self>,
        bus: &Bus,
        session: &str,
        agent: &str,
        register: Option<Value>,
    ) -> Result<Arc<Link>, Problem> {
        let key = (session.to_owned(), agent.to_owned());
        if let Some(link) = self.map.lock().unwrap().get(&key) {
            return Ok(link.clone());
        }
        let add_payload = match register {
            Some(p) => p,
            None => {
                let existing = http_agent(bus, session, agent).await?;
                json!({ "id": agent, "name": existing["name"], "kind": existing["kind"] })
            }
        };
        let mut conn = bus.connect();
        let link = Arc::new(Link {
            session: session.to_owned(),
            agent: agent.to_owned(),
            sender: conn.sender(),
            waiters: Mutex::default(),
            inbox: Mutex::default(),
        });
        let pump = {
            let (link, links, key) = (link.clone(), self.clone(), key.clone());
            async move {
                while let Some(line) = conn.next_line().await {
                    if !link.take(&line) {
                        break; // displaced: another connection speaks for the agent now
                    }
                }
                let mut map = links.map.lock().unwrap();
                if map.get(&key).is_some_and(|l| Arc::ptr_eq(l, &link)) {
                    map.remove(&key);
                }
            }
        };
        tokio::spawn(pump);
        let mut add = Envelope::new("agent.add", String::new(), String::new(), agent);
        add.payload = Some(add_payload);
        let resp = link.request(add).await?;
        if resp.error.is_some() {
            return Err(Problem::from_envelope(&resp));
        }
        self.map.lock().unwrap().insert(key, link.clone());
        Ok(link)
    }

    pub fn get(&self, session: &str, agent: &str) -> Option<Arc<Link>> {
        self.map
            .lock()
            .unwrap()
            .get(&(session.to_owned(), agent.to_owned()))
            .cloned()
    }

    pub fn drop_link(&self, session: &str, agent: &str) {
        self.map
            .lock()
            .unwrap()
            .remove(&(session.to_owned(), agent.to_owned()));
    }
}

/// The agent as the bus lists it, if it exists and is an HTTP agent (`human` or `sdk`).
pub async fn http_agent(bus: &Bus, session: &str, agent: &str) -> Result<Value, Problem> {
    let mut list = Envelope::new(
        "agent.list",
        String::new(),
        String::new(),
        crate::routes::OPERATOR,
    );
    list.session = Some(session.to_owned());
    let resp = bus.call(list).await.ok_or_else(Problem::bus_gone)?;
    if resp.error.is_some() {
        return Err(Problem::from_envelope(&resp));
    }
    let agents = resp.payload.unwrap_or_default()["agents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(found) = agents.into_iter().find(|a| a["id"] == agent) else {
        return Err(Problem::new(
            "unknown_agent",
            format!("no agent `{agent}` in session {session}"),
        ));
    };
    match found["kind"].as_str() {
        Some("human" | "sdk") => Ok(found),
        _ => Err(Problem::new(
            "forbidden",
            format!("`{agent}` is a terminal agent: only its own connection may act as it"),
        )),
    }
}

impl Link {
    /// Sends a request as this agent and waits for the bus's answer.
    pub async fn request(&self, mut env: Envelope) -> Result<Envelope, Problem> {
        env.v = codex_weave_runtime::WIRE_VERSION;
        env.id = uuid::Uuid::new_v4().to_string();
        // Sent now: the envelope carries its time like a socket client's would.
        env.ts = codex_weave_transport_uds::time::now_rfc3339();
        env.src = self.agent.clone();
        env.session = Some(self.session.clone());
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap().insert(env.id.clone(), tx);
        self.sender.send(env);
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(resp)) => Ok(resp),
            _ => Err(Problem::bus_gone()),
        }
    }

    /// Acknowledges deliveries by their ack ids; returns the ids that matched nothing.
    pub fn ack(&self, ids: &[String]) -> Vec<String> {
        let mut unknown = Vec::new();
        let mut inbox = self.inbox.lock().unwrap();
        for id in ids {
            let found = inbox
                .entries
                .iter()
                .find(|(_, e)| &e.ack_id == id)
                .map(|(k, _)| *k);
            match found {
                Some(k) => {
                    inbox.entries.remove(&k);
                    let mut ack = Envelope::new(
                        "message.ack",
                        uuid::Uuid::new_v4().to_string(),
                        String::new(),
                        self.agent.clone(),
                    );
                    ack.v = codex_weave_runtime::WIRE_VERSION;
                    ack.session = Some(self.session.clone());
                    ack.corr = Some(id.clone());
                    self.sender.send(ack);
                }
                None => unknown.push(id.clone()),
            }
        }
        unknown
    }

    /// Everything waiting with `seq > after` (all without a cursor), then live deliveries.
    pub fn subscribe(&self, after: Option<u64>) -> (Vec<Entry>, mpsc::UnboundedReceiver<Entry>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inbox = self.inbox.lock().unwrap();
        let backlog: Vec<Entry> = inbox
            .entries
            .values()
            .filter(|e| after.is_none_or(|a| e.seq > a))
            .cloned()
            .collect();
        // Notices need no ack: once handed to a stream they are done.
        inbox
            .entries
            .retain(|_, e| e.needs_ack || backlog.iter().all(|b| b.ack_id != e.ack_id));
        inbox.subscribers.push(tx);
        (backlog, rx)
    }

    /// Routes one line from the bus: a response to its waiter, anything else into the inbox.
    /// Returns `false` when the agent was displaced.
    fn take(&self, line: &[u8]) -> bool {
        let Ok(env) = serde_json::from_slice::<Envelope>(line) else {
            return true;
        };
        if env.status.is_some() {
            if let Some(tx) = env
                .corr
                .as_ref()
                .and_then(|c| self.waiters.lock().unwrap().remove(c))
            {
                let _ = tx.send(env);
            }
            return true;
        }
        if env.kind == "agent.displaced" {
            return false;
        }
        let needs_ack = match env.kind.as_str() {
            "message.send" => {
                env.ack.as_ref().and_then(|a| a.mode) != Some(codex_weave_runtime::AckMode::None)
            }
            "action.submit" => true,
            _ => false,
        };
        let entry = Entry {
            seq: env
                .meta
                .as_ref()
                .and_then(|m| m.pointer("/weave/seq"))
                .and_then(Value::as_u64)
                .unwrap_or(0),
            ack_id: env.corr.clone().unwrap_or_else(|| env.id.clone()),
            kind: env.kind.clone(),
            line: String::from_utf8_lossy(line).into_owned(),
            needs_ack,
        };
        let mut inbox = self.inbox.lock().unwrap();
        inbox.subscribers.retain(|s| s.send(entry.clone()).is_ok());
        let delivered_live = !inbox.subscribers.is_empty();
        // A redelivery replaces the waiting copy.
        inbox.entries.retain(|_, e| e.ack_id != entry.ack_id);
        if entry.needs_ack || !delivered_live {
            let n = inbox.next;
            inbox.next += 1;
            inbox.entries.insert(n, entry);
        }
        while inbox.entries.len() > MAX_INBOX {
            let oldest_notice = inbox
                .entries
                .iter()
                .find(|(_, e)| !e.needs_ack)
                .map(|(k, _)| *k);
            match oldest_notice {
                Some(k) => {
                    inbox.entries.remove(&k);
                }
                None => break, // acked deliveries are bounded by the bus's in-flight window
            }
        }
        true
    }
}
