//! `WEAVE_TEST_CLUSTER=1`: the socket protocol suite through a cluster. Every [`BusProcess`]
//! then gets its own `nats-server` (JetStream on) and a second `weave-bus` that leads the
//! cluster; the bus the test talks to follows, and carries each connection to the leader. The
//! test's restarts, kills and terminations hit the follower; the state lives on, in the leader
//! and the log, as it does in one bus's store.
//!
//! [`BusProcess`]: crate::BusProcess

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bus::spawn_bus;
use crate::{request_line, Process};

/// Whether the suite runs through a cluster.
pub fn cluster_mode() -> bool {
    std::env::var_os("WEAVE_TEST_CLUSTER").is_some_and(|v| v == "1")
}

/// What stands behind a follower: its NATS server and the daemon that leads.
pub struct Backing {
    /// The flags that join the cluster (for the follower too).
    pub args: Vec<String>,
    _leader: Process,
    _nats: Process,
}

impl Backing {
    /// Starts a `nats-server` with its store under `dir`, and a leading `weave-bus` (home
    /// `dir/leader`, flags `args`); returns once the leader answers requests.
    pub fn start(dir: &Path, args: &[String]) -> Backing {
        let port = free_port();
        let nats = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.join("nats"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts (WEAVE_TEST_CLUSTER=1 needs it installed)");
        let nats = Process::new(nats);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server listens");
            std::thread::sleep(Duration::from_millis(20));
        }
        let cluster = vec![
            "--cluster".to_owned(),
            format!("nats://127.0.0.1:{port}"),
            "--cluster-name".to_owned(),
            format!("t{}", uuid::Uuid::new_v4().simple()),
        ];
        let home = dir.join("leader");
        let mut leader_args = args.to_vec();
        leader_args.extend(cluster.iter().cloned());
        let (leader, _) = spawn_bus(&home, &leader_args).expect("the leading bus starts");
        let leader = Process::new(leader);
        wait_until_served(&home.join("coord.sock"));
        Backing {
            args: cluster,
            _leader: leader,
            _nats: nats,
        }
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().port()
}

/// Sends `session.list` until the bus at `socket` answers it (it leads once it does; whether
/// the answer is `ok` does not matter).
fn wait_until_served(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = UnixStream::connect(socket) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
            let line = request_line("session.list", "", "probe", serde_json::json!({}));
            let mut answer = String::new();
            if s.write_all(&line).is_ok()
                && BufReader::new(&s).read_line(&mut answer).is_ok()
                && answer.contains("\"response\"")
                && !answer.contains("store_unavailable")
            {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the leading bus serves");
        std::thread::sleep(Duration::from_millis(50));
    }
}
