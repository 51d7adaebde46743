//! The home: permissions, one bus per home, a live socket never replaced, a dead one replaced,
//! graceful shutdown removing the socket.

use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};
use weave_test_kit::*;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn home_is_0700_socket_0600_store_private() {
    let bus = BusProcess::start();
    assert_eq!(mode(&bus.home), 0o700);
    assert_eq!(mode(&bus.socket()), 0o600);
    assert_eq!(mode(&bus.home.join("weave.db")), 0o600);
}

#[tokio::test]
async fn a_second_bus_on_the_same_home_exits_non_zero_with_a_clear_message() {
    let bus = BusProcess::start();
    let err = spawn_bus(&bus.home, &[]).expect_err("second bus refused");
    assert!(err.contains("exit Some(1)"), "{err}");
    assert!(err.contains("already owns this home"), "{err}");
    assert!(err.contains(&format!("pid {}", bus.pid())), "{err}");
    // The first bus is untouched.
    bus.connect()
        .await
        .ok("session.list", None, "t", serde_json::Value::Null)
        .await;
}

#[tokio::test]
async fn a_live_socket_of_something_else_is_never_replaced() {
    let tmp = tempfile::TempDir::new().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // Something else (the old coordinator, say) answers on the socket.
    let listener = std::os::unix::net::UnixListener::bind(home.join("coord.sock")).unwrap();
    let err = spawn_bus(&home, &[]).expect_err("refused");
    assert!(err.contains("already answering"), "{err}");
    assert!(home.join("coord.sock").exists());
    drop(listener);
    // Once nothing answers, the dead socket file is replaced.
    let (mut child, _) = spawn_bus(&home, &[]).expect("starts over a dead socket");
    let c = Conn::open(&home.join("coord.sock")).await;
    c.ok("session.list", None, "t", serde_json::Value::Null)
        .await;
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_and_removes_the_socket() {
    let mut bus = BusProcess::start();
    let c = bus.connect().await;
    let s = c.create_session("kept").await;
    assert_eq!(bus.terminate(), Some(0));
    assert!(!bus.socket().exists());
    bus.spawn().unwrap();
    let c = bus.connect().await;
    let got = c
        .ok("session.get", Some(&s), "t", serde_json::Value::Null)
        .await;
    assert_eq!(got.payload.unwrap()["session"]["name"], "kept");
}

#[test]
fn weave_home_set_but_empty_is_an_error() {
    let out = std::process::Command::new(program("weave-bus"))
        .env("WEAVE_HOME", "")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("WEAVE_HOME is set but empty"));
}

#[tokio::test]
async fn weave_home_from_the_environment_is_used() {
    let tmp = tempfile::TempDir::new().unwrap();
    let home = tmp.path().join("envhome");
    let mut child = std::process::Command::new(program("weave-bus"))
        .env("WEAVE_HOME", &home)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(
        line.contains(&home.join("coord.sock").display().to_string()),
        "{line}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A home that had a store never starts over silently: a store truncated to 0 bytes (or gone)
/// is refused, naming the file and `--new-store`, until that flag says to begin again.
#[tokio::test]
async fn a_store_truncated_to_nothing_is_refused_until_new_store_is_given() {
    let mut bus = BusProcess::start();
    let c = bus.connect().await;
    c.ok("session.create", None, "t", json!({ "name": "kept" }))
        .await;
    drop(c);
    assert_eq!(bus.terminate(), Some(0));
    let store = bus.home.join("weave.db");
    std::fs::write(&store, b"").unwrap();
    for side in ["weave.db-wal", "weave.db-shm"] {
        let _ = std::fs::remove_file(bus.home.join(side));
    }
    let err = spawn_bus(&bus.home, &[]).expect_err("an empty store is refused");
    assert!(err.contains("exit Some(1)"), "{err}");
    assert!(err.contains("is empty (0 bytes)"), "{err}");
    assert!(err.contains("--new-store"), "{err}");
    assert_eq!(
        std::fs::metadata(&store).unwrap().len(),
        0,
        "left as it was"
    );
    std::fs::remove_file(&store).unwrap();
    let err = spawn_bus(&bus.home, &[]).expect_err("a missing store is refused");
    assert!(err.contains("is missing"), "{err}");

    let (mut child, _) =
        spawn_bus(&bus.home, &["--new-store".into()]).expect("--new-store starts over");
    let c = Conn::open(&bus.socket()).await;
    let listed = c.ok("session.list", None, "t", Value::Null).await;
    assert_eq!(listed.payload.unwrap()["sessions"], json!([]));
    drop(c);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait().unwrap();
    let (mut child, _) = spawn_bus(&bus.home, &[]).expect("the new store is the home's now");
    child.kill().unwrap();
    child.wait().unwrap();
}
