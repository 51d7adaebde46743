//! `weave-bus --cluster`: a daemon's store lives in the NATS cluster. What a daemon
//! acknowledged survives the daemon (kill -9, its home gone) and one of three NATS servers
//! (kill -9 mid-run): a daemon started on a fresh home with the same `--cluster` delivers every
//! acknowledged message once, in order.

use serde_json::{json, Value};
use weave_test_kit::*;

/// Sends message `n` to Bob until the bus acknowledges it (a commit can be refused while the
/// cluster elects a new stream leader); the idempotency key makes a retry count once.
async fn send_acknowledged(owner: &Conn, s: &str, n: usize) {
    let deadline = Deadline::after(std::time::Duration::from_secs(30));
    loop {
        let mut env = message(s, "o1", "Bob", &format!("note {n}"));
        env.idempotency_key = Some(format!("note-{n}"));
        let answer = owner.call(env).await;
        if answer.error.is_none() {
            return;
        }
        deadline.tick(&format!("note {n} acknowledged")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_on_a_fresh_home_delivers_what_a_killed_one_acknowledged() {
    let Some(mut cluster) = NatsCluster::start(3).await else {
        return;
    };
    let urls = cluster.urls();
    let args = ["--cluster", urls.as_str(), "--cluster-name", "takeover"];
    let mut first = BusProcess::start_with(&args);
    let admin = first.connect().await;
    let s = admin.create_session("across").await;
    let owner = first.connect().await;
    owner.add_agent(&s, "o1", "Owner").await;
    let bob = first.connect().await;
    bob.add_agent(&s, "b1", "Bob").await;
    drop(bob);
    admin.wait_status(&s, "b1", "offline").await;
    for n in 0..40 {
        if n == 20 {
            cluster.kill9(0);
        }
        send_acknowledged(&owner, &s, n).await;
    }
    first.kill9();
    drop((admin, owner));

    // Another daemon, a fresh home: the session, Bob, and the 40 notes, once and in order.
    let second = BusProcess::start_with(&args);
    let mut bob = second.connect().await;
    let added = bob
        .ok(
            "agent.add",
            Some(&s),
            "b1",
            json!({ "id": "b1", "name": "Bob" }),
        )
        .await;
    assert_eq!(added.payload.unwrap_or(Value::Null)["queued"], 40);
    for n in 0..40 {
        let got = bob.next_of("message.send").await;
        assert_eq!(text_of(&got), format!("note {n}"));
        bob.ack(&s, "b1", &got);
    }
    bob.none_of("message.send", std::time::Duration::from_millis(300))
        .await;
}
