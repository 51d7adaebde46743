//! `weavectl` end to end against a real `weaved`: exit codes (0 ok, 1 refused, 2 usage, 3 no
//! bus), `--json` output, sending, tailing the log, and joining as an agent from a terminal.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use codex_weave_transport_uds::{Agent, AgentOptions, Envelope};
use serde_json::{json, Value};
use weave_test_kit::*;

fn weavectl(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(program("weavectl"))
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn exit_codes_no_bus_usage_and_refusal() {
    let tmp = tempfile::TempDir::new().unwrap();
    let none = weavectl(tmp.path(), &["status"]);
    assert_eq!(none.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&none.stderr).contains("start one with `weaved`"));
    let usage = weavectl(tmp.path(), &["session", "frobnicate"]);
    assert_eq!(usage.status.code(), Some(2));
    let d = Weaved::start();
    let refused = weavectl(&d.home, &["session", "close", "no-such-session"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown_session"));
    let help = Command::new(program("weavectl"))
        .args(["join", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success() && stdout(&help).contains("#name text"));
}

#[test]
fn sessions_and_agents_in_text_and_json() {
    let d = Weaved::start();
    assert_eq!(weavectl(&d.home, &["status"]).status.code(), Some(0));
    let created = weavectl(&d.home, &["session", "create", "demo"]);
    assert!(created.status.success());
    let id = stdout(&created).trim().to_owned();
    let list = weavectl(&d.home, &["--json", "session", "list"]);
    let sessions: Vec<Value> = stdout(&list)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        (sessions[0]["id"].as_str(), sessions[0]["name"].as_str()),
        (Some(id.as_str()), Some("demo"))
    );
    assert!(stdout(&weavectl(&d.home, &["session", "list"])).contains("demo"));
    assert!(weavectl(&d.home, &["session", "close", &id])
        .status
        .success());
    assert!(stdout(&weavectl(&d.home, &["session", "list"]))
        .trim()
        .is_empty());
    assert!(stdout(&weavectl(&d.home, &["session", "list", "--all"])).contains("closed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_tail_and_join() {
    let d = Weaved::start();
    let s = stdout(&weavectl(&d.home, &["session", "create", "work"]))
        .trim()
        .to_owned();
    let mut bob = Agent::connect(AgentOptions::new(d.socket(), &s, "bob").name("Bob"))
        .await
        .unwrap();
    // send
    let sent = weavectl(&d.home, &["--json", "send", &s, "--to", "Bob", "build it"]);
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let got = bob.recv_kind(&["message.send"], WAIT).await.unwrap();
    assert_eq!((got.text(), got.0.src.as_str()), (Some("build it"), "cli"));
    let agents = stdout(&weavectl(&d.home, &["agent", "list", &s]));
    assert!(agents.contains("bob") && agents.contains("cli"), "{agents}");

    // tail --json: the log so far, as records.
    let mut tail = Command::new(program("weavectl"))
        .arg("--home")
        .arg(&d.home)
        .args(["--json", "tail", &s])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(
        (first["seq"].as_u64(), first["envelope"]["type"].as_str()),
        (Some(1), Some("session.created"))
    );
    tail.kill().unwrap();
    tail.wait().unwrap();

    // join: type `#bob text`, see Bob's answer printed.
    let mut join = Command::new(program("weavectl"))
        .arg("--home")
        .arg(&d.home)
        .args(["join", &s, "--name", "Alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = join.stdin.take().unwrap();
    let out = join.stdout.take().unwrap();
    writeln!(stdin, "#bob hello from the terminal").unwrap();
    stdin.flush().unwrap();
    let hello = bob.recv_kind(&["message.send"], WAIT).await.unwrap();
    assert_eq!(hello.text(), Some("hello from the terminal"));
    assert_eq!(
        hello.0.meta.as_ref().unwrap()["weave"]["origin_src_name"],
        "Alice"
    );
    let ctx = hello.0.payload.as_ref().unwrap()["context_id"].clone();
    let mut answer = Envelope::new("message.send", String::new(), String::new(), "");
    answer.dst = Some("alice".into());
    answer.payload = Some(json!({ "text": "hi Alice", "kind": "reply", "context_id": ctx }));
    assert_eq!(bob.request(answer).await.unwrap().error, None);
    let printed = tokio::task::spawn_blocking(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains("hi Alice"))
    });
    let printed = tokio::time::timeout(WAIT, printed)
        .await
        .unwrap()
        .unwrap()
        .expect("printed");
    assert!(printed.contains("Bob replies: hi Alice"), "{printed}");
    drop(stdin); // Ctrl-D: leaves
    let status = tokio::task::spawn_blocking(move || join.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_search_and_doctor_say_how_far_a_message_got_and_why_nobody_answered() {
    let d = Weaved::start();
    let s = stdout(&weavectl(&d.home, &["session", "create", "triage"]))
        .trim()
        .to_owned();
    // An agent that came and went, and one that is there.
    {
        let _gone = Agent::connect(AgentOptions::new(d.socket(), &s, "ghost").name("Ghost"))
            .await
            .unwrap();
    }
    let sender = Agent::connect(AgentOptions::new(d.socket(), &s, "boss").name("Boss"))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while !stdout(&weavectl(&d.home, &["agent", "list", &s])).contains("offline") {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let sent = sender
        .send_text("ghost", "please rotate the \u{1b}[2Jkeys")
        .await
        .unwrap();
    let id = sent.payload.unwrap()["id"].as_str().unwrap().to_owned();

    let status = weavectl(&d.home, &["status", &id, "--session", "triage"]);
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(
        stdout(&status).split_whitespace().collect::<Vec<_>>(),
        ["ghost", "queued"]
    );
    let missing = weavectl(&d.home, &["status", "nope", "--session", "triage"]);
    assert_eq!(missing.status.code(), Some(1));

    let found = stdout(&weavectl(&d.home, &["search", "triage", "rotate"]));
    assert!(
        found.contains("please rotate the \\u{1b}[2Jkeys"),
        "escaped: {found}"
    );
    assert!(!found.contains('\u{1b}'));
    let by_json = stdout(&weavectl(
        &d.home,
        &["--json", "search", "triage", "--from", "Boss"],
    ));
    assert!(by_json
        .lines()
        .all(|l| serde_json::from_str::<Value>(l).is_ok()));

    let doctor = weavectl(&d.home, &["doctor", "--session", "triage", "Ghost"]);
    let text = stdout(&doctor);
    assert_eq!(
        doctor.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&doctor.stderr)
    );
    assert!(
        text.starts_with("Ghost (ghost, offline, 1 unread)"),
        "{text}"
    );
    assert!(text.contains("offline since 20"), "{text}");
    assert!(text.contains("never read one"), "{text}");
    assert!(text.contains("no doorbell hooks for `Ghost`"), "{text}");
    let report: Value = serde_json::from_str(&stdout(&weavectl(
        &d.home,
        &["--json", "doctor", "--session", "triage", "boss"],
    )))
    .unwrap();
    assert_eq!(report["presence"], "online");
    drop(sender);
}
