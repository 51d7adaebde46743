//! `weaved` on a temporary home and a free port, with its HTTP API read by reqwest.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{program, Process};

/// A `weaved` process on its own home, killed when dropped.
pub struct Weaved {
    process: Process,
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
            process: Process::default(),
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
        let mut cmd = Command::new(program("weaved"));
        cmd.arg("--home")
            .arg(&self.home)
            .arg("--http")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(&self.args);
        cmd
    }

    /// Takes ownership of a `weaved` started by the test itself (killed when dropped).
    pub fn adopt(&mut self, child: Child) {
        self.process = Process::new(child);
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
        self.process = Process::new(child);
        Ok(())
    }

    pub fn socket(&self) -> PathBuf {
        self.home.join("coord.sock")
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// SIGTERM and wait; the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        self.process.terminate()
    }

    /// SIGTERM, then the exit code if it exits within `limit` (else kill -9 and `None`).
    pub fn terminate_within(&mut self, limit: Duration) -> Option<i32> {
        self.process.terminate_within(limit)
    }

    pub fn kill9(&mut self) {
        self.process.kill9();
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

    /// Creates a session named `name` over HTTP (answered 201); its id.
    pub async fn create_session(&self, name: &str) -> String {
        let resp = self
            .post("/api/sessions", serde_json::json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "POST /api/sessions");
        let created: Value = resp.json().await.unwrap();
        created["id"].as_str().unwrap().to_owned()
    }

    /// `/metrics` as served.
    pub async fn metrics(&self) -> String {
        self.get("/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of metric `name` (e.g. `weave_sse_clients`) in `/metrics`, if it is there.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.metrics().await;
        let prefix = format!("{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.parse().ok())
    }
}
