//! `weavectl mcp` driven by a real MCP client — the official Python SDK (`mcp` from PyPI, in
//! the virtualenv `scripts/test` makes: `WEAVE_TEST_PYTHON`, else `target/py/bin/python`) — as
//! stock agents use it: two MCP agents converse; receipts go through every state; errors carry
//! the bus's code and a hint.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::Value;

/// The Python that has the MCP SDK.
pub fn python() -> PathBuf {
    let python = std::env::var_os("WEAVE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/py/bin/python"
            ))
        });
    let has_sdk = Command::new(&python)
        .args(["-c", "import mcp"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_sdk,
        "{} has no `mcp` package: run scripts/test (it installs the Python MCP SDK into target/py)",
        python.display()
    );
    python
}

/// Runs a script of `tests/py/` against the daemon with `SESSION` set; its last stdout line is
/// JSON.
pub fn run_script(
    home: &std::path::Path,
    script: &str,
    session: &str,
    extra: &[(&str, &str)],
) -> Value {
    let out = Command::new(python())
        .arg(format!("{}/tests/py/{script}", env!("CARGO_MANIFEST_DIR")))
        .env("WEAVECTL", env!("CARGO_BIN_EXE_weavectl"))
        .env("WEAVE_HOME", home)
        .env("SESSION", session)
        .envs(extra.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("a JSON line")
}

pub fn create_session(d: &Weaved, name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_weavectl"))
        .arg("--home")
        .arg(&d.home)
        .args(["session", "create", name])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_mcp_agents_hold_a_conversation_and_receipts_pass_every_state() {
    let d = Weaved::start();
    let s = create_session(&d, "pair");
    let seen = tokio::task::spawn_blocking({
        let (home, s) = (d.home.clone(), s.clone());
        move || run_script(&home, "mcp_conversation.py", &s, &[])
    })
    .await
    .unwrap();
    let tools: Vec<&str> = seen["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        tools,
        [
            "agents",
            "history",
            "inbox",
            "join",
            "relay",
            "relay_status",
            "reply",
            "search",
            "send",
            "task_result",
            "whoami"
        ]
    );
    // Schemas an LLM can follow: described, typed, required fields named.
    let send = &seen["send_schema"];
    assert_eq!(send["required"], serde_json::json!(["to", "text"]));
    assert!(send["properties"]["to"]["description"]
        .as_str()
        .unwrap()
        .contains("names"));
    // Joined by flags and by environment variables.
    assert_eq!(
        (seen["me"]["name"].as_str(), seen["me"]["session"].as_str()),
        (Some("Alice"), Some(s.as_str()))
    );
    assert_eq!(seen["bob_me"]["agent_id"], "bob");
    let agents = seen["agents"]["agents"].as_array().unwrap();
    assert!(agents
        .iter()
        .any(|a| a["name"] == "Bob" && a["presence"] == "online" && a["activity"] == "idle"));
    // The long poll returned with the message; it is shown once.
    let got = &seen["got"]["messages"][0];
    assert_eq!(
        (got["from_name"].as_str(), got["text"].as_str()),
        (Some("Alice"), Some("please review PR 7"))
    );
    assert_eq!(seen["again"]["messages"], serde_json::json!([]));
    // The reply reached Alice in the same conversation.
    let answer = &seen["answer"]["messages"][0];
    assert_eq!(
        (answer["kind"].as_str(), answer["text"].as_str()),
        (Some("reply"), Some("LGTM, merged"))
    );
    assert_eq!(answer["context_id"], got["context_id"]);
    assert_eq!(seen["followed"]["to"], "bob");
    // Errors are tool errors with the bus's code and a hint.
    assert_eq!(seen["unknown"]["error"]["code"], "unknown_agent");
    assert!(seen["unknown"]["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("agents"));
    assert_eq!(seen["bad_reply"]["error"]["code"], "unknown_message");
    // Search and history see the conversation.
    assert_eq!(seen["found"]["records"][0]["text"], "please review PR 7");
    assert!(seen["history"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["type"] != "receipt.updated"));

    // Every state, over HTTP: Bob read and answered Alice's message; Alice read Bob's reply
    // and answered it with her follow-up; the follow-up is delivered to Bob, not read.
    let receipts = |id: String| d.json_owned(format!("/api/sessions/{s}/messages/{id}"));
    let first = receipts(seen["message_id"].as_str().unwrap().to_owned()).await;
    assert_eq!(first["receipts"][0]["agent"], "bob");
    assert_eq!(first["receipts"][0]["state"], "answered");
    let reply = receipts(seen["replied"]["message_id"].as_str().unwrap().to_owned()).await;
    assert_eq!(reply["receipts"][0]["state"], "answered");
    let follow = seen["followed"]["message_id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        // Bob's MCP server has gone; the follow-up reached it before it went, or waits.
        let st = receipts(follow.clone()).await["receipts"][0]["state"].clone();
        if st == "delivered" || st == "queued" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "follow-up state {st}"
        );
    }
    // The transitions are in the log.
    let history = d
        .json(&format!("/api/sessions/{s}/events?limit=1000"))
        .await;
    let states: Vec<&str> = history["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["envelope"]["type"] == "receipt.updated")
        .filter(|r| {
            r["envelope"]["payload"]["messages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["id"] == seen["message_id"])
        })
        .map(|r| r["envelope"]["payload"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["delivered", "read", "answered"]);
    let missing = d
        .get(&format!("/api/sessions/{s}/messages/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
