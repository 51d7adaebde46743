//! The binaries users run: `weaved` (bus + runtime + HTTP in one process; this library is its
//! body) and `weavectl` (next).

pub mod agents;
pub mod cli;
pub mod config;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use codex_weave_transport_http::{Auth, HttpState};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use weave_bus::{Bus, BusServer};

pub use config::{DaemonConfig, Flags};

/// A started daemon: the socket is bound, HTTP is listening.
pub struct Daemon {
    bus: BusServer,
    http: tokio::net::TcpListener,
    shared: Shared,
    pub http_addr: std::net::SocketAddr,
    pub login_url: String,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("http_addr", &self.http_addr)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// Takes the home (one bus per home), opens the store, binds the socket and the HTTP port.
    pub async fn start(cfg: DaemonConfig) -> Result<Daemon, String> {
        let home = cfg.bus.home.clone();
        let bus = BusServer::bind(cfg.bus).await.map_err(|e| e.to_string())?;
        let auth = Arc::new(Auth::load(&home).map_err(|e| format!("{}: {e}", home.display()))?);
        let http = tokio::net::TcpListener::bind(cfg.http_addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", cfg.http_addr))?;
        let http_addr = http.local_addr().map_err(|e| e.to_string())?;
        Auth::publish_addr(&home, http_addr).map_err(|e| format!("{}: {e}", home.display()))?;
        let login_url = format!(
            "http://127.0.0.1:{}/login?code={}",
            http_addr.port(),
            auth.new_login_code()
        );
        let shared = Shared {
            auth,
            links: Arc::default(),
            sse_clients: Arc::default(),
            shutdown: CancellationToken::new(),
            socket: bus.socket_path().display().to_string(),
        };
        Ok(Daemon {
            bus,
            http,
            shared,
            http_addr,
            login_url,
        })
    }

    pub fn socket_path(&self) -> std::path::PathBuf {
        self.bus.socket_path()
    }

    /// Serves until `shutdown`: then SSE streams end, HTTP drains, the bus commits its last batch
    /// and removes the socket.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let stop = self.shared.shutdown.clone();
        tokio::spawn({
            let stop = stop.clone();
            async move {
                shutdown.await;
                stop.cancel();
            }
        });
        let apps = routers(self.bus.engines(), self.shared);
        let http = tokio::spawn(codex_weave_transport_http::serve::serve(
            self.http,
            apps,
            stop.clone(),
        ));
        self.bus.run(async move { stop.cancelled().await }).await;
        let _ = http.await;
    }
}

/// What the HTTP state of every engine shares, whichever engine serves.
#[derive(Debug)]
struct Shared {
    auth: Arc<Auth>,
    links: Arc<codex_weave_transport_http::links::Links>,
    sse_clients: Arc<std::sync::atomic::AtomicU64>,
    shutdown: CancellationToken,
    socket: String,
}

/// The HTTP API over the handle the bus gives: alone, always the same engine; in a cluster, the
/// engine of each term it leads and the leader's through a relay while it follows
/// ([`codex_weave_transport_http::joining_router`] only before the bus runs).
fn routers(mut engines: watch::Receiver<Option<Bus>>, shared: Shared) -> watch::Receiver<Router> {
    let router_of = move |bus: Option<Bus>| match bus {
        None => codex_weave_transport_http::joining_router(),
        Some(bus) => codex_weave_transport_http::router(Arc::new(HttpState {
            bus,
            auth: shared.auth.clone(),
            links: shared.links.clone(),
            sse_clients: shared.sse_clients.clone(),
            feeds: Default::default(),
            shutdown: shared.shutdown.clone(),
            socket: shared.socket.clone(),
        })),
    };
    let (tx, rx) = watch::channel(router_of(engines.borrow_and_update().clone()));
    tokio::spawn(async move {
        while engines.changed().await.is_ok() {
            let bus = engines.borrow_and_update().clone();
            if tx.send(router_of(bus)).is_err() {
                return;
            }
        }
    });
    rx
}
