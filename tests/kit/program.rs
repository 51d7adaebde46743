//! The workspace's binaries, and the processes a test starts from them.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The workspace root (this crate lives in its `tests/`).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Source trees whose change the binary `name` must have been rebuilt for: its own package's
/// and those of the packages it depends on.
fn sources(name: &str) -> &'static [&'static str] {
    const BUS: &[&str] = &[
        "codex-weave-runtime/src",
        "codex-weave-transport-uds/src",
        "weave-bus/src",
    ];
    const DAEMON: &[&str] = &[
        "codex-weave-runtime/src",
        "codex-weave-transport-uds/src",
        "weave-bus/src",
        "codex-weave-transport-http/src",
        "weave-codex-daemon/src",
        "weave-web/index.html",
        "weave-web/app.js",
        "weave-web/style.css",
    ];
    match name {
        "weave-bus" => BUS,
        _ => DAEMON,
    }
}

/// The path of the workspace binary `name` (`weave-bus`, `weaved`, `weavectl`): next to the
/// test executable's `deps/` directory, i.e. in the same target profile. Panics with what to
/// run when it is missing or older than a source file it is built from, so that a test never
/// runs yesterday's binary.
pub fn program(name: &str) -> PathBuf {
    static CHECKED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from <target>/<profile>/deps");
    let path = dir.join(name);
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if checked.iter().any(|n| n == name) {
        return path;
    }
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: build the binaries first (`cargo build --workspace --bins`)",
                path.display()
            )
        });
    let root = workspace();
    if let Some(newer) = sources(name)
        .iter()
        .find_map(|s| newer_than(&root.join(s), built))
    {
        panic!(
            "{} is older than {}: rebuild the binaries (`cargo build --workspace --bins`)",
            path.display(),
            newer.display()
        );
    }
    checked.push(name.to_owned());
    path
}

/// A file under `path` modified after `time`, if any.
fn newer_than(path: &Path, time: SystemTime) -> Option<PathBuf> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.is_file() {
        return (meta.modified().ok()? > time).then(|| path.to_owned());
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .find_map(|entry| newer_than(&entry.path(), time))
}

/// A child process the test owns: killed (and reaped) when dropped.
#[derive(Default)]
pub struct Process {
    child: Option<Child>,
}

impl Process {
    pub fn new(child: Child) -> Process {
        Process { child: Some(child) }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the process runs").id()
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        sigterm(&c);
        c.wait().ok()?.code()
    }

    /// SIGTERM, and the exit code once the process is gone; `None` if it still runs after
    /// `within` (it is then killed).
    pub fn terminate_within(&mut self, within: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        sigterm(&c);
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = c.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }
}

fn sigterm(c: &Child) {
    kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM).expect("SIGTERM");
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}
