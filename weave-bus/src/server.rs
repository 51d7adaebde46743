//! The socket server: takes the home, opens the store, starts the engine thread, then accepts
//! connections on `<home>/coord.sock` until shut down.
//!
//! Each connection gets a reader task (decode a frame, parse it, hand it to the engine) and a
//! writer task (drain the frames the engine queued). A connection's first byte picks its
//! framing: NUL starts the binary preamble, anything else is NDJSON. A connection from another
//! uid is refused; past `max_connections` a new one gets one `limit_reached` line and is closed.

use std::future::Future;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use codex_weave_runtime::ErrorCode;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::config::{BusConfig, Limits};
use crate::conn::{ConnId, ConnOut, ConnShared};
use crate::engine::{response, Engine};
use crate::handle::Bus;
use crate::home::{self, HomeError, HomeLock};
use crate::metrics::Metrics;
use crate::refusal::Refusal;
use crate::store::replicated::Replicated;
use crate::store::{self, Backend, Store, StoreError};
use crate::store_marker::{self, LostStore};
use codex_weave_transport_uds::{CodecError, Framing, PREAMBLE};

/// Why the bus could not start.
#[derive(Debug)]
pub enum StartError {
    Home(HomeError),
    Store(StoreError),
    LostStore(LostStore),
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Home(e) => write!(f, "{e}"),
            StartError::Store(e) => write!(f, "cannot open the store: {e}"),
            StartError::LostStore(e) => write!(f, "{e}"),
            StartError::Io(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for StartError {}

impl From<HomeError> for StartError {
    fn from(e: HomeError) -> Self {
        StartError::Home(e)
    }
}

/// A bus that owns its home and listens on its socket; [`BusServer::run`] serves it.
pub struct BusServer {
    cfg: BusConfig,
    listener: UnixListener,
    bus: Bus,
    engine: std::thread::JoinHandle<()>,
    checkpoint_stop: Arc<AtomicBool>,
    _lock: HomeLock,
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
    /// the socket (mode 0600). Must run inside a tokio runtime.
    pub fn bind(cfg: BusConfig) -> Result<BusServer, StartError> {
        home::prepare_home(&cfg.home)?;
        let lock = HomeLock::acquire(&cfg.lock_path())?;
        let socket = cfg.socket_path();
        home::clear_stale_socket(&socket)?;
        store_marker::check(&cfg.home, &cfg.store_path(), cfg.new_store)
            .map_err(StartError::LostStore)?;
        let metrics = Arc::new(Metrics::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let (loaded_tx, loaded) = std::sync::mpsc::sync_channel(1);
        let (engine_cfg, engine_metrics) = (cfg.clone(), metrics.clone());
        // The engine is built (store opened and loaded, log replayed) on its own thread and
        // never leaves it: the runtime's shared ids are counted without atomics. (A replicated
        // store runs its own client runtime: it is opened off the async one.)
        let engine = std::thread::Builder::new()
            .name("weave-engine".into())
            .spawn(move || {
                match open_store(&engine_cfg)
                    .and_then(|store| Engine::new(engine_cfg, store, engine_metrics))
                {
                    Ok(engine) => {
                        let _ = loaded_tx.send(Ok(()));
                        engine.run(rx);
                    }
                    Err(e) => {
                        let _ = loaded_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| StartError::Io(cfg.home.clone(), e))?;
        match loaded.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(StartError::Store(e)),
            Err(_) => {
                return Err(StartError::Io(
                    cfg.home.clone(),
                    std::io::Error::other("the engine thread stopped while loading"),
                ))
            }
        }
        store_marker::mark(&cfg.home, &cfg.store_path())
            .map_err(|e| StartError::Io(cfg.home.join(store_marker::STORE_MARKER), e))?;
        let checkpoint_stop = Arc::new(AtomicBool::new(false));
        store::spawn_checkpointer(
            &cfg.store_path(),
            Duration::from_millis(500),
            checkpoint_stop.clone(),
        )
        .map_err(|e| StartError::Io(cfg.store_path(), e))?;
        let listener = bind_private(&socket)?;
        tracing::info!(socket = %socket.display(), durability = cfg.durability.as_str(), "bus listening");
        Ok(BusServer {
            cfg,
            listener,
            bus: Bus::new(tx, metrics),
            engine,
            checkpoint_stop,
            _lock: lock,
        })
    }

    pub fn bus(&self) -> Bus {
        self.bus.clone()
    }

    pub fn socket_path(&self) -> PathBuf {
        self.cfg.socket_path()
    }

    /// Accepts connections until `shutdown` resolves; then stops accepting, ends every
    /// connection, lets the engine commit its last batch, and removes the socket file.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let stop = CancellationToken::new();
        let slots = Arc::new(Semaphore::new(self.cfg.limits.max_connections));
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
            if peer_uid(&stream) != Some(uid) {
                tracing::warn!("refused a connection from another user");
                self.bus
                    .metrics()
                    .inc(&self.bus.metrics().connections_refused);
                continue;
            }
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                self.bus
                    .metrics()
                    .inc(&self.bus.metrics().connections_refused);
                tokio::spawn(refuse_full(stream, self.cfg.limits.max_connections));
                continue;
            };
            let (bus, stop, limits) = (self.bus.clone(), stop.clone(), self.cfg.limits.clone());
            tokio::spawn(async move {
                serve_connection(stream, bus, stop, &limits).await;
                drop(permit);
            });
        }
        tracing::info!("shutting down: no new connections");
        drop(self.listener);
        stop.cancel();
        self.bus.shutdown();
        let engine = self.engine;
        let _ = tokio::task::spawn_blocking(move || engine.join()).await;
        self.checkpoint_stop.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_file(self.cfg.socket_path());
        tracing::info!("bus stopped");
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

/// How long a connection the bus is closing keeps being drained, so the last line it was sent
/// (an error) is not destroyed by a reset over unread input.
const LINGER: Duration = Duration::from_secs(1);

/// Reads and discards until the peer closes or `LINGER` passes.
async fn linger(mut read: impl tokio::io::AsyncRead + Unpin) {
    let mut sink = vec![0u8; 64 * 1024];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = read.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// Answers a connection the bus will not serve with one NDJSON error line, then closes it.
async fn refuse(
    mut read: impl tokio::io::AsyncRead + Unpin,
    mut write: impl tokio::io::AsyncWrite + Unpin,
    refusal: Refusal,
) {
    let line = Framing::Ndjson.encode(&response("", None, Err(refusal)));
    let _ = tokio::time::timeout(Duration::from_secs(1), write.write_all(&line)).await;
    let _ = write.shutdown().await;
    linger(&mut read).await;
}

async fn refuse_full(stream: UnixStream, limit: usize) {
    let refusal = Refusal::new(
        ErrorCode::LimitReached,
        format!("the bus serves at most {limit} connections"),
    );
    let (read, write) = stream.into_split();
    refuse(read, write, refusal).await;
}

/// Reads a connection's first bytes (at most the preamble's length, so an idle connection
/// keeps no read-ahead buffer) and picks its framing: NUL starts the binary preamble, anything
/// else is NDJSON. Returns the framing and the bytes read that belong to the first frame;
/// `Ok(None)` when the peer closed without sending anything; `Err` for a NUL not followed by
/// the preamble.
async fn negotiate(
    read: &mut (impl tokio::io::AsyncRead + Unpin),
) -> io::Result<Option<(Framing, Vec<u8>)>> {
    let mut first = [0u8; PREAMBLE.len()];
    let mut n = 0;
    loop {
        if n > 0 {
            if first[0] != PREAMBLE[0] {
                return Ok(Some((Framing::Ndjson, first[..n].to_vec())));
            }
            if first[..n] != PREAMBLE[..n] {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "bad preamble"));
            }
            if n == PREAMBLE.len() {
                return Ok(Some((Framing::Protobuf, Vec::new())));
            }
        }
        match read.read(&mut first[n..]).await? {
            0 if n == 0 => return Ok(None),
            0 => return Err(io::Error::new(io::ErrorKind::InvalidData, "cut preamble")),
            read => n += read,
        }
    }
}

async fn serve_connection(stream: UnixStream, bus: Bus, stop: CancellationToken, limits: &Limits) {
    let metrics = bus.metrics();
    metrics.inc(&metrics.connections_total);
    metrics.connections_open.fetch_add(1, Ordering::Relaxed);
    serve_framed(stream, &bus, stop, limits).await;
    metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
}

async fn serve_framed(stream: UnixStream, bus: &Bus, stop: CancellationToken, limits: &Limits) {
    let (max_line, max_buffer) = (limits.max_line, limits.max_conn_buffer);
    // The writer reports `Writable` below half the smaller limit: paused deliveries resume,
    // and followed streams catch up from the log.
    let resume_below = max_buffer.min(limits.max_stream_buffer) / 2;
    // A duplicate of the descriptor lets the engine write to the socket directly while the
    // writer task is idle.
    let direct = stream
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::os::unix::net::UnixStream::from);
    let (mut read, mut write) = stream.into_split();
    let negotiated = tokio::select! {
        _ = stop.cancelled() => return,
        negotiated = negotiate(&mut read) => negotiated,
    };
    let (framing, first) = match negotiated {
        Ok(Some(picked)) => picked,
        Ok(None) => return,
        Err(e) => {
            let refusal = Refusal::new(
                ErrorCode::BadRequest,
                format!(
                    "{e}: a binary-framing client opens with the 8 bytes {PREAMBLE:02x?}; \
                     an NDJSON client sends JSON lines"
                ),
            );
            bus.metrics().inc(&bus.metrics().bad_requests);
            return refuse(read, write, refusal).await;
        }
    };
    if framing == Framing::Protobuf && write.write_all(&PREAMBLE).await.is_err() {
        return;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(ConnShared::default());
    let mut out = ConnOut::new(tx, shared.clone()).with_framing(framing);
    if let Some(socket) = direct {
        out = out.with_socket(socket);
    }
    let conn = bus.open(out, false);
    let writer = tokio::spawn(write_lines(
        write,
        rx,
        shared.clone(),
        bus.clone(),
        conn,
        resume_below,
    ));
    // What negotiation read comes first; the read buffer grows with the frames it meets.
    let read = AsyncReadExt::chain(std::io::Cursor::new(first), read);
    let mut lines = FramedRead::with_capacity(read, framing.codec(max_line), 1024);
    let mut drain = false;
    loop {
        // A client that does not read its responses does not get to send more requests.
        while shared.queued() > max_buffer {
            let drained = shared.drained.notified();
            if shared.queued() <= max_buffer {
                break;
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = drained => {}
            }
        }
        // Nor does any client while the engine has more read requests than it can take.
        tokio::select! {
            _ = stop.cancelled() => break,
            () = bus.metrics().intake.room() => {}
        }
        let next = tokio::select! {
            _ = stop.cancelled() => break,
            next = lines.next() => next,
        };
        match next {
            None => break,
            Some(Ok(frame)) => match framing.decode_request(&frame) {
                Ok(env) => bus.request_raw(conn, env, frame.len()),
                Err(bad) => bus.invalid(conn, bad.corr, ErrorCode::BadRequest, bad.message),
            },
            Some(Err(CodecError::FrameTooLarge { limit })) => {
                let what = match framing {
                    Framing::Ndjson => "line",
                    Framing::Protobuf => "frame",
                };
                bus.invalid(
                    conn,
                    None,
                    ErrorCode::FrameTooLarge,
                    format!("{what} longer than {limit} bytes; closing"),
                );
                drain = true;
                break;
            }
            Some(Err(CodecError::Io(e))) => {
                tracing::debug!(conn, error = %e, "read failed");
                break;
            }
        }
    }
    bus.closed(conn);
    if drain {
        linger(lines.into_inner()).await;
    }
    let _ = writer.await;
}

async fn write_lines(
    write: tokio::net::unix::OwnedWriteHalf,
    mut lines: mpsc::UnboundedReceiver<Bytes>,
    shared: Arc<ConnShared>,
    bus: Bus,
    conn: ConnId,
    resume_below: usize,
) {
    // No buffer of its own: the engine already hands over one chunk per commit, and an idle
    // connection should cost as little memory as possible (a 64 KB BufWriter per connection
    // was most of it).
    let mut w = write;
    while let Some(chunk) = lines.recv().await {
        if w.write_all(&chunk).await.is_err() {
            return;
        }
        if shared.written(chunk.len(), resume_below) {
            bus.writable(conn);
        }
    }
    let _ = w.shutdown().await;
}

/// The store `cfg` asks for: the local SQLite store, or one replicated through NATS JetStream
/// with the local one as its mirror.
fn open_store(cfg: &BusConfig) -> Result<Box<dyn Backend>, StoreError> {
    Ok(match &cfg.cluster {
        None => Box::new(Store::open(&cfg.store_path(), cfg.durability)?),
        Some(log) => Box::new(Replicated::open(&cfg.store_path(), cfg.durability, log)?),
    })
}
