//! `weavectl hook` with each agent's documented hook input (`tests/daemon/fixtures/hooks/*.json`, which
//! say which documentation version they follow): it prints exactly the documented answer shape
//! with the agent's new messages, each once, bounded; with no daemon, or a daemon that does not
//! answer, it prints nothing and returns within its deadline.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codex_weave_transport_uds::{Agent, AgentOptions};
use serde_json::Value;
use weave_test_kit::*;

fn fixture(agent: &str) -> Value {
    let path = format!(
        "{}/daemon/fixtures/hooks/{agent}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Runs `weavectl hook AGENT EVENT` with `input` on stdin: (stdout, exit code, time taken).
fn hook(
    home: &Path,
    agent: &str,
    event: &str,
    input: &Value,
    extra: &[&str],
) -> (String, Option<i32>, Duration) {
    let started = Instant::now();
    let mut child = Command::new(program("weavectl"))
        .arg("--home")
        .arg(home)
        .args(["hook", agent, event])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        out.status.code(),
        started.elapsed(),
    )
}

/// The context text of an answer, and the answer with it replaced by `<context>`.
fn split(answer: &Value) -> (String, Value) {
    let mut shape = answer.clone();
    let slot = if shape.get("reason").is_some() {
        &mut shape["reason"]
    } else {
        &mut shape["hookSpecificOutput"]["additionalContext"]
    };
    let text = slot.as_str().unwrap().to_owned();
    *slot = Value::String("<context>".into());
    (text, shape)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_agents_hooks_get_their_documented_answer_with_new_messages_once() {
    let d = Weaved::start();
    let s = create_session(&d);
    let bob = Agent::connect(AgentOptions::new(d.socket(), &s, "bob").name("Bob"))
        .await
        .unwrap();
    // Alice's MCP server holds her agent; her hooks run beside it.
    let _alice = Agent::connect(AgentOptions::new(d.socket(), &s, "alice").name("Alice"))
        .await
        .unwrap();
    for agent in ["claude", "codex", "gemini"] {
        let fx = fixture(agent);
        assert!(fx["documentation"].as_str().unwrap().contains("https://"));
        let events = fx["events"].as_object().unwrap();
        // Seven messages: the first hook lists five and says two more wait.
        let mut sent = Vec::new();
        for i in 0..7 {
            let text = if i == 0 {
                format!("{agent} 0: {}\u{1b}[31m", "x".repeat(900))
            } else {
                format!("{agent} {i}")
            };
            let r = bob.send_text("alice", &text).await.unwrap();
            sent.push(r.payload.unwrap()["id"].as_str().unwrap().to_owned());
        }
        let args = ["--session", "hooks", "--name", "Alice"];
        let mut names = events.keys().cloned().collect::<Vec<_>>();
        // Context first, the stop-like event last.
        names.sort_by_key(|e| matches!(e.as_str(), "Stop" | "AfterAgent"));
        let (first, second, quiet) = (&names[0], names.last().unwrap(), &names[1]);
        let (out, code, _) = hook(&d.home, agent, first, &events[first]["input"], &args);
        assert_eq!(code, Some(0));
        let (text, shape) = split(&serde_json::from_str(out.trim()).unwrap());
        assert_eq!(shape, events[first]["output"], "{agent} {first}");
        assert!(text.contains("7 new messages for you (Alice)"), "{text}");
        assert!(
            text.contains(&format!("{agent} 4")) && !text.contains(&format!("{agent} 5")),
            "{text}"
        );
        assert!(text.contains("… and 2 more"), "{text}");
        assert!(text.contains(&sent[0]), "ids are shown: {text}");
        assert!(!text.contains(&"x".repeat(500)), "each message is cut");
        assert!(
            !text.contains('\u{1b}'),
            "escape sequences are shown, not sent"
        );
        // The stop-like event: keep going, with the two left.
        let (out, _, _) = hook(&d.home, agent, second, &events[second]["input"], &args);
        let (text, shape) = split(&serde_json::from_str(out.trim()).unwrap());
        assert_eq!(shape, events[second]["output"], "{agent} {second}");
        assert!(text.starts_with("Before you stop"), "{text}");
        assert!(text.contains(&format!("{agent} 5")) && text.contains(&format!("{agent} 6")));
        assert!(!text.contains(&format!("{agent} 4")), "each message once");
        // Nothing new: nothing printed, for every event.
        for event in [quiet, second] {
            let (out, code, _) = hook(&d.home, agent, event, &events[event]["input"], &args);
            assert_eq!((out.as_str(), code), ("", Some(0)), "{agent} {event}");
        }
        // What was shown is read.
        let r = d
            .json(&format!("/api/sessions/{s}/messages/{}", sent[6]))
            .await;
        assert_eq!(r["receipts"][0]["state"], "read");
    }
}

fn create_session(d: &Weaved) -> String {
    let out = Command::new(program("weavectl"))
        .arg("--home")
        .arg(&d.home)
        .args(["session", "create", "hooks"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn with_no_daemon_or_a_silent_one_a_hook_prints_nothing_within_its_deadline() {
    let tmp = tempfile::TempDir::new().unwrap();
    let input = fixture("claude")["events"]["Stop"]["input"].clone();
    let args = ["--session", "s", "--name", "Alice"];
    let (out, code, took) = hook(tmp.path(), "claude", "Stop", &input, &args);
    assert_eq!((out.as_str(), code), ("", Some(0)));
    assert!(took < Duration::from_secs(2), "{took:?}");
    // A socket that accepts and never answers: the deadline ends the hook.
    let socket = tmp.path().join("coord.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let (out, code, took) = hook(
        tmp.path(),
        "claude",
        "Stop",
        &input,
        &[&args[..], &["--deadline-ms", "300"]].concat(),
    );
    assert_eq!((out.as_str(), code), ("", Some(0)));
    assert!(
        took < Duration::from_secs(2),
        "the 300 ms deadline held: {took:?}"
    );
    // No session or name: nothing, at once.
    let (out, code, _) = hook(tmp.path(), "gemini", "AfterAgent", &input, &[]);
    assert_eq!((out.as_str(), code), ("", Some(0)));
}
