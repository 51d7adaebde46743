//! Test harness: starts the real `weaved` on a temporary home and a free port, and reads its
//! HTTP API and SSE streams with reqwest. Every daemon a test starts is killed when dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

pub const WAIT: Duration = Duration::from_secs(10);

/// The tests' Python (`WEAVE_TEST_PYTHON`, else the virtualenv `scripts/test` makes in
/// `target/py`), which must have `module` (what it is: `what`).
pub fn test_python(module: &str, what: &str) -> PathBuf {
    let python = std::env::var_os("WEAVE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/py/bin/python"
            ))
        });
    let has = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has,
        "{} has no `{module}` package: run scripts/test (it installs {what} into target/py)",
        python.display()
    );
    python
}

pub struct Weaved {
    child: Option<Child>,
    pub home: PathBuf,
    pub base: String,
    pub login_url: String,
    pub token: String,
    port: u16,
    args: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl Weaved {
    pub fn start() -> Weaved {
        Weaved::start_with(&[], None)
    }

    /// Starts with extra flags and, if given, this `<home>/config.toml`.
    pub fn start_with(args: &[&str], config: Option<&str>) -> Weaved {
        let mut d = Weaved::unstarted(args, config);
        d.spawn().expect("weaved starts");
        d
    }

    /// A temporary home (with `config.toml` if given) and flags, nothing started yet.
    pub fn unstarted(args: &[&str], config: Option<&str>) -> Weaved {
        let tmp = tempfile::TempDir::new().unwrap();
        let home = tmp.path().join("home");
        if let Some(text) = config {
            std::fs::create_dir(&home).unwrap();
            let private = std::os::unix::fs::PermissionsExt::from_mode(0o700);
            std::fs::set_permissions(&home, private).unwrap();
            std::fs::write(home.join("config.toml"), text).unwrap();
        }
        Weaved {
            child: None,
            home,
            base: String::new(),
            login_url: String::new(),
            token: String::new(),
            port: 0,
            args: args.iter().map(|a| a.to_string()).collect(),
            _tmp: Some(tmp),
        }
    }

    /// The `weaved` command for this home and flags, without its stdio set.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weaved"));
        cmd.arg("--home")
            .arg(&self.home)
            .arg("--http")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(&self.args);
        cmd
    }

    /// Takes ownership of a `weaved` started by the test itself (killed when dropped).
    pub fn adopt(&mut self, child: Child) {
        self.child = Some(child);
    }

    /// Starts (or restarts) the binary on this home; the same port once one was picked.
    pub fn spawn(&mut self) -> Result<(), String> {
        let mut child = self
            .command()
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        for _ in 0..3 {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            lines.push(line.trim().to_owned());
        }
        if !lines[0].starts_with("weaved: socket") {
            let _ = child.wait();
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return Err(format!("{lines:?} {err}"));
        }
        self.base = lines[1].trim_start_matches("weaved: http ").to_owned();
        self.port = self.base.rsplit(':').next().unwrap().parse().unwrap();
        self.login_url = lines[2].trim_start_matches("weaved: login ").to_owned();
        self.token = std::fs::read_to_string(self.home.join("token"))
            .unwrap()
            .trim()
            .to_owned();
        self.child = Some(child);
        Ok(())
    }

    pub fn socket(&self) -> PathBuf {
        self.home.join("coord.sock")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        c.wait().ok()?.code()
    }

    /// SIGTERM, then the exit code if it exits within `limit` (else kill -9 and `None`).
    pub fn terminate_within(&mut self, limit: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = c.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An authorized client request.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(&self.token)
    }

    pub fn post(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        reqwest::Client::new()
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(&body)
    }

    /// [`Weaved::json`] of an owned path (for closures).
    pub async fn json_owned(&self, path: String) -> Value {
        self.json(&path).await
    }

    pub async fn json(&self, path: &str) -> Value {
        let resp = self.get(path).send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }
}

impl Drop for Weaved {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// Reads SSE events from a streaming response.
pub struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl SseReader {
    pub async fn open(req: reqwest::RequestBuilder) -> SseReader {
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "SSE refused: {}", resp.status());
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        SseReader {
            stream: resp.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// The next event (comments skipped); `None` when the stream ends.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = SseEvent {
                    id: None,
                    event: "message".into(),
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        ev.id = Some(v.trim_start().to_owned());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        ev.event = v.trim_start().to_owned();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if !ev.data.is_empty() {
                            ev.data.push('\n');
                        }
                        ev.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        any = true;
                    }
                }
                if any {
                    return Some(ev);
                }
                continue;
            }
            let chunk = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("an SSE event in time")?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk.ok()?));
        }
    }
}
