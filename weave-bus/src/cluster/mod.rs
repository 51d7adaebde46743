//! A daemon of a cluster (`--cluster`; `docs/weave/cluster.md`). Every daemon of one cluster
//! name serves its own socket; exactly one of them — the holder of the cluster's lease — runs
//! the engine, on the store replicated through JetStream. The others carry each of their
//! client connections to it over core NATS (`tunnel`), so one brain decides for every client
//! wherever it connected. When the leader dies or is cut off, it stops writing within
//! [`lease::HOLD`], another daemon takes the lease after [`lease::EXPIRY`], opens the store
//! (catching up from the log) and leads; clients reconnect, as after any dropped connection.
//!
//! A daemon alternates: it follows (reads the lease every [`lease::RENEW`], forwards new
//! connections to the holder) until it takes the lease; it leads (renews it, runs a [`Term`],
//! serves forwarded connections) until it loses it or shuts down.

pub mod lease;
mod relay;
pub mod tunnel;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, HeaderMap};
use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::net::UnixStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::lease::{Lease, EXPIRY, HOLD, RENEW};
use self::tunnel::End;
use crate::config::{BusConfig, Limits, LogConfig};
use crate::connection::{refuse_stream, serve_connection};
use crate::handle::Bus;
use crate::metrics::Metrics;
use crate::refusal::Refusal;
use crate::start_error::StartError;
use crate::term::Term;
use codex_weave_runtime::ErrorCode;

/// How long a connection waits for a daemon of the cluster to serve it before it is refused.
pub const OPEN_PATIENCE: Duration = Duration::from_secs(15);

const CONN_HEADER: &str = "Weave-Conn";
/// The follower's node id (kept in its home) and this start of it.
const NODE_HEADER: &str = "Weave-Node";
const INCARNATION_HEADER: &str = "Weave-Incarnation";
const REFUSED_HEADER: &str = "Weave-Refused";
/// The connection acts for the HTTP token holder of the daemon that opened it.
const OPERATOR_HEADER: &str = "Weave-Operator";

/// What this daemon does now.
#[derive(Clone)]
enum Role {
    /// Forwards connections to `leader` (`None`: none known yet); `stop` ends those tunnels
    /// when the leader changes.
    Following {
        leader: Option<String>,
        stop: CancellationToken,
    },
    /// Runs the engine: connections are served by `bus` until `stop`.
    Leading { bus: Bus, stop: CancellationToken },
}

pub struct Node {
    cfg: BusConfig,
    log: LogConfig,
    /// This process's id in the cluster (the lease's value while it leads).
    id: String,
    /// This daemon's id across its restarts (`<home>/node-id`).
    node: String,
    nats: Client,
    lease: Lease,
    metrics: Arc<Metrics>,
    slots: Arc<Semaphore>,
    role: watch::Sender<Role>,
    /// The handle in-process clients (HTTP) use: the engine's while this daemon leads, the
    /// relay's while it follows (`None` before it runs).
    engine: watch::Sender<Option<Bus>>,
    /// Cancelled at shutdown; every connection's token descends from it.
    root: CancellationToken,
}

impl Node {
    /// Connects to the cluster and opens its lease; leading starts with [`Node::run`].
    pub async fn connect(
        cfg: BusConfig,
        log: LogConfig,
        metrics: Arc<Metrics>,
        slots: Arc<Semaphore>,
    ) -> Result<Node, StartError> {
        let failed = |e: String| StartError::Cluster(format!("{}: {e}", log.urls));
        let nats = async_nats::ConnectOptions::new()
            .connect(log.urls.split(',').map(str::trim).collect::<Vec<_>>())
            .await
            .map_err(|e| failed(e.to_string()))?;
        let js = async_nats::jetstream::new(nats.clone());
        let lease = Lease::open(js, &log.subject, log.replicas)
            .await
            .map_err(failed)?;
        let node =
            node_id(&cfg.home).map_err(|e| StartError::Io(cfg.home.join(NODE_ID_FILE), e))?;
        let root = CancellationToken::new();
        let (role, _) = watch::channel(Role::Following {
            leader: None,
            stop: root.child_token(),
        });
        Ok(Node {
            cfg,
            log,
            id: uuid::Uuid::new_v4().simple().to_string(),
            node,
            nats,
            lease,
            metrics,
            slots,
            role,
            engine: watch::channel(None).0,
            root,
        })
    }

    pub(crate) fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The engine's handle for in-process clients: the running engine's while this daemon
    /// leads, one that carries every connection to the leader while it follows.
    pub fn engines(&self) -> watch::Receiver<Option<Bus>> {
        self.engine.subscribe()
    }

    /// Follows and leads in turn until `shutdown`; then ends the term and hands the lease on.
    /// While it follows, its in-process clients (HTTP) are served through the leader too.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let relay = relay::bus(self.clone(), self.metrics());
        self.engine.send_replace(Some(relay.clone()));
        while let Some(seq) = self.follow(&shutdown).await {
            self.lead(seq, &relay, &shutdown).await;
            if shutdown.is_cancelled() {
                break;
            }
        }
        self.engine.send_replace(None);
        relay.shutdown();
        self.root.cancel();
    }

    /// Serves one accepted client connection: here while leading, else through the leader. A
    /// connection that arrives while no daemon leads waits for one up to [`OPEN_PATIENCE`],
    /// then is refused (`store_unavailable`).
    /// `operator`: it acts for the HTTP token holder (this daemon's own HTTP API, `relay`).
    pub async fn serve(&self, stream: UnixStream, limits: &Limits, operator: bool) {
        let deadline = Instant::now() + OPEN_PATIENCE;
        let mut roles = self.role.subscribe();
        let mut why = "no daemon leads it".to_owned();
        loop {
            let role = roles.borrow_and_update().clone();
            match role {
                Role::Leading { bus, stop } => {
                    return serve_connection(stream, bus, stop, limits, operator).await
                }
                Role::Following {
                    leader: Some(_),
                    stop,
                } => match self.open(operator).await {
                    Ok((conn, inbox)) => {
                        let out = tunnel::up(&self.log.subject, &conn);
                        if let Err(why) =
                            tunnel::carry(&self.nats, &out, inbox, stream, End::Client, &stop).await
                        {
                            tracing::debug!(why, "a forwarded connection ended");
                        }
                        return;
                    }
                    Err(Unopened::Refused(why)) => {
                        let refusal = Refusal::new(ErrorCode::LimitReached, why);
                        return refuse_stream(stream, refusal).await;
                    }
                    Err(Unopened::Unanswered(e)) => why = e,
                },
                Role::Following { leader: None, .. } => {}
            }
            if Instant::now() >= deadline {
                let message = format!(
                    "no daemon of cluster `{}` serves it now ({why}); try again",
                    self.log.subject
                );
                let refusal = Refusal::new(ErrorCode::StoreUnavailable, message);
                return refuse_stream(stream, refusal).await;
            }
            tokio::select! {
                () = self.root.cancelled() => return,
                _ = roles.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }

    /// Asks the leader to open a connection: its id and the subscription its bytes come on.
    async fn open(&self, operator: bool) -> Result<(String, async_nats::Subscriber), Unopened> {
        let conn = uuid::Uuid::new_v4().simple().to_string();
        let inbox = self
            .nats
            .subscribe(tunnel::down(&self.log.subject, &conn))
            .await
            .map_err(|e| Unopened::Unanswered(format!("NATS: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONN_HEADER, conn.as_str());
        headers.insert(NODE_HEADER, self.node.as_str());
        headers.insert(INCARNATION_HEADER, self.id.as_str());
        if operator {
            headers.insert(OPERATOR_HEADER, "1");
        }
        let asked =
            self.nats
                .request_with_headers(self.open_subject(), headers, bytes::Bytes::new());
        match tokio::time::timeout(Duration::from_secs(5), asked).await {
            Ok(Ok(answer)) => match answer.headers.as_ref().and_then(|h| h.get(REFUSED_HEADER)) {
                Some(why) => Err(Unopened::Refused(why.as_str().to_owned())),
                None => Ok((conn, inbox)),
            },
            Ok(Err(e)) => Err(Unopened::Unanswered(e.to_string())),
            Err(_) => Err(Unopened::Unanswered("no answer within 5 s".to_owned())),
        }
    }

    /// Reads the lease until this daemon takes it (`Some`: the lease's sequence) or `shutdown`.
    async fn follow(&self, shutdown: &CancellationToken) -> Option<u64> {
        let mut seen: Option<(u64, Instant)> = None;
        let mut first = true;
        loop {
            if !std::mem::take(&mut first) {
                tokio::select! {
                    () = shutdown.cancelled() => return None,
                    () = tokio::time::sleep(RENEW) => {}
                }
            }
            let held = match self.lease.read().await {
                Ok(held) => held,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the cluster's lease");
                    continue;
                }
            };
            let take_at = match held {
                None => Some(0),
                // Released at a shutdown, or written by this process before a renewal's
                // answer was lost: free to take at once.
                Some(h) if h.holder.is_empty() || h.holder == self.id => Some(h.seq),
                Some(h) => match seen {
                    Some((seq, at)) if seq == h.seq => (at.elapsed() >= EXPIRY).then_some(h.seq),
                    _ => {
                        seen = Some((h.seq, Instant::now()));
                        self.follow_leader(h.holder);
                        None
                    }
                },
            };
            let Some(after) = take_at else { continue };
            match self.lease.write(after, &self.id).await {
                Ok(Some(seq)) => return Some(seq),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot take the cluster's lease"),
            }
        }
    }

    /// Forwards new connections to `leader`; ends the tunnels to the one before it.
    fn follow_leader(&self, leader: String) {
        self.role.send_if_modified(|role| match role {
            Role::Following {
                leader: Some(l), ..
            } if *l == leader => false,
            _ => {
                tracing::info!(leader = %leader, "following");
                let old = std::mem::replace(
                    role,
                    Role::Following {
                        leader: Some(leader),
                        stop: self.root.child_token(),
                    },
                );
                stop_of(&old).cancel();
                true
            }
        });
    }

    /// Leads from lease sequence `seq` until the lease is lost or `shutdown`.
    async fn lead(&self, seq: u64, relay: &Bus, shutdown: &CancellationToken) {
        tracing::info!(node = %self.id, "took the cluster's lease: starting the engine");
        let (lost, done) = (CancellationToken::new(), CancellationToken::new());
        let renewing = tokio::spawn(renew(
            self.lease.clone(),
            self.id.clone(),
            seq,
            lost.clone(),
            done.clone(),
        ));
        let (cfg, metrics, deposed) = (self.cfg.clone(), self.metrics.clone(), lost.clone());
        let started =
            tokio::task::spawn_blocking(move || Term::start(&cfg, metrics, deposed)).await;
        match started {
            Ok(Ok(term)) => {
                let (bus, stop) = (term.bus.clone(), self.root.child_token());
                let old = self.role.send_replace(Role::Leading {
                    bus: bus.clone(),
                    stop: stop.clone(),
                });
                stop_of(&old).cancel();
                self.engine.send_replace(Some(bus.clone()));
                tokio::select! {
                    () = lost.cancelled() => tracing::warn!("lost the cluster's lease: stepping down"),
                    () = shutdown.cancelled() => {}
                    r = self.serve_opens(&bus, &stop) => {
                        tracing::warn!(error = %r.err().unwrap_or_default(), "cannot serve forwarded connections: stepping down");
                    }
                }
                let old = self.role.send_replace(Role::Following {
                    leader: None,
                    stop: self.root.child_token(),
                });
                stop_of(&old).cancel();
                self.engine.send_replace(Some(relay.clone()));
                term.end().await;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot start the engine: handing the lease on")
            }
            Err(e) => tracing::error!(error = %e, "the engine's start failed"),
        }
        done.cancel();
        if let Ok(Some(last)) = renewing.await {
            if let Err(e) = self.lease.write(last, "").await {
                tracing::warn!(error = %e, "cannot hand the cluster's lease on");
            }
        }
        if !shutdown.is_cancelled() {
            // Not straight back: another daemon may be better placed to lead.
            tokio::time::sleep(RENEW).await;
        }
    }

    fn open_subject(&self) -> String {
        format!("weave.{}.open", self.log.subject)
    }

    /// Answers followers' requests to open a connection, until the subscription fails. A
    /// follower that restarted (same node, another incarnation) has its earlier connections
    /// closed — their agents offline — before its first new one is served: a killed follower's
    /// connections would otherwise live on until [`tunnel::SILENCE`], and its agents' clients
    /// would find them busy.
    async fn serve_opens(&self, bus: &Bus, stop: &CancellationToken) -> Result<(), String> {
        let mut opens = self
            .nats
            .subscribe(self.open_subject())
            .await
            .map_err(|e| e.to_string())?;
        let mut followers: HashMap<String, Follower> = HashMap::new();
        while let Some(request) = opens.next().await {
            let Some(reply) = request.reply else { continue };
            let header = |name: &str| {
                request
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default()
            };
            let (conn, node, incarnation) = (
                header(CONN_HEADER),
                header(NODE_HEADER),
                header(INCARNATION_HEADER),
            );
            let operator = header(OPERATOR_HEADER) == "1";
            let follower = followers.entry(node).or_default();
            if follower.incarnation != incarnation {
                follower.incarnation = incarnation;
                follower.end_all().await;
            }
            follower.tunnels.retain(|(_, served)| !served.is_finished());
            let mut headers = HeaderMap::new();
            match self.open_tunnel(&conn, bus, stop, operator).await {
                Ok(tunnel) => follower.tunnels.push(tunnel),
                Err(why) => headers.insert(REFUSED_HEADER, why.as_str()),
            }
            let _ = self
                .nats
                .publish_with_headers(reply, headers, bytes::Bytes::new())
                .await;
        }
        Err("the subscription ended".into())
    }

    /// Serves forwarded connection `conn` as one of this daemon's own: the token that ends it,
    /// and the task serving it.
    async fn open_tunnel(
        &self,
        conn: &str,
        bus: &Bus,
        stop: &CancellationToken,
        operator: bool,
    ) -> Result<(CancellationToken, JoinHandle<()>), String> {
        if conn.is_empty() || conn.len() > 64 || !conn.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("a connection id is 1 to 64 letters or digits".into());
        }
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            self.metrics.inc(&self.metrics.connections_refused);
            return Err(format!(
                "the bus serves at most {} connections",
                self.cfg.limits.max_connections
            ));
        };
        let inbox = self
            .nats
            .subscribe(tunnel::up(&self.log.subject, conn))
            .await
            .map_err(|e| e.to_string())?;
        let (ours, theirs) = UnixStream::pair().map_err(|e| e.to_string())?;
        let ended = stop.child_token();
        let (bus, limits, conn_stop) = (bus.clone(), self.cfg.limits.clone(), ended.clone());
        let served = tokio::spawn(async move {
            serve_connection(theirs, bus, conn_stop, &limits, operator).await;
            drop::<OwnedSemaphorePermit>(permit);
        });
        let (nats, out, stop) = (
            self.nats.clone(),
            tunnel::down(&self.log.subject, conn),
            ended.clone(),
        );
        tokio::spawn(async move {
            if let Err(why) = tunnel::carry(&nats, &out, inbox, ours, End::Leader, &stop).await {
                tracing::debug!(why, "a forwarded connection ended");
            }
        });
        Ok((ended, served))
    }
}

/// The connections one follower carries to this leader, and which start of it opened them.
#[derive(Default)]
struct Follower {
    incarnation: String,
    tunnels: Vec<(CancellationToken, JoinHandle<()>)>,
}

impl Follower {
    /// Ends every connection and waits (up to 2 s) until the engine has been told of each.
    async fn end_all(&mut self) {
        let tunnels = std::mem::take(&mut self.tunnels);
        for (ended, _) in &tunnels {
            ended.cancel();
        }
        let served = futures::future::join_all(tunnels.into_iter().map(|(_, served)| served));
        let _ = tokio::time::timeout(Duration::from_secs(2), served).await;
    }
}

/// Why a forwarded connection was not opened.
enum Unopened {
    /// The leader refused it (its connection limit).
    Refused(String),
    /// Nobody answered in time.
    Unanswered(String),
}

impl relay::Carrier for Node {
    fn carry(self: Arc<Self>, stream: UnixStream, operator: bool) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let limits = self.cfg.limits.clone();
            self.serve(stream, &limits, operator).await;
        })
    }
}

/// Where a daemon keeps its node id.
const NODE_ID_FILE: &str = "node-id";

/// This home's node id: read, or drawn and written at the first start.
fn node_id(home: &std::path::Path) -> std::io::Result<String> {
    let path = home.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        Ok(_) | Err(_) => {
            let id = uuid::Uuid::new_v4().simple().to_string();
            std::fs::write(&path, &id)?;
            Ok(id)
        }
    }
}

fn stop_of(role: &Role) -> &CancellationToken {
    match role {
        Role::Following { stop, .. } | Role::Leading { stop, .. } => stop,
    }
}

/// Renews the lease every [`RENEW`] until `done` (then `Some`: the last sequence, to hand the
/// lease on) or until it is lost (`None`, and `lost` is cancelled): another daemon wrote it,
/// or no renewal succeeded for [`HOLD`].
async fn renew(
    lease: Lease,
    id: String,
    mut last: u64,
    lost: CancellationToken,
    done: CancellationToken,
) -> Option<u64> {
    let mut valid_until = Instant::now() + HOLD;
    loop {
        tokio::select! {
            () = done.cancelled() => return Some(last),
            () = tokio::time::sleep(RENEW) => {}
        }
        let sent = Instant::now();
        match tokio::time::timeout(RENEW, lease.write(last, &id)).await {
            Ok(Ok(Some(seq))) => {
                last = seq;
                valid_until = sent + HOLD;
            }
            Ok(Ok(None)) => {
                lost.cancel();
                return None;
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e,
                    _ => "no answer".to_owned(),
                };
                tracing::warn!(error = %why, "cannot renew the cluster's lease");
                if Instant::now() >= valid_until {
                    lost.cancel();
                    return None;
                }
            }
        }
    }
}
