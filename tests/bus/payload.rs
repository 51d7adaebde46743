//! A message's payload reaches its receiver, and the log, as the sender wrote it: the same JSON
//! text (key order, number literals), with only the conversation keys the bus adds in front.
//! What parsing it as a value would refuse is still refused. Raw NDJSON lines on both sides,
//! as a client in any language writes and reads them.

use serde_json::value::RawValue;
use serde_json::Value;
use weave_test_kit::*;

/// Sends a request line and returns its response.
async fn call(conn: &mut RawConn, line: &str) -> Value {
    conn.send(line.as_bytes()).await;
    serde_json::from_str(&conn.next_of("response").await).unwrap()
}

/// A session with agent `a1` on one raw connection and `b1` on another.
async fn raw_pair(bus: &BusProcess, name: &str) -> (String, RawConn, RawConn) {
    let s = bus.connect().await.create_session(name).await;
    let mut conns = Vec::new();
    for id in ["a1", "b1"] {
        let mut conn = RawConn::open(bus).await;
        let add = format!(
            r#"{{"v":1,"type":"agent.add","id":"add-{id}","ts":"t","src":"{id}","session":"{s}","payload":{{"id":"{id}"}}}}"#
        );
        assert_eq!(call(&mut conn, &add).await["status"], "ok");
        conns.push(conn);
    }
    let b = conns.pop().unwrap();
    let a = conns.pop().unwrap();
    (s, a, b)
}

fn send_line(session: &str, id: &str, payload: &str) -> String {
    format!(
        r#"{{"v":1,"type":"message.send","id":"{id}","ts":"t","src":"a1","session":"{session}","dst":"b1","payload":{payload}}}"#
    )
}

/// The payload's JSON text in a line.
fn payload_text(line: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Line<'a> {
        #[serde(borrow)]
        payload: &'a RawValue,
    }
    serde_json::from_str::<Line<'_>>(line)
        .expect("a line with a payload")
        .payload
        .get()
        .to_owned()
}

#[tokio::test]
async fn a_payload_arrives_as_the_sender_wrote_it_with_its_conversation_in_front() {
    let bus = BusProcess::start();
    let (s, mut a, mut b) = raw_pair(&bus, "payload").await;

    // Key order, spacing inside, and number literals a float would round.
    let sent = r#"{"z": [1.10, 2e3], "text":"h\u00e9","n":0.30000000000000000001,"big":123456789012345678901234567890}"#;
    let ok = call(&mut a, &send_line(&s, "m1", sent)).await;
    assert_eq!(ok["status"], "ok", "{ok}");
    let delivered = b.next_of("message.send").await;
    assert_eq!(
        payload_text(&delivered),
        format!(r#"{{"context_id":"m1","owner_id":"a1",{}"#, &sent[1..])
    );

    // Keys the sender set are not stamped again; the log holds what was delivered.
    let own = r#"{"text":"again","context_id":"m1"}"#;
    assert_eq!(
        call(&mut a, &send_line(&s, "m2", own)).await["status"],
        "ok"
    );
    let delivered = b.next_of("message.send").await;
    assert_eq!(
        payload_text(&delivered),
        r#"{"owner_id":"a1","text":"again","context_id":"m1"}"#
    );
    let m2 = recorded(&bus, &s, "m2").await;
    assert_eq!(m2["payload"]["owner_id"], "a1");
}

/// The recorded envelope of message `id`, from `events.history`.
async fn recorded(bus: &BusProcess, session: &str, id: &str) -> Value {
    let history = bus
        .connect()
        .await
        .ok(
            "events.history",
            Some(session),
            "tester",
            serde_json::json!({}),
        )
        .await;
    let records = history.payload.unwrap()["records"].clone();
    records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["envelope"]["id"] == id)
        .unwrap_or_else(|| panic!("{id} recorded"))["envelope"]
        .clone()
}

/// A sender's own `meta.weave.seq`, `redelivered` and `delivery_count` stay in the record, but a
/// delivery carries the bus's: a first delivery cannot be made to look like a redelivery. The
/// rest of the sender's meta is delivered, beside the bus's own stamps.
#[tokio::test]
async fn a_delivery_carries_the_bus_delivery_keys_not_the_senders() {
    let bus = BusProcess::start();
    let (s, mut a, mut b) = raw_pair(&bus, "meta").await;
    let forged =
        r#"{"app":1,"weave":{"seq":999,"redelivered":true,"delivery_count":7,"mine":"k"}}"#;
    let line = format!(
        r#"{{"v":1,"type":"message.send","id":"f1","ts":"t","src":"a1","session":"{s}","dst":"b1","payload":{{"text":"x"}},"meta":{forged}}}"#
    );
    let ok = call(&mut a, &line).await;
    assert_eq!(ok["status"], "ok", "{ok}");
    let seq = ok["payload"]["seq"].as_u64().expect("the record's seq");

    let delivered: Value = serde_json::from_str(&b.next_of("message.send").await).unwrap();
    let meta = &delivered["meta"];
    assert_eq!(meta["weave"]["seq"], seq, "{meta}");
    assert_eq!(meta["weave"].get("redelivered"), None, "{meta}");
    assert_eq!(meta["weave"].get("delivery_count"), None, "{meta}");
    assert_eq!(meta["weave"]["mine"], "k");
    assert_eq!(meta["weave"]["origin_src_name"], "a1");
    assert_eq!(meta["app"], 1);

    let weave = recorded(&bus, &s, "f1").await["meta"]["weave"].clone();
    assert_eq!(
        (&weave["seq"], &weave["redelivered"]),
        (&999.into(), &true.into())
    );
    assert_eq!(weave["delivery_count"], 7);
}

#[tokio::test]
async fn a_payload_a_value_would_refuse_is_refused_and_a_repeated_key_counts_once() {
    let bus = BusProcess::start();
    let (s, mut a, mut b) = raw_pair(&bus, "bad payloads").await;

    let deep = format!(
        r#"{{"text":"x","deep":{}{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    for (id, payload, why) in [
        ("r1", r#"{"text":"x","n":1e400}"#, "number out of range"),
        ("r2", r#"{"text":5}"#, "payload.text"),
        ("r3", r#"[{"text":"x"}]"#, "payload.text"),
        ("r4", deep.as_str(), "recursion limit"),
    ] {
        let resp = call(&mut a, &send_line(&s, id, payload)).await;
        assert_eq!(resp["status"], "error", "{id}: {resp}");
        assert_eq!(resp["error"]["code"], "bad_request", "{id}: {resp}");
        let message = resp["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{id}: {message}");
    }

    // A key twice: the last one counts (as when read as a value); the payload is written anew.
    let twice = r#"{"text":"first","text":"last"}"#;
    assert_eq!(
        call(&mut a, &send_line(&s, "d1", twice)).await["status"],
        "ok"
    );
    let delivered = b.next_of("message.send").await;
    let payload: Value = serde_json::from_str(&payload_text(&delivered)).unwrap();
    assert_eq!(payload["text"], "last");
    assert_eq!(payload["context_id"], "d1");
}
