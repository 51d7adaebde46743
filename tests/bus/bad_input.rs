//! Bad input gets a clear error and the connection stays usable; an oversized line closes it.
//! Raw bytes are written to the socket, as a broken client would.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use weave_test_kit::*;

fn code(v: &Value) -> &str {
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["src"], "weave");
    v["error"]["code"].as_str().unwrap()
}

#[tokio::test]
async fn every_kind_of_bad_line_gets_its_error_and_the_connection_stays_usable() {
    let bus = BusProcess::start();
    let c = bus.connect().await;
    let s = c.create_session("s").await;
    c.ok(
        "session.close",
        Some(&c.create_session("closed").await),
        "t",
        Value::Null,
    )
    .await;
    let closed = c
        .ok("session.list", None, "t", json!({ "include_closed": true }))
        .await
        .payload
        .unwrap()["sessions"][1]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut raw = RawConn::open(&bus).await;

    let cases: Vec<(Vec<u8>, &str, Option<&str>)> = vec![
        (b"{not json".to_vec(), "bad_request", None),
        (b"[1,2,3]".to_vec(), "bad_request", None),
        (b"\"a string\"".to_vec(), "bad_request", None),
        (b"{\"v\":1,\"id\":\"r1\",\"ts\":\"t\",\"src\":\"x\"}".to_vec(), "bad_request", Some("r1")),
        (b"{\"v\":1,\"type\":\"session.list\",\"ts\":\"t\",\"src\":\"x\"}".to_vec(), "bad_request", None),
        (b"{\"v\":2,\"type\":\"session.list\",\"id\":\"r2\"}".to_vec(), "unsupported_version", Some("r2")),
        (b"{\"type\":\"session.list\",\"id\":\"r3\"}".to_vec(), "unsupported_version", Some("r3")),
        (b"{\"v\":1,\"type\":\"nope.nope\",\"id\":\"r4\"}".to_vec(), "unknown_type", Some("r4")),
        (b"{\"v\":1,\"type\":\"session.list\",\"id\":\"r5\",\"seq\":\"not a number\"}".to_vec(), "bad_request", Some("r5")),
        (vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'], "bad_request", None),
        (br#"{"v":1,"type":"agent.add","id":"r6","session":"nope","src":"a","payload":{"id":"a"}}"#.to_vec(), "unknown_session", Some("r6")),
        (format!(r#"{{"v":1,"type":"agent.add","id":"r7","session":"{closed}","src":"a","payload":{{"id":"a"}}}}"#).into_bytes(), "session_closed", Some("r7")),
        (format!(r#"{{"v":1,"type":"message.send","id":"r8","session":"{s}","src":"ghost","dst":"x","payload":{{"text":"t"}}}}"#).into_bytes(), "unknown_agent", Some("r8")),
        (format!(r#"{{"v":1,"type":"agent.add","id":"r9","session":"{s}","src":"a","payload":{{"id":""}}}}"#).into_bytes(), "bad_request", Some("r9")),
        (br#"{"v":1,"type":"agent.list","id":"r10"}"#.to_vec(), "bad_request", Some("r10")),
    ];
    for (bytes, want, corr) in cases {
        let resp = raw.roundtrip(&bytes).await;
        assert_eq!(code(&resp), want, "for {}", String::from_utf8_lossy(&bytes));
        assert_eq!(
            resp["corr"].as_str(),
            corr,
            "corr for {}",
            String::from_utf8_lossy(&bytes)
        );
        assert!(resp["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }

    // Agent-level refusals.
    raw.roundtrip(format!(r#"{{"v":1,"type":"agent.add","id":"a","session":"{s}","src":"a1","payload":{{"id":"a1","name":"A"}}}}"#).as_bytes()).await;
    let resp = raw.roundtrip(format!(r#"{{"v":1,"type":"agent.update","id":"u1","session":"{s}","src":"a1","payload":{{"id":"b1","name":"B"}}}}"#).as_bytes()).await;
    assert_eq!(code(&resp), "forbidden");
    let resp = raw.roundtrip(format!(r#"{{"v":1,"type":"agent.update","id":"u2","session":"{s}","src":"a1","payload":{{"id":"a1","name":""}}}}"#).as_bytes()).await;
    assert_eq!(code(&resp), "bad_request");
    let resp = raw.roundtrip(format!(r#"{{"v":1,"type":"message.send","id":"m1","session":"{s}","src":"a1","dst":"nobody","payload":{{"text":"t"}}}}"#).as_bytes()).await;
    assert_eq!(code(&resp), "unknown_agent");
    let resp = raw.roundtrip(format!(r#"{{"v":1,"type":"message.send","id":"m2","session":"{s}","src":"a1","dst":"a1","payload":{{"no_text":1}}}}"#).as_bytes()).await;
    assert_eq!(code(&resp), "bad_request");

    // Still usable after all of it.
    let ok = raw
        .roundtrip(br#"{"v":1,"type":"session.list","id":"fine"}"#)
        .await;
    assert_eq!(ok["status"], "ok");
    assert_eq!(ok["corr"], "fine");
    // The bus is fine for everyone else too.
    c.ok("session.list", None, "t", Value::Null).await;
}

#[tokio::test]
async fn a_line_over_the_limit_gets_frame_too_large_and_the_connection_is_closed() {
    let bus = BusProcess::start_with(&["--max-line", "4096"]);
    let mut raw = RawConn::open(&bus).await;
    let big = format!(
        r#"{{"v":1,"type":"session.list","id":"big","pad":"{}"}}"#,
        "x".repeat(5000)
    );
    let resp = raw.roundtrip(big.as_bytes()).await;
    assert_eq!(code(&resp), "frame_too_large");
    assert_eq!(
        raw.read_line().await,
        "",
        "connection closed after frame_too_large"
    );
    // A line just under the limit is fine on a new connection.
    let mut raw = RawConn::open(&bus).await;
    let fits = format!(
        r#"{{"v":1,"type":"session.list","id":"fits","pad":"{}"}}"#,
        "x".repeat(3900)
    );
    assert_eq!(raw.roundtrip(fits.as_bytes()).await["status"], "ok");
}

#[tokio::test]
async fn message_ack_gets_no_reply_even_when_it_matches_nothing() {
    let bus = BusProcess::start();
    let mut raw = RawConn::open(&bus).await;
    raw.send(br#"{"v":1,"type":"message.ack","id":"k","session":"x","src":"y","corr":"z"}"#)
        .await;
    let resp = raw
        .roundtrip(br#"{"v":1,"type":"session.list","id":"after"}"#)
        .await;
    assert_eq!(resp["corr"], "after", "the ack got no reply");
}

#[tokio::test]
async fn half_written_line_then_disconnect_changes_nothing() {
    let bus = BusProcess::start();
    let c = bus.connect().await;
    let s = c.create_session("s").await;
    {
        let mut raw = RawConn::open(&bus).await;
        raw.writer
            .write_all(
                format!(r#"{{"v":1,"type":"session.close","id":"h","session":"{s}""#).as_bytes(),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = c
        .ok("session.get", Some(&s), "t", Value::Null)
        .await
        .payload
        .unwrap();
    assert_eq!(got["session"]["status"], "open");
}

#[tokio::test]
async fn inbox_full_when_an_agent_queue_reaches_its_limit() {
    let bus = BusProcess::start_with(&["--max-queue-per-agent", "3"]);
    let (s, c, b) = bus.pair("s").await;
    drop(b);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..3 {
        c.send(&s, "a1", "b1", &format!("{i}")).await;
    }
    let resp = c.call(message(&s, "a1", "b1", "one too many")).await;
    assert_eq!(resp.error.unwrap().code, "inbox_full");
}

#[tokio::test]
async fn connections_past_the_limit_get_limit_reached_and_are_closed() {
    let bus = BusProcess::start_with(&["--max-connections", "2"]);
    let one = bus.connect().await;
    let two = bus.connect().await;
    one.ok("session.list", None, "t", Value::Null).await;
    two.ok("session.list", None, "t", Value::Null).await;
    let mut third = RawConn::open(&bus).await;
    let refused = third.read().await;
    assert_eq!(code(&refused), "limit_reached");
    assert_eq!(third.read_line().await, "", "closed after limit_reached");
    // A slot frees when a connection closes. (A refused connection may also be reset before
    // its line is read, so any failure here just means "not yet".)
    drop(one);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (client, _events) = codex_weave_transport_uds::Client::connect(bus.socket())
            .await
            .unwrap();
        let list = envelope("session.list", None, "t", Value::Null);
        if let Ok(Ok(resp)) =
            tokio::time::timeout(Duration::from_secs(1), client.request(list)).await
        {
            if resp.error.is_none() {
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no slot freed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn agents_per_session_and_open_sessions_are_limited() {
    let bus = BusProcess::start_with(&["--max-agents-per-session", "2", "--max-sessions", "2"]);
    let c = bus.connect().await;
    let s = c.create_session("one").await;
    c.add_agent(&s, "a1", "A").await;
    c.add_agent(&s, "a2", "B").await;
    assert_eq!(
        c.err("agent.add", Some(&s), "a3", json!({ "id": "a3" }))
            .await,
        "limit_reached"
    );
    c.add_agent(&s, "a1", "A").await; // re-adding a registered agent is not a new one
    c.create_session("two").await;
    assert_eq!(
        c.err("session.create", None, "t", json!({ "name": "three" }))
            .await,
        "limit_reached"
    );
    c.ok("session.close", Some(&s), "t", Value::Null).await;
    c.create_session("three").await; // closed sessions do not count
}
