//! `weaved` in daily use: its logs and console lines going to a pipe that closes or fills can
//! neither kill nor wedge it, SIGTERM always stops it, and every bus limit is a flag and a key
//! of its config file.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use codex_weave_transport_uds::{Agent, AgentOptions, Client, Envelope};
use serde_json::json;
use weave_test_kit::*;

const STOP_WITHIN: Duration = Duration::from_secs(5);

/// Waits until the daemon's socket answers, for tests that do not read its stdout.
async fn connect_when_ready(d: &Weaved) -> Client {
    let start = Instant::now();
    loop {
        if let Ok((c, _events)) = Client::connect(d.socket()).await {
            return c;
        }
        assert!(start.elapsed() < WAIT, "weaved never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn new_session(c: &Client) -> String {
    let mut env = Envelope::new("session.create", String::new(), String::new(), "op");
    env.payload = Some(json!({ "name": "daily" }));
    c.request(env).await.unwrap().session.unwrap()
}

fn manual_acks(mut opts: AgentOptions) -> AgentOptions {
    opts.auto_ack = false;
    opts
}

/// `count` messages from one agent to another, each received and acked.
async fn traffic(d: &Weaved, count: usize) {
    let admin = connect_when_ready(d).await;
    let s = new_session(&admin).await;
    let a = Agent::connect(AgentOptions::new(d.socket(), &s, "a").name("A"))
        .await
        .unwrap();
    let mut b = Agent::connect(manual_acks(
        AgentOptions::new(d.socket(), &s, "b").name("B"),
    ))
    .await
    .unwrap();
    for i in 0..count {
        let sent = a.send_text("b", &format!("m{i}")).await.unwrap();
        assert_eq!(sent.error, None);
        let got = b.recv_kind(&["message.send"], WAIT).await.unwrap();
        assert_eq!(got.text(), Some(format!("m{i}").as_str()));
        b.ack(&got).unwrap();
    }
}

/// `weaved 2>&1 | head -1`: the reader takes one line and goes away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weaved_piped_into_head_serves_and_stops_on_sigterm() {
    let mut d = Weaved::unstarted(&[], None);
    let (read, write) = nix::unistd::pipe().unwrap();
    let child = d
        .command()
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(write.try_clone().unwrap()))
        .stderr(Stdio::from(write))
        .spawn()
        .unwrap();
    d.adopt(child);
    let mut first = String::new();
    BufReader::new(File::from(read))
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty(), "weaved writes a first line");
    // The reader is gone: every line from here on meets a broken pipe.
    traffic(&d, 100).await;
    assert_eq!(
        d.terminate_within(STOP_WITHIN),
        Some(0),
        "a clean stop in time"
    );
    assert!(
        !d.socket().exists(),
        "the socket is removed on a clean stop"
    );
}

/// Both pipes closed before it starts: nothing it prints can be read, ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weaved_with_closed_stdout_and_stderr_serves_and_stops_on_sigterm() {
    let mut d = Weaved::unstarted(&[], None);
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let child = d
        .command()
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(write.try_clone().unwrap()))
        .stderr(Stdio::from(write))
        .spawn()
        .unwrap();
    d.adopt(child);
    traffic(&d, 100).await;
    assert_eq!(d.terminate_within(STOP_WITHIN), Some(0));
}

/// A reader that stays but never reads: the pipe fills (64 KiB) and a blocking write would
/// stall the thread that logs. Log lines are dropped instead; traffic and shutdown go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_reader_that_never_reads_does_not_stall_weaved() {
    let mut d = Weaved::unstarted(&[], None);
    let (_kept_unread, write) = nix::unistd::pipe().unwrap();
    let child = d
        .command()
        .env("RUST_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(Stdio::from(write))
        .spawn()
        .unwrap();
    d.adopt(child);
    traffic(&d, 300).await;
    assert_eq!(d.terminate_within(STOP_WITHIN), Some(0));
}

async fn third_message_code(d: &Weaved) -> Vec<Option<String>> {
    let admin = connect_when_ready(d).await;
    let s = new_session(&admin).await;
    let a = Agent::connect(AgentOptions::new(d.socket(), &s, "a").name("A"))
        .await
        .unwrap();
    // b is online and acks nothing: what it was sent stays unacked, counted in its queue.
    let _b = Agent::connect(manual_acks(
        AgentOptions::new(d.socket(), &s, "b").name("B"),
    ))
    .await
    .unwrap();
    let mut codes = Vec::new();
    for i in 0..3 {
        let r = a.send_text("b", &format!("m{i}")).await.unwrap();
        codes.push(r.error.map(|e| e.code));
    }
    codes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bus_limits_are_weaved_flags_and_config_keys_and_a_flag_wins() {
    let inbox_full = Some("inbox_full".to_owned());
    // From the config file: two deliveries wait for b (unacked), the third is refused.
    let d = Weaved::start_with(&[], Some("max_queue_per_agent = 2\n"));
    assert_eq!(
        third_message_code(&d).await,
        [None, None, inbox_full.clone()]
    );
    // The flag wins over the file.
    let d = Weaved::start_with(
        &["--max-queue-per-agent", "1"],
        Some("max_queue_per_agent = 5\n"),
    );
    assert_eq!(
        third_message_code(&d).await,
        [None, inbox_full.clone(), inbox_full]
    );
}

fn refused_start(args: &[&str], config: Option<&str>) -> (Option<i32>, String) {
    let d = Weaved::unstarted(args, config);
    let out = d.command().output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_limit_stops_weaved_at_start_with_an_error_naming_it() {
    let (code, err) = refused_start(&["--max-deliver", "0"], None);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("max_deliver") && err.contains("at least 1"),
        "{err}"
    );
    let (code, err) = refused_start(&[], Some("max_inflight = 3\n"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("max_inflight"), "{err}");
    let (code, err) = refused_start(&[], Some("max_deliver = \"many\"\n"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("max_deliver") || err.contains("invalid type"),
        "{err}"
    );
    let help = std::process::Command::new(program("weaved"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for flag in [
        "--max-inflight-per-agent",
        "--max-conn-buffer",
        "--retain-events",
        "--max-ping-pong",
    ] {
        assert!(help.contains(flag), "--help shows {flag}");
    }
}
