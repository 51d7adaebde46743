//! `weavectl mcp` driven by a real MCP client — the official Python SDK (`mcp` from PyPI, in
//! the virtualenv `scripts/test` makes: `WEAVE_TEST_PYTHON`, else `target/py/bin/python`) — as
//! stock agents use it: two MCP agents converse; receipts go through every state; errors carry
//! the bus's code and a hint.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use weave_test_kit::*;

/// The Python that has the MCP SDK.
pub fn python() -> PathBuf {
    test_python("mcp", "the Python MCP SDK")
}

/// Runs a script of `tests/daemon/py/` against the daemon with `SESSION` set; its last stdout line is
/// JSON.
pub fn run_script(
    home: &std::path::Path,
    script: &str,
    session: &str,
    extra: &[(&str, &str)],
) -> Value {
    let out = Command::new(python())
        .arg(format!("{}/daemon/py/{script}", env!("CARGO_MANIFEST_DIR")))
        .env("WEAVECTL", program("weavectl"))
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
    let out = Command::new(program("weavectl"))
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
            "receipts",
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
    // The sender's own view of its message: answered by Bob.
    assert_eq!(seen["receipts"]["receipts"][0]["agent"], "bob");
    assert_eq!(seen["receipts"]["receipts"][0]["state"], "answered");
    // The loop guard covers MCP agents as it covers socket agents.
    assert_eq!(
        seen["stopped"]["error"]["code"], "loop_suppressed",
        "{}",
        seen["stopped"]
    );
    assert!(seen["stopped"]["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("do not answer acknowledgements"));
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

/// `weavectl agent run` as a child process, killed when dropped.
pub struct Runner(std::process::Child);

impl Runner {
    pub fn start(home: &std::path::Path, session: &str, name: &str, command: &[&str]) -> Runner {
        let child = Command::new(program("weavectl"))
            .arg("--home")
            .arg(home)
            .args([
                "agent",
                "run",
                "--session",
                session,
                "--name",
                name,
                "--timeout",
                "60s",
                "--",
            ])
            .args(command)
            .stdin(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Runner(child)
    }

    pub fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Whether it exits by itself within `limit`.
    pub fn exits_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn worker() -> String {
    format!("{}/daemon/py/worker.py", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_agent_relays_to_a_headless_runner_and_receives_its_result() {
    let d = Weaved::start();
    let s = create_session(&d, "relay");
    let py = python();
    let _runner = Runner::start(&d.home, &s, "Runner", &[py.to_str().unwrap(), &worker()]);
    let seen = tokio::task::spawn_blocking({
        let (home, s) = (d.home.clone(), s.clone());
        move || run_script(&home, "mcp_relay.py", &s, &[])
    })
    .await
    .unwrap();
    assert_eq!(seen["plan"]["status"], "accepted", "{}", seen["plan"]);
    let step = seen["plan"]["targets"]["runner"]["actions"][0]["action_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Busy while its command ran, with what it was doing.
    assert_eq!(seen["busy"]["activity"], "busy");
    assert!(seen["busy"]["doing"]
        .as_str()
        .unwrap()
        .contains("build the docs"));
    assert_eq!(seen["idle"]["activity"], "idle");
    // Its stdout came back as the step's result, with the message's context in its environment.
    let result = &seen["results"][0]["payload"];
    assert_eq!(
        (result["status"].as_str(), result["action_id"].as_str()),
        (Some("completed"), Some(step.as_str()))
    );
    let detail = result["detail"].as_str().unwrap();
    assert!(detail.starts_with("done: SLOW: BUILD THE DOCS"), "{detail}");
    let context: Value = serde_json::from_str(detail.lines().last().unwrap()).unwrap();
    assert_eq!(context["WEAVE_SESSION"], s.as_str());
    assert_eq!(context["WEAVE_AGENT"], "Runner");
    assert_eq!(context["WEAVE_FROM"], "Owner");
    assert_eq!(context["WEAVE_MESSAGE_ID"], step.as_str());
    assert_eq!(context["WEAVE_RELAY_ID"], "docs");
    assert_eq!(context["WEAVE_CONTEXT_ID"], "docs:runner");
    // relay_status: the step answered, its result listed.
    let relay = &seen["status"]["relays"][0];
    assert_eq!(relay["receipts"][0]["state"], "answered");
    assert_eq!(relay["answers"][0]["step"], step.as_str());
    // A plain message is answered with the stdout; a failing command with its stderr's tail.
    let reply = &seen["reply"][0];
    assert_eq!(reply["kind"], "reply");
    assert!(reply["text"]
        .as_str()
        .unwrap()
        .starts_with("done: HELLO RUNNER"));
    let failed = seen["failed"][0]["text"].as_str().unwrap();
    assert!(
        failed.starts_with("error: exit status 3: warming up\nthe build broke at step 4"),
        "{failed}"
    );
    assert_eq!(seen["finish"]["status"], "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_that_crashes_mid_command_gets_the_message_again_and_answers_it_once() {
    use codex_weave_transport_uds::{Agent, AgentOptions};
    let d = Weaved::start();
    let s = create_session(&d, "crash");
    let py = python();
    let mut runner = Runner::start(&d.home, &s, "Runner", &[py.to_str().unwrap(), &worker()]);
    let mut asker = Agent::connect(AgentOptions::new(d.socket(), &s, "asker").name("Asker"))
        .await
        .unwrap();
    // Wait until the runner is there, then give it slow work and kill it while it runs.
    wait_agent(&d, &s, "runner", "status", "online").await;
    let sent = asker.send_text("runner", "slow job").await.unwrap();
    let id = sent.payload.unwrap()["id"].as_str().unwrap().to_owned();
    wait_agent(&d, &s, "runner", "activity", "busy").await;
    runner.kill9();
    // Not acked, so not lost: the next runner gets it again and answers it.
    let _again = Runner::start(&d.home, &s, "Runner", &[py.to_str().unwrap(), &worker()]);
    let reply = asker
        .recv_kind(&["message.send"], std::time::Duration::from_secs(20))
        .await
        .expect("a reply");
    assert!(
        reply.text().unwrap().starts_with("done: SLOW JOB"),
        "{:?}",
        reply.text()
    );
    assert_eq!(
        reply.0.payload.as_ref().unwrap()["parent_message_id"],
        id.as_str()
    );
    assert!(
        asker
            .recv_kind(&["message.send"], std::time::Duration::from_secs(3))
            .await
            .is_none(),
        "answered once"
    );
    let receipts = d.json(&format!("/api/sessions/{s}/messages/{id}")).await;
    assert_eq!(receipts["receipts"][0]["state"], "answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_past_its_timeout_is_killed_and_answered_with_an_error() {
    use codex_weave_transport_uds::{Agent, AgentOptions};
    let d = Weaved::start();
    let s = create_session(&d, "timeout");
    let py = python();
    let child = Command::new(program("weavectl"))
        .arg("--home")
        .arg(&d.home)
        .args([
            "agent",
            "run",
            "--session",
            &s,
            "--name",
            "Sleeper",
            "--timeout",
            "1s",
            "--",
        ])
        .arg(&py)
        .arg(worker())
        .env("WORKER_SLOW_S", "30")
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _runner = Runner(child);
    let mut asker = Agent::connect(AgentOptions::new(d.socket(), &s, "asker").name("Asker"))
        .await
        .unwrap();
    wait_agent(&d, &s, "sleeper", "status", "online").await;
    asker.send_text("sleeper", "slow one").await.unwrap();
    let reply = asker
        .recv_kind(&["message.send"], std::time::Duration::from_secs(15))
        .await
        .expect("an answer");
    assert_eq!(reply.text(), Some("error: timed out after 1 s"));
}

/// Waits until agent `id` of session `s` shows `field` = `value` over HTTP.
pub async fn wait_agent(d: &Weaved, s: &str, id: &str, field: &str, value: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let agents = d.json(&format!("/api/sessions/{s}/agents")).await;
        if agents["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == id && a[field] == value)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} never had {field} {value}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
