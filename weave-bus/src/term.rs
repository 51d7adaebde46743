//! A term: one running engine — its store opened and loaded, its thread, its checkpointer, and
//! the connections it serves. A daemon on its own runs one term for its whole life; a daemon of
//! a cluster runs one each time it takes the cluster's lease, and ends it when it loses the
//! lease (`cluster/`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::BusConfig;
use crate::engine::Engine;
use crate::handle::Bus;
use crate::metrics::Metrics;
use crate::start_error::StartError;
use crate::store::replicated::Replicated;
use crate::store::{self, Backend, Store, StoreError};
use crate::store_marker;

pub(crate) struct Term {
    pub bus: Bus,
    engine: std::thread::JoinHandle<()>,
    checkpoint_stop: Arc<AtomicBool>,
}

impl Term {
    /// Opens and loads the store and starts the engine; blocks until the engine is ready.
    /// `deposed`: cancelled when a daemon of a cluster loses its lease (its store then fails
    /// every write at once).
    pub fn start(
        cfg: &BusConfig,
        metrics: Arc<Metrics>,
        deposed: CancellationToken,
    ) -> Result<Term, StartError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (loaded_tx, loaded) = std::sync::mpsc::sync_channel(1);
        let engine_cfg = cfg.clone();
        let engine_metrics = metrics.clone();
        // The engine is built (store opened and loaded, log replayed) on its own thread and
        // never leaves it: the runtime's shared ids are counted without atomics. (A replicated
        // store runs its own client runtime: it is opened off the async one.)
        let engine = std::thread::Builder::new()
            .name("weave-engine".into())
            .spawn(move || {
                match open_store(&engine_cfg, deposed)
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
        Ok(Term {
            bus: Bus::new(tx, metrics),
            engine,
            checkpoint_stop,
        })
    }

    /// Lets the engine commit its last batch and waits for its thread (the caller ends the
    /// term's connections).
    pub async fn end(self) {
        self.bus.shutdown();
        let engine = self.engine;
        let _ = tokio::task::spawn_blocking(move || engine.join()).await;
        self.checkpoint_stop.store(true, Ordering::Relaxed);
    }
}

/// The store `cfg` asks for: the local SQLite store, or one replicated through NATS JetStream
/// with the local one as its mirror.
fn open_store(cfg: &BusConfig, deposed: CancellationToken) -> Result<Box<dyn Backend>, StoreError> {
    let path = cfg.store_path();
    Ok(match &cfg.cluster {
        None => Box::new(Store::open(&path, cfg.durability)?),
        Some(log) => Box::new(Replicated::open(&path, cfg.durability, log, deposed)?),
    })
}
