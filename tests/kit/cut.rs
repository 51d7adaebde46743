//! A TCP relay that a test can cut: what a network split looks like to the process behind it.
//! While cut, every relayed connection is closed and new ones are closed on arrival.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Cuttable {
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Cuttable {
    /// Relays a loopback port to `target` (`host:port`).
    pub async fn start(target: &str) -> Cuttable {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let (cuts, _) = watch::channel(0u64);
        let (target, flag, tx) = (target.to_owned(), cut.clone(), cuts.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped: closed on arrival
                }
                let mut cut_now = tx.subscribe();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut c, mut s) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut c, &mut s) => {}
                        _ = cut_now.changed() => {}
                    }
                });
            }
        });
        Cuttable {
            addr,
            cut,
            cuts,
            task,
        }
    }

    /// `nats://` URL of this relay.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Closes every relayed connection and refuses new ones until [`Cuttable::heal`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Cuttable {
    fn drop(&mut self) {
        self.task.abort();
    }
}
