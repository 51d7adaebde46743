//! The socket server: takes the home, binds `<home>/coord.sock` and accepts connections until
//! shut down, each served by the daemon's own engine (`term`) or, in a cluster, by the
//! cluster's leader (`cluster/`). A connection from another uid is refused; past
//! `max_connections` a new one gets one `limit_reached` line and is closed.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use codex_weave_runtime::ErrorCode;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::cluster::Node;
use crate::config::BusConfig;
use crate::connection::{refuse_stream, serve_connection};
use crate::handle::Bus;
use crate::home::{self, HomeLock};
use crate::metrics::Metrics;
use crate::refusal::Refusal;
pub use crate::start_error::StartError;
use crate::store_marker;
use crate::term::Term;

/// A bus that owns its home and listens on its socket; [`BusServer::run`] serves it.
pub struct BusServer {
    cfg: BusConfig,
    listener: UnixListener,
    serving: Serving,
    slots: Arc<Semaphore>,
    _lock: HomeLock,
}

/// Who serves the socket's connections.
enum Serving {
    /// This daemon's own engine, for its whole life.
    Alone(Term),
    /// The engine of whichever daemon of the cluster leads (`cluster/`).
    Cluster(Arc<Node>),
}

impl std::fmt::Debug for BusServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusServer")
            .field("home", &self.cfg.home)
            .finish_non_exhaustive()
    }
}

impl BusServer {
    /// Takes the home (mode 0700, lock), opens and loads the store, starts the engine, and binds
    /// the socket (mode 0600). With `--cluster`, connects to the cluster instead: the engine
    /// starts whenever this daemon takes the cluster's lease ([`BusServer::run`]).
    pub async fn bind(cfg: BusConfig) -> Result<BusServer, StartError> {
        home::prepare_home(&cfg.home)?;
        let lock = HomeLock::acquire(&cfg.lock_path())?;
        let socket = cfg.socket_path();
        home::clear_stale_socket(&socket)?;
        store_marker::check(&cfg.home, &cfg.store_path(), cfg.new_store)
            .map_err(StartError::LostStore)?;
        let metrics = Arc::new(Metrics::default());
        let slots = Arc::new(Semaphore::new(cfg.limits.max_connections));
        let serving = match cfg.cluster.clone() {
            None => Serving::Alone(Term::start(&cfg, metrics, CancellationToken::new())?),
            Some(log) => Serving::Cluster(Arc::new(
                Node::connect(cfg.clone(), log, metrics, slots.clone()).await?,
            )),
        };
        let listener = bind_private(&socket)?;
        tracing::info!(socket = %socket.display(), durability = cfg.durability.as_str(), "bus listening");
        Ok(BusServer {
            cfg,
            listener,
            serving,
            slots,
            _lock: lock,
        })
    }

    /// The handle in-process clients (HTTP) use: alone, the engine's; in a cluster, the
    /// engine's while this daemon leads, one that carries every connection to the leader while
    /// it follows (`None` until the daemon runs).
    pub fn engines(&self) -> watch::Receiver<Option<Bus>> {
        match &self.serving {
            Serving::Alone(term) => watch::channel(Some(term.bus.clone())).1,
            Serving::Cluster(node) => node.engines(),
        }
    }

    pub fn socket_path(&self) -> PathBuf {
        self.cfg.socket_path()
    }

    /// Accepts connections until `shutdown` resolves; then stops accepting, ends every
    /// connection, lets the engine commit its last batch, and removes the socket file.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let stop = CancellationToken::new();
        let node_stop = CancellationToken::new();
        let node = match &self.serving {
            Serving::Cluster(node) => Some(tokio::spawn(node.clone().run(node_stop.clone()))),
            Serving::Alone(_) => None,
        };
        let uid = nix::unistd::getuid().as_raw();
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(5);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => {
                    backoff = Duration::from_millis(5);
                    stream
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            let metrics = self.metrics();
            if peer_uid(&stream) != Some(uid) {
                tracing::warn!("refused a connection from another user");
                metrics.inc(&metrics.connections_refused);
                continue;
            }
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                metrics.inc(&metrics.connections_refused);
                tokio::spawn(refuse_full(stream, self.cfg.limits.max_connections));
                continue;
            };
            let limits = self.cfg.limits.clone();
            match &self.serving {
                Serving::Alone(term) => {
                    let (bus, stop) = (term.bus.clone(), stop.clone());
                    tokio::spawn(async move {
                        serve_connection(stream, bus, stop, &limits, false).await;
                        drop(permit);
                    });
                }
                Serving::Cluster(node) => {
                    let node = node.clone();
                    tokio::spawn(async move {
                        node.serve(stream, &limits, false).await;
                        drop(permit);
                    });
                }
            }
        }
        tracing::info!("shutting down: no new connections");
        drop(self.listener);
        stop.cancel();
        match self.serving {
            Serving::Alone(term) => term.end().await,
            Serving::Cluster(_) => {
                node_stop.cancel();
                if let Some(node) = node {
                    let _ = node.await;
                }
            }
        }
        let _ = std::fs::remove_file(self.cfg.socket_path());
        tracing::info!("bus stopped");
    }

    fn metrics(&self) -> Arc<Metrics> {
        match &self.serving {
            Serving::Alone(term) => term.bus.metrics_arc(),
            Serving::Cluster(node) => node.metrics(),
        }
    }
}

/// Binds the socket with mode 0600 from the start (no window where it is wider).
fn bind_private(path: &Path) -> Result<UnixListener, StartError> {
    use nix::sys::stat::{umask, Mode};
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    umask(old);
    let listener = bound.map_err(|e| StartError::Io(path.to_owned(), e))?;
    home::restrict_socket(path)?;
    Ok(listener)
}

fn peer_uid(stream: &UnixStream) -> Option<u32> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(stream, PeerCredentials).ok().map(|c| c.uid())
}

async fn refuse_full(stream: UnixStream, limit: usize) {
    let refusal = Refusal::new(
        ErrorCode::LimitReached,
        format!("the bus serves at most {limit} connections"),
    );
    refuse_stream(stream, refusal).await;
}
