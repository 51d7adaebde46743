//! A NATS JetStream cluster on loopback, for the tests of the cluster design
//! (`docs/weave/cluster.md`): `n` `nats-server` processes (Debian's package) with their own
//! store directories, routed to each other, each killable with kill -9 and restartable on the
//! same ports and store.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use std::time::Duration;

use async_nats::jetstream::context::GetStreamErrorKind;

use crate::{Deadline, Process};

/// The largest message the servers take: 8 MiB (NATS's default is 1 MiB).
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;

/// One server of the cluster: its ports, its store, its process (none while killed).
struct Node {
    name: String,
    port: u16,
    route_port: u16,
    process: Process,
}

pub struct NatsCluster {
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl NatsCluster {
    /// `nats-server --version`, or `None` when it is not installed.
    pub fn version() -> Option<String> {
        let out = Command::new("nats-server").arg("--version").output().ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Starts `n` servers and waits until JetStream answers on each; `None` (saying why on
    /// stderr) when `nats-server` is not installed.
    pub async fn start(n: usize) -> Option<NatsCluster> {
        let Some(version) = NatsCluster::version() else {
            eprintln!("skipped: nats-server is not installed (scripts/test installs Debian's)");
            return None;
        };
        eprintln!("NATS cluster of {n}: {version}");
        let mut cluster = NatsCluster {
            nodes: (0..n)
                .map(|i| Node {
                    name: format!("n{i}"),
                    port: free_port(),
                    route_port: free_port(),
                    process: Process::default(),
                })
                .collect(),
            dir: tempfile::tempdir().expect("a temporary directory"),
        };
        for i in 0..n {
            cluster.spawn(i);
        }
        for i in 0..n {
            cluster.ready(i).await;
        }
        cluster.placing(n).await;
        Some(cluster)
    }

    fn spawn(&mut self, i: usize) {
        let routes: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| format!("nats://127.0.0.1:{}", n.route_port))
            .collect();
        let node = &self.nodes[i];
        let store: PathBuf = self.dir.path().join(&node.name);
        let config = self.dir.path().join(format!("{}.conf", node.name));
        // A batch of the bus is one message: up to its 4 MiB cap, and headers.
        std::fs::write(
            &config,
            format!(
                "server_name: {name}\nlisten: \"127.0.0.1:{port}\"\nmax_payload: {max}\n\
                 jetstream {{ store_dir: {store:?} }}\n\
                 cluster {{ name: weave-test, listen: \"127.0.0.1:{route}\", routes: [{routes}], no_advertise: true }}\n",
                name = node.name,
                port = node.port,
                max = MAX_PAYLOAD,
                route = node.route_port,
                routes = routes.iter().map(|r| format!("\"{r}\"")).collect::<Vec<_>>().join(", "),
            ),
        )
        .expect("a server config");
        let log = std::fs::File::create(self.dir.path().join(format!("{}.log", node.name)))
            .expect("a log file");
        let child = Command::new("nats-server")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.nodes[i].process = Process::new(child);
    }

    /// Waits until server `i` answers JetStream requests (the cluster elected its meta leader);
    /// panics with the server's log if it does not within [`crate::WAIT`].
    pub async fn ready(&self, i: usize) {
        let url = self.url(i);
        let deadline = Deadline::new();
        loop {
            if let Ok(client) = async_nats::connect(&url).await {
                // A stream that does not exist: JetStream answers "not found" once it serves.
                // (`query_account` cannot be used: async-nats 0.52 cannot read 2.9's answer.)
                let js = async_nats::jetstream::new(client);
                let asked =
                    tokio::time::timeout(Duration::from_millis(500), js.get_stream("PROBE"));
                if let Ok(Err(e)) = asked.await {
                    if matches!(e.kind(), GetStreamErrorKind::JetStream(_)) {
                        return;
                    }
                }
            }
            if deadline.passed() {
                panic!(
                    "JetStream never answered on {url}; its log:\n{}",
                    self.log(i)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the cluster places a stream on `replicas` servers (every server is known
    /// to the meta leader: right after the start, "no suitable peers for placement").
    async fn placing(&self, replicas: usize) {
        let client = async_nats::connect(self.url(0)).await.expect("a client");
        let js = async_nats::jetstream::new(client);
        let deadline = Deadline::new();
        loop {
            let probe = js
                .create_stream(async_nats::jetstream::stream::Config {
                    name: "PLACEMENT_PROBE".into(),
                    subjects: vec!["placement-probe".into()],
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await;
            if probe.is_ok() {
                let _ = js.delete_stream("PLACEMENT_PROBE").await;
                return;
            }
            deadline
                .tick("the cluster places a stream on every server")
                .await;
        }
    }

    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].port)
    }

    /// Every server's URL, comma-separated (what `--cluster` takes).
    pub fn urls(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// kill -9 of server `i`.
    pub fn kill9(&mut self, i: usize) {
        self.nodes[i].process.kill9();
    }

    /// Starts server `i` again on its ports and store, and waits until it answers.
    pub async fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.ready(i).await;
    }

    /// What server `i` wrote to its log (for a failing test's message).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", self.nodes[i].name)))
            .unwrap_or_default()
    }
}
