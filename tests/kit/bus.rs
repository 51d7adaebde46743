//! `weave-bus` on a temporary home.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use codex_weave_transport_uds::{AgentOptions, Framing};
use tempfile::TempDir;

use crate::backing::{cluster_mode, Backing};
use crate::{program, Conn, Process};

/// The framing the suite's clients use: `WEAVE_TEST_FRAMING` (`ndjson`, the default, or
/// `protobuf`; `scripts/test` runs the bus suite both ways). Tests that write raw bytes speak
/// NDJSON whatever it says.
pub fn framing() -> Framing {
    match std::env::var("WEAVE_TEST_FRAMING") {
        Ok(s) => Framing::parse(&s).expect("WEAVE_TEST_FRAMING is ndjson or protobuf"),
        Err(_) => Framing::Ndjson,
    }
}

/// Agent options in the suite's framing.
pub fn agent_options(socket: &Path, session: &str, id: &str) -> AgentOptions {
    let mut opts = AgentOptions::new(socket, session, id);
    opts.framing = framing();
    opts
}

/// A `weave-bus` process on its own home, killed when dropped.
pub struct BusProcess {
    process: Process,
    pub home: PathBuf,
    args: Vec<String>,
    /// The size of the tmpfs the home lives on, if any (see [`BusProcess::start_on_tmpfs`]).
    tmpfs: Option<String>,
    /// With `WEAVE_TEST_CLUSTER=1`: the NATS server and leading bus behind this one.
    _backing: Option<Backing>,
    _tmp: TempDir,
}

impl BusProcess {
    /// A bus on a fresh temporary home.
    pub fn start() -> BusProcess {
        Self::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> BusProcess {
        let mut bus = BusProcess::unstarted(args, None);
        bus.spawn().expect("bus starts");
        bus
    }

    /// A bus whose home is on its own tmpfs of `size` (e.g. "8m"), mounted in a private user
    /// and mount namespace (`unshare -rm`) so that the mount vanishes with the process. The
    /// test reaches that filesystem through `/proc/PID/root` ([`BusProcess::view`]).
    pub fn start_on_tmpfs(size: &str) -> BusProcess {
        let mut bus = BusProcess::unstarted(&[], Some(size));
        bus.spawn().expect("bus starts on a tmpfs");
        bus
    }

    fn unstarted(args: &[&str], tmpfs: Option<&str>) -> BusProcess {
        let tmp = TempDir::new().unwrap();
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let backing = (cluster_mode() && tmpfs.is_none()).then(|| {
            let backing = Backing::start(tmp.path(), &args);
            args.extend(backing.args.iter().cloned());
            backing
        });
        BusProcess {
            process: Process::default(),
            home: tmp.path().join("home"),
            args,
            tmpfs: tmpfs.map(str::to_owned),
            _backing: backing,
            _tmp: tmp,
        }
    }

    /// Starts the binary with this bus's home and args; returns the stderr text on failure.
    pub fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = match &self.tmpfs {
            None => {
                let mut cmd = Command::new(program("weave-bus"));
                cmd.arg("--home").arg(&self.home);
                cmd
            }
            Some(size) => {
                let mut cmd = Command::new("unshare");
                cmd.args(["-rm", "sh", "-c"])
                    .arg(r#"d=$2 bin=$3; mount -t tmpfs -o "size=$1" tmpfs "$d" && shift 3 && exec "$bin" --home "$d/home" "$@""#)
                    .arg("sh")
                    .arg(size)
                    .arg(self.home.parent().unwrap())
                    .arg(program("weave-bus"));
                cmd
            }
        };
        cmd.args(&self.args);
        let (child, _) = spawn_command(cmd)?;
        self.process = Process::new(child);
        Ok(())
    }

    /// `path` as the bus process sees it (through its mount namespace when on a tmpfs).
    pub fn view(&self, path: &Path) -> PathBuf {
        match self.tmpfs {
            None => path.to_owned(),
            Some(_) => {
                let inside = path.strip_prefix("/").unwrap();
                PathBuf::from(format!("/proc/{}/root", self.pid())).join(inside)
            }
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.view(&self.home.join("coord.sock"))
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(&mut self) {
        self.process.kill9();
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        self.process.terminate()
    }

    /// SIGTERM, and the exit code once the process is gone; `None` if it is still running after
    /// `within` (it is then killed).
    pub fn terminate_within(&mut self, within: Duration) -> Option<i32> {
        self.process.terminate_within(within)
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn().expect("bus restarts");
    }

    pub async fn connect(&self) -> Conn {
        Conn::open(&self.socket()).await
    }

    /// A session named `name` with agent `a1` ("A") on one connection and `b1` ("B") on
    /// another: (session id, a1's connection, b1's connection).
    pub async fn pair(&self, name: &str) -> (String, Conn, Conn) {
        let a = self.connect().await;
        let s = a.create_session(name).await;
        a.add_agent(&s, "a1", "A").await;
        let b = self.connect().await;
        b.add_agent(&s, "b1", "B").await;
        (s, a, b)
    }
}

/// Spawns `weave-bus --home HOME ARGS` and waits for its "listening" line. On failure returns
/// what it printed on stderr.
pub fn spawn_bus(home: &Path, args: &[String]) -> Result<(Child, String), String> {
    let mut cmd = Command::new(program("weave-bus"));
    cmd.arg("--home").arg(home).args(args);
    spawn_command(cmd)
}

/// Spawns a command that runs the bus and waits for its "listening" line.
fn spawn_command(mut cmd: Command) -> Result<(Child, String), String> {
    // `WEAVE_TEST_BUS_LOG=weave_bus=debug` shows a bus's logs on the test's stderr.
    let shown = std::env::var("WEAVE_TEST_BUS_LOG").ok();
    let mut child = cmd
        .env("RUST_LOG", shown.as_deref().unwrap_or("weave_bus=warn"))
        .stdout(Stdio::piped())
        .stderr(match shown {
            Some(_) => Stdio::inherit(),
            None => Stdio::piped(),
        })
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.contains("listening") {
        return Ok((child, line));
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    }
    Err(format!("exit {:?}: {err}", status.code()))
}
