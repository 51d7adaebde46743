//! People in conversations through `weavectl`: two people chat in `weavectl join` without the
//! loop guard stopping them, a person answers, approves or denies a relay step and the relay
//! proceeds, and the one-shot commands (reply, inbox --wait, history, relay, login,
//! completions, --json errors, a closed pipe) behave as documented.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "{:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A `weavectl join` in a pipe: what it prints, line by line, and what is typed into it.
struct Chat {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl Chat {
    fn join(d: &Weaved, session: &str, name: &str) -> Chat {
        let mut child = Command::new(program("weavectl"))
            .arg("--home")
            .arg(&d.home)
            .args(["join", session, "--name", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Chat {
            child,
            stdin,
            lines,
        }
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The next printed line containing `want`; fails on a refusal printed before it.
    fn expect(&self, want: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("never printed `{want}`"));
            assert!(
                !line.contains("refused"),
                "refused while waiting for `{want}`: {line}"
            );
            if line.contains(want) {
                return line;
            }
        }
    }

    fn leave(mut self) {
        drop(self.stdin);
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "join did not leave on Ctrl-D");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn new_session(d: &Weaved, name: &str) -> String {
    ok(&weavectl(&d.home, &["session", "create", name]))
        .trim()
        .to_owned()
}

#[test]
fn two_people_in_weavectl_join_alternate_twenty_replies_without_the_loop_guard() {
    let d = Weaved::start();
    let s = new_session(&d, "chat");
    let mut ann = Chat::join(&d, &s, "Ann");
    let mut bob = Chat::join(&d, &s, "Bob");
    // Both are in: Bob's agent exists before Ann addresses him.
    let deadline = Instant::now() + WAIT;
    while !ok(&weavectl(&d.home, &["agent", "list", &s])).contains("bob") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    ann.say("#bob shall we pair on the parser?");
    bob.expect("Ann: shall we pair on the parser?");
    for i in 1..=20 {
        // Plain text answers the last message, inside its conversation.
        let text = format!("turn {i}");
        if i % 2 == 1 {
            bob.say(&text);
            ann.expect(&format!("Bob replies: {text}"));
        } else {
            ann.say(&text);
            bob.expect(&format!("Ann: {text}"));
        }
    }
    let agents = ok(&weavectl(&d.home, &["--json", "agent", "list", &s]));
    let kinds: Vec<Value> = agents
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["kind"].clone())
        .collect();
    assert_eq!(
        kinds,
        [json!("human"), json!("human")],
        "people join as kind human"
    );
    ann.leave();
    bob.leave();
}

async fn relay_to(owner: &Agent, s: &str, relay_id: &str, person: &str, text: &str) {
    let mut env = Envelope::new("relay.submit", String::new(), String::new(), "");
    env.session = Some(s.to_owned());
    env.payload = Some(json!({
        "relay_id": relay_id,
        "actions": [{ "type": "message", "dst": person, "text": text, "expects_reply": true }]
    }));
    let r = owner.request(env).await.unwrap();
    assert_eq!(r.error, None);
    assert_eq!(r.payload.unwrap()["status"], "accepted");
}

fn relay_status(d: &Weaved, s: &str, relay_id: &str) -> Value {
    serde_json::from_str(&ok(&weavectl(
        &d.home,
        &["--json", "relay", "status", "--session", s, relay_id],
    )))
    .unwrap()
}

fn wait_answered(d: &Weaved, s: &str, relay_id: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = relay_status(d, s, relay_id);
        if r["actions"][0]["answered"] == true {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "relay {relay_id}'s step never answered: {r}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_answers_approves_and_denies_relay_steps_in_weavectl_join() {
    let d = Weaved::start();
    let s = new_session(&d, "review");
    let mut ann = Chat::join(&d, &s, "Ann");
    ann.say("/inbox");
    ann.expect("nothing waits on you");
    let mut owner = Agent::connect(AgentOptions::new(d.socket(), &s, "lead").name("Lead"))
        .await
        .unwrap();
    // Ann's answer releases the step held behind a wait on her: the relay proceeds.
    let mut dev = Agent::connect(AgentOptions::new(d.socket(), &s, "dev").name("Dev"))
        .await
        .unwrap();
    let mut env = Envelope::new("relay.submit", String::new(), String::new(), "");
    env.session = Some(s.clone());
    env.payload = Some(json!({
        "relay_id": "r1",
        "actions": [
            { "type": "message", "dst": "ann", "text": "is the API naming right?", "expects_reply": true },
            { "type": "wait", "targets": ["ann"] },
            { "type": "message", "dst": "dev", "text": "rename as Ann says", "expects_reply": true }
        ]
    }));
    assert_eq!(
        owner.request(env).await.unwrap().payload.unwrap()["status"],
        "accepted"
    );
    ann.expect("[1] Lead asks (relay r1");
    ann.say("/answer 1 yes, ship it");
    let answer = owner.recv_kind(&["message.send"], WAIT).await.unwrap();
    assert_eq!(answer.text(), Some("yes, ship it"));
    let held = dev.recv_kind(&["action.submit"], WAIT).await.unwrap();
    assert_eq!(
        held.0.payload.as_ref().unwrap()["actions"][0]["text"],
        "rename as Ann says"
    );
    let r1 = relay_status(&d, &s, "r1");
    assert_eq!(r1["actions"][0]["answered"], true, "{r1}");

    relay_to(&owner, &s, "r2", "ann", "may I deploy?").await;
    ann.expect("[2] Lead asks (relay r2");
    ann.say("/approve");
    let result = owner.recv_kind(&["action.result"], WAIT).await.unwrap();
    assert_eq!(result.0.payload.as_ref().unwrap()["status"], "completed");
    wait_answered(&d, &s, "r2");

    relay_to(&owner, &s, "r3", "ann", "may I drop the table?").await;
    ann.expect("[3] Lead asks (relay r3");
    ann.say("/deny 3 not on a Friday");
    let result = owner.recv_kind(&["action.result"], WAIT).await.unwrap();
    let p = result.0.payload.as_ref().unwrap();
    assert_eq!(
        (p["status"].as_str(), p["detail"].as_str()),
        (Some("rejected"), Some("not on a Friday"))
    );
    ann.leave();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_commands_reply_inbox_history_relay_and_refuse_a_live_agent() {
    let d = Weaved::start();
    let s = new_session(&d, "ops");
    let mut bob = Agent::connect(AgentOptions::new(d.socket(), &s, "bob").name("Bob"))
        .await
        .unwrap();
    // Ann exists (offline): she sent something once.
    ok(&weavectl(
        &d.home,
        &["send", "ops", "--as", "Ann", "--to", "bob", "morning"],
    ));
    bob.recv_kind(&["message.send"], WAIT).await.unwrap();
    // inbox --wait blocks until something arrives for her.
    let waiting = Command::new(program("weavectl"))
        .arg("--home")
        .arg(&d.home)
        .args([
            "--json",
            "inbox",
            "--session",
            &s[..8],
            "--as",
            "Ann",
            "--wait",
            "20",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let sent = bob
        .send_text("ann", "can you check the \u{1b}[31mred\u{1b}[0m build?")
        .await
        .unwrap();
    let id = sent.payload.unwrap()["id"].as_str().unwrap().to_owned();
    let out = waiting.wait_with_output().unwrap();
    assert!(out.status.success());
    let item: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(
        (item["id"].as_str(), item["from"].as_str()),
        (Some(id.as_str()), Some("bob"))
    );
    // Shown to a person, the escape sequences are escaped.
    let human = ok(&weavectl(
        &d.home,
        &["inbox", "--session", "ops", "--as", "ann"],
    ));
    assert!(
        human.contains("\\u{1b}[31mred") && !human.contains('\u{1b}'),
        "{human}"
    );
    // reply answers inside the conversation.
    ok(&weavectl(
        &d.home,
        &["reply", "--session", "ops", "--as", "Ann", &id, "on it"],
    ));
    let answer = bob.recv_kind(&["message.send"], WAIT).await.unwrap();
    let p = answer.0.payload.as_ref().unwrap();
    assert_eq!(
        (p["text"].as_str(), p["parent_message_id"].as_str()),
        (Some("on it"), Some(id.as_str()))
    );
    // history, in pages.
    let page = ok(&weavectl(
        &d.home,
        &["--json", "history", "ops", "--limit", "2"],
    ));
    let seqs: Vec<u64> = page
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [1, 2]);
    // Acting as a live agent is refused, with a JSON error for scripts; --force does it.
    let refused = weavectl(
        &d.home,
        &[
            "--json", "send", "ops", "--as", "Bob", "--to", "ann", "I am Bob",
        ],
    );
    assert_eq!(refused.status.code(), Some(1));
    let err: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(err["error"]["code"], "agent_online");
    let usage = weavectl(&d.home, &["--json", "send", "ops"]);
    assert_eq!(usage.status.code(), Some(2));
    let err: Value = serde_json::from_slice(&usage.stdout).unwrap();
    assert_eq!(err["error"]["code"], "usage");
    let unknown = weavectl(&d.home, &["--json", "history", "no-such-session"]);
    assert_eq!(unknown.status.code(), Some(1));
    let err: Value = serde_json::from_slice(&unknown.stdout).unwrap();
    assert_eq!(err["error"]["code"], "unknown_session");
    // A relay from flags: a step for Bob, then its status, then cancelled.
    let submitted = ok(&weavectl(
        &d.home,
        &[
            "--json",
            "relay",
            "submit",
            "--session",
            "ops",
            "--as",
            "Ann",
            "--relay-id",
            "rel-1",
            "--step",
            "bob: rotate the keys",
            "--step",
            "wait: bob",
            "--step",
            "bob: confirm",
        ],
    ));
    assert_eq!(
        serde_json::from_str::<Value>(submitted.trim()).unwrap()["status"],
        "accepted"
    );
    let step = bob.recv_kind(&["action.submit"], WAIT).await.unwrap();
    assert_eq!(
        step.0.payload.as_ref().unwrap()["actions"][0]["text"],
        "rotate the keys"
    );
    assert_eq!(relay_status(&d, &s, "rel-1")["status"], "active");
    let human = ok(&weavectl(
        &d.home,
        &["relay", "status", "--session", "ops", "rel-1"],
    ));
    assert!(
        human.contains("relay rel-1 (active) by ann") && human.contains("bob"),
        "{human}"
    );
    ok(&weavectl(
        &d.home,
        &["relay", "cancel", "--session", "ops", "rel-1"],
    ));
    assert_eq!(relay_status(&d, &s, "rel-1")["status"], "cancelled");
    // Bob runs in a client whose secret weavectl does not keep: even --force cannot take him.
    let forced = weavectl(
        &d.home,
        &[
            "--json",
            "send",
            "ops",
            "--as",
            "Bob",
            "--to",
            "ann",
            "--force",
            "still Bob",
        ],
    );
    assert_eq!(forced.status.code(), Some(1));
    let err: Value = serde_json::from_slice(&forced.stdout).unwrap();
    assert_eq!(err["error"]["code"], "agent_busy");
}

/// `--force` takes over an agent that another weavectl runs (here the headless runner): the
/// runner kept the agent's secret in the home, the one-shot command presents it, and the
/// runner, displaced, stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_takes_over_an_agent_another_weavectl_runs() {
    let d = Weaved::start();
    let s = crate::mcp::create_session(&d, "ops");
    let mut runner = crate::mcp::Runner::start(&d.home, &s, "Runner", &["cat"]);
    crate::mcp::wait_agent(&d, &s, "runner", "status", "online").await;
    let secrets = d.home.join("agent-secrets").join(&s);
    assert!(
        secrets.join("runner").is_file(),
        "the runner kept its secret"
    );
    let forced = weavectl(
        &d.home,
        &[
            "send", "ops", "--as", "Runner", "--to", "runner", "--force", "mine now",
        ],
    );
    ok(&forced);
    assert!(
        runner.exits_within(Duration::from_secs(10)),
        "the displaced runner stops"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_gives_a_fresh_one_time_url_and_completions_print() {
    let d = Weaved::start();
    let url = ok(&weavectl(&d.home, &["login"]))
        .lines()
        .next()
        .unwrap()
        .to_owned();
    assert!(url.starts_with(&format!("{}/login?code=", d.base)), "{url}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let first = client.get(&url).send().await.unwrap();
    assert!(first.status().is_redirection(), "{}", first.status());
    assert!(first.headers().get("set-cookie").is_some());
    let again = client.get(&url).send().await.unwrap();
    assert_eq!(again.status(), 401, "a code works once");
    let text = again.text().await.unwrap();
    assert!(
        text.contains("weavectl login"),
        "the refusal says how to get in: {text}"
    );
    let json: Value =
        serde_json::from_str(ok(&weavectl(&d.home, &["--json", "login"])).trim()).unwrap();
    assert_eq!(json["expires_in_secs"], 600);
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&weavectl(&d.home, &["completions", shell]));
        assert!(
            script.contains("weavectl") && script.contains("relay"),
            "{shell}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_output_pipe_ends_a_command_quietly_with_status_zero() {
    let d = Weaved::start();
    let s = new_session(&d, "pipe");
    let a = Agent::connect(AgentOptions::new(d.socket(), &s, "a").name("A"))
        .await
        .unwrap();
    let _b = Agent::connect(AgentOptions::new(d.socket(), &s, "b").name("B"))
        .await
        .unwrap();
    // `weavectl tail s | head -1`.
    let mut tail = Command::new(program("weavectl"))
        .arg("--home")
        .arg(&d.home)
        .args(["tail", &s])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(tail.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    drop(out);
    for i in 0..200 {
        a.send_text("b", &format!("line {i}")).await.unwrap();
    }
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = tail.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "tail kept running into a closed pipe"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut err = String::new();
    tail.stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The person's inbox over HTTP: `GET .../inbox?waiting=true` lists what waits on them,
/// `POST .../actions/{action_id}/result` approves a step (the relay proceeds and it waits no
/// more), `POST .../inbox/read` marks a message read, which still waits until it is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_over_http_sees_what_waits_approves_a_step_and_reads_a_message() {
    let d = Weaved::start();
    let s = new_session(&d, "review");
    let reg = d
        .post(
            &format!("/api/sessions/{s}/agents"),
            json!({ "name": "Pat", "kind": "human", "id": "pat" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(reg.status(), 201);
    let mut owner = Agent::connect(AgentOptions::new(d.socket(), &s, "lead").name("Lead"))
        .await
        .unwrap();
    relay_to(&owner, &s, "r1", "pat", "may I deploy?").await;
    let inbox = format!("/api/sessions/{s}/agents/pat/inbox");
    let waits = |d: &Weaved, path: String| {
        let d = d.get(&path);
        async move {
            let resp = d.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()
        }
    };
    let deadline = Instant::now() + WAIT;
    let step = loop {
        let w = waits(&d, format!("{inbox}?waiting=true")).await;
        if w["total"] == 1 {
            break w["messages"][0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the step never waited on Pat: {w}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let group = &step["envelope"];
    assert_eq!(group["type"], "action.submit");
    let action_id = step["id"].as_str().unwrap();
    let approve = d
        .post(
            &format!("/api/sessions/{s}/actions/{action_id}/result"),
            json!({
                "from": "pat", "to": "lead", "status": "completed", "detail": "approved",
                "group_id": group["payload"]["group_id"], "action_index": 0
            }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(approve.status(), 202);
    let sent: Value = approve.json().await.unwrap();
    assert!(sent["seq"].as_u64().is_some(), "{sent}");
    let result = owner.recv_kind(&["action.result"], WAIT).await.unwrap();
    let p = result.0.payload.as_ref().unwrap();
    assert_eq!(
        (p["status"].as_str(), p["detail"].as_str()),
        (Some("completed"), Some("approved"))
    );
    assert!(
        !result.0.ts.is_empty(),
        "an HTTP agent's envelope carries its time"
    );
    wait_answered(&d, &s, "r1");
    let w = waits(&d, format!("{inbox}?waiting=true")).await;
    assert_eq!(w["total"], 0, "an approved step waits no more: {w}");

    // A message: unread, then read — and still waiting on an answer.
    let mut env = Envelope::new("message.send", String::new(), String::new(), "lead");
    env.session = Some(s.clone());
    env.dst = Some("pat".into());
    env.payload = Some(json!({ "text": "lunch?" }));
    let id = owner.request(env).await.unwrap().payload.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let unread = waits(&d, inbox.clone()).await;
    assert_eq!(unread["messages"][0]["id"], id.as_str(), "{unread}");
    let read = d
        .post(&format!("{inbox}/read"), json!({ "ids": [id] }))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(read.json::<Value>().await.unwrap()["read"], json!([id]));
    assert_eq!(waits(&d, inbox.clone()).await["total"], 0);
    let w = waits(&d, format!("{inbox}?waiting=true")).await;
    assert_eq!(
        (w["total"].as_u64(), w["messages"][0]["state"].as_str()),
        (Some(1), Some("read"))
    );
    // Bad input is a clear 400, not a guess.
    let bad = d
        .post(
            &format!("/api/sessions/{s}/actions/{action_id}/result"),
            json!({ "from": "pat" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad = d
        .post(&format!("{inbox}/read"), json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    drop(owner);
}
