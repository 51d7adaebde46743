//! Test harness: starts the real `weave-bus` binary on a temporary home and talks to it over
//! its socket with the transport's client. Every bus a test starts is killed when dropped.
//!
//! `WEAVE_TEST_FRAMING=protobuf` runs the whole suite with binary frames (`scripts/test` runs
//! it both ways); tests that write raw bytes speak NDJSON whatever it says.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use codex_weave_transport_uds::{AgentOptions, Client, Envelope, Framing};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::mpsc::UnboundedReceiver;

pub const WAIT: Duration = Duration::from_secs(10);

/// The framing the suite's clients use: `WEAVE_TEST_FRAMING` (`ndjson`, the default, or
/// `protobuf`).
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

pub struct BusProcess {
    child: Option<Child>,
    pub home: PathBuf,
    args: Vec<String>,
    /// The size of the tmpfs the home lives on, if any (see [`BusProcess::start_on_tmpfs`]).
    tmpfs: Option<String>,
    _tmp: Option<TempDir>,
}

impl BusProcess {
    /// A bus on a fresh temporary home.
    pub fn start() -> BusProcess {
        Self::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> BusProcess {
        let tmp = TempDir::new().unwrap();
        let home = tmp.path().join("home");
        let mut bus = BusProcess {
            child: None,
            home,
            args: args.iter().map(|s| s.to_string()).collect(),
            tmpfs: None,
            _tmp: Some(tmp),
        };
        bus.spawn().expect("bus starts");
        bus
    }

    /// A bus whose home is on its own tmpfs of `size` (e.g. "8m"), mounted in a private user
    /// and mount namespace (`unshare -rm`) so that the mount vanishes with the process. The
    /// test reaches that filesystem through `/proc/PID/root` ([`BusProcess::view`]).
    pub fn start_on_tmpfs(size: &str) -> BusProcess {
        let tmp = TempDir::new().unwrap();
        let mut bus = BusProcess {
            child: None,
            home: tmp.path().join("home"),
            args: Vec::new(),
            tmpfs: Some(size.to_owned()),
            _tmp: Some(tmp),
        };
        bus.spawn().expect("bus starts on a tmpfs");
        bus
    }

    /// Starts the binary with this bus's home and args; returns the stderr text on failure.
    pub fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = match &self.tmpfs {
            None => {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_weave-bus"));
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
                    .arg(env!("CARGO_BIN_EXE_weave-bus"));
                cmd
            }
        };
        cmd.args(&self.args);
        let (child, _) = spawn_command(cmd)?;
        self.child = Some(child);
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
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        c.wait().ok()?.code()
    }

    /// SIGTERM, and the exit code once the process is gone; `None` if it is still running after
    /// `within` (it is then killed).
    pub fn terminate_within(&mut self, within: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(status) = c.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
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

impl Drop for BusProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Spawns `weave-bus --home HOME ARGS` and waits for its "listening" line. On failure returns
/// what it printed on stderr.
pub fn spawn_bus(home: &Path, args: &[String]) -> Result<(Child, String), String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weave-bus"));
    cmd.arg("--home").arg(home).args(args);
    spawn_command(cmd)
}

/// Spawns a command that runs the bus and waits for its "listening" line.
fn spawn_command(mut cmd: Command) -> Result<(Child, String), String> {
    let mut child = cmd
        .env("RUST_LOG", "weave_bus=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
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
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    Err(format!("exit {:?}: {err}", status.code()))
}

/// One socket connection: requests, and the other lines it receives.
pub struct Conn {
    pub client: Client,
    pub events: UnboundedReceiver<Envelope>,
}

impl Conn {
    pub async fn open(socket: &Path) -> Conn {
        let (client, events) = Client::connect_with(socket, framing())
            .await
            .expect("connect");
        Conn { client, events }
    }

    pub async fn req(
        &self,
        kind: &str,
        session: Option<&str>,
        src: &str,
        payload: Value,
    ) -> Envelope {
        let env = envelope(kind, session, src, payload);
        tokio::time::timeout(WAIT, self.client.request(env))
            .await
            .expect("response in time")
            .expect("response")
    }

    /// Sends a request and asserts it is answered `ok`.
    pub async fn ok(
        &self,
        kind: &str,
        session: Option<&str>,
        src: &str,
        payload: Value,
    ) -> Envelope {
        let resp = self.req(kind, session, src, payload).await;
        assert_eq!(resp.error, None, "{kind} refused");
        resp
    }

    /// Sends a request and returns its error code (asserting it is refused).
    pub async fn err(
        &self,
        kind: &str,
        session: Option<&str>,
        src: &str,
        payload: Value,
    ) -> String {
        let resp = self.req(kind, session, src, payload).await;
        match resp.error {
            Some(e) => e.code,
            None => panic!("{kind} was accepted: {:?}", resp.payload),
        }
    }

    /// Waits until the bus reports agent `id` as `status` ("online"/"offline").
    pub async fn wait_status(&self, session: &str, id: &str, status: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let list = self
                .ok("agent.list", Some(session), "t", Value::Null)
                .await
                .payload
                .unwrap();
            if list["agents"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["id"] == id && a["status"] == status)
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} never became {status}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn create_session(&self, name: &str) -> String {
        let resp = self
            .ok(
                "session.create",
                None,
                "tester",
                serde_json::json!({ "name": name }),
            )
            .await;
        resp.session.unwrap()
    }

    pub async fn add_agent(&self, session: &str, id: &str, name: &str) -> Envelope {
        self.ok(
            "agent.add",
            Some(session),
            id,
            serde_json::json!({ "id": id, "name": name }),
        )
        .await
    }

    /// Sends any request envelope and returns the response.
    pub async fn call(&self, env: Envelope) -> Envelope {
        tokio::time::timeout(WAIT, self.client.request(env))
            .await
            .expect("response in time")
            .expect("response")
    }

    /// `message.send` of `text` from `src` to `dst`, asserted `ok`.
    pub async fn send(&self, session: &str, src: &str, dst: &str, text: &str) -> Envelope {
        let resp = self.call(message(session, src, dst, text)).await;
        assert_eq!(resp.error, None, "message.send refused");
        resp
    }

    /// The next line that is not a response, within [`WAIT`].
    pub async fn next(&mut self) -> Envelope {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("a line in time")
            .expect("connection open")
    }

    /// The next line of type `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Envelope {
        loop {
            let env = self.next().await;
            if env.kind == kind {
                return env;
            }
        }
    }

    /// Asserts no line of `kind` arrives within `within`.
    pub async fn none_of(&mut self, kind: &str, within: Duration) {
        let _ = tokio::time::timeout(within, async {
            while let Some(env) = self.events.recv().await {
                assert_ne!(env.kind, kind, "unexpected {kind}: {env:?}");
            }
        })
        .await;
    }

    pub fn ack(&self, session: &str, src: &str, delivery: &Envelope) {
        let mut ack = envelope("message.ack", Some(session), src, Value::Null);
        ack.payload = None;
        ack.corr = Some(delivery.corr.clone().unwrap_or(delivery.id.clone()));
        self.client.send(ack).unwrap();
    }
}

/// Builds a request envelope (id and ts are filled in by the client).
pub fn envelope(kind: &str, session: Option<&str>, src: &str, payload: Value) -> Envelope {
    let mut env = Envelope::new(kind, String::new(), String::new(), src);
    env.session = session.map(str::to_owned);
    if !payload.is_null() {
        env.payload = Some(payload);
    }
    env
}

/// `message.send` from `src` to `dst` with `text` (and optional `ack`).
pub fn message(session: &str, src: &str, dst: &str, text: &str) -> Envelope {
    let mut env = envelope(
        "message.send",
        Some(session),
        src,
        serde_json::json!({ "text": text }),
    );
    env.dst = Some(dst.to_owned());
    env
}

pub fn text_of(env: &Envelope) -> &str {
    env.payload
        .as_ref()
        .and_then(|p| p.get("text"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn meta_weave<'a>(env: &'a Envelope, field: &str) -> Option<&'a Value> {
    env.meta.as_ref()?.get("weave")?.get(field)
}

/// A raw NDJSON connection: bytes written as a client in any language (or a broken one) writes
/// them, lines read as they were written. NDJSON whatever `WEAVE_TEST_FRAMING` says.
pub struct RawConn {
    pub reader: tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>,
    pub writer: tokio::net::unix::OwnedWriteHalf,
}

impl RawConn {
    pub async fn open(bus: &BusProcess) -> RawConn {
        let (r, w) = tokio::net::UnixStream::connect(bus.socket())
            .await
            .unwrap()
            .into_split();
        RawConn {
            reader: tokio::io::BufReader::new(r),
            writer: w,
        }
    }

    /// Writes `bytes` as one line.
    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.writer.write_all(bytes).await.unwrap();
        self.writer.write_all(b"\n").await.unwrap();
    }

    /// The next line as written (empty once the bus closed the connection), within [`WAIT`].
    pub async fn read_line(&mut self) -> String {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
            .await
            .expect("a line in time")
            .unwrap();
        line
    }

    /// The next line, parsed (`null` if it is not JSON).
    pub async fn read(&mut self) -> Value {
        serde_json::from_str(&self.read_line().await).unwrap_or(Value::Null)
    }

    /// Writes `bytes` as one line and returns the next line read back, parsed.
    pub async fn roundtrip(&mut self, bytes: &[u8]) -> Value {
        self.send(bytes).await;
        self.read().await
    }

    /// The next line of type `kind` as written, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> String {
        loop {
            let line = self.read_line().await;
            let v: Value = serde_json::from_str(&line).expect("a JSON line");
            if v["type"] == kind {
                return line;
            }
        }
    }
}
