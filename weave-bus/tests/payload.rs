//! A message's payload reaches its receiver, and the log, as the sender wrote it: the same JSON
//! text (key order, number literals), with only the conversation keys the bus adds in front.
//! What parsing it as a value would refuse is still refused. Raw NDJSON lines on both sides,
//! as a client in any language writes and reads them.

mod common;

use common::*;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

struct RawConn {
    reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
}

impl RawConn {
    async fn open(bus: &BusProcess) -> RawConn {
        let (r, w) = UnixStream::connect(bus.socket())
            .await
            .unwrap()
            .into_split();
        RawConn {
            reader: BufReader::new(r),
            writer: w,
        }
    }

    async fn send(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).await.unwrap();
        self.writer.write_all(b"\n").await.unwrap();
    }

    /// The next line of `kind`, as written.
    async fn next_of(&mut self, kind: &str) -> String {
        loop {
            let mut line = String::new();
            tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
                .await
                .expect("a line in time")
                .unwrap();
            let v: Value = serde_json::from_str(&line).expect("a JSON line");
            if v["type"] == kind {
                return line;
            }
        }
    }

    /// Sends a request and returns its response.
    async fn call(&mut self, line: &str) -> Value {
        self.send(line).await;
        serde_json::from_str(&self.next_of("response").await).unwrap()
    }

    async fn add_agent(&mut self, session: &str, id: &str) {
        let add = format!(
            r#"{{"v":1,"type":"agent.add","id":"add-{id}","ts":"t","src":"{id}","session":"{session}","payload":{{"id":"{id}"}}}}"#
        );
        assert_eq!(self.call(&add).await["status"], "ok");
    }
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
    let s = bus.connect().await.create_session("payload").await;
    let mut a = RawConn::open(&bus).await;
    a.add_agent(&s, "a1").await;
    let mut b = RawConn::open(&bus).await;
    b.add_agent(&s, "b1").await;

    // Key order, spacing inside, and number literals a float would round.
    let sent = r#"{"z": [1.10, 2e3], "text":"h\u00e9","n":0.30000000000000000001,"big":123456789012345678901234567890}"#;
    let ok = a.call(&send_line(&s, "m1", sent)).await;
    assert_eq!(ok["status"], "ok", "{ok}");
    let delivered = b.next_of("message.send").await;
    assert_eq!(
        payload_text(&delivered),
        format!(r#"{{"context_id":"m1","owner_id":"a1",{}"#, &sent[1..])
    );

    // Keys the sender set are not stamped again; the log holds what was delivered.
    let own = r#"{"text":"again","context_id":"m1"}"#;
    assert_eq!(a.call(&send_line(&s, "m2", own)).await["status"], "ok");
    let delivered = b.next_of("message.send").await;
    assert_eq!(
        payload_text(&delivered),
        r#"{"owner_id":"a1","text":"again","context_id":"m1"}"#
    );
    let history = bus
        .connect()
        .await
        .ok("events.history", Some(&s), "tester", serde_json::json!({}))
        .await;
    let records = history.payload.unwrap()["records"].clone();
    let m2 = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["envelope"]["id"] == "m2")
        .expect("m2 recorded")
        .clone();
    assert_eq!(m2["envelope"]["payload"]["owner_id"], "a1");
}

#[tokio::test]
async fn a_payload_a_value_would_refuse_is_refused_and_a_repeated_key_counts_once() {
    let bus = BusProcess::start();
    let s = bus.connect().await.create_session("bad payloads").await;
    let mut a = RawConn::open(&bus).await;
    a.add_agent(&s, "a1").await;
    let mut b = RawConn::open(&bus).await;
    b.add_agent(&s, "b1").await;

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
        let resp = a.call(&send_line(&s, id, payload)).await;
        assert_eq!(resp["status"], "error", "{id}: {resp}");
        assert_eq!(resp["error"]["code"], "bad_request", "{id}: {resp}");
        let message = resp["error"]["message"].as_str().unwrap();
        assert!(message.contains(why), "{id}: {message}");
    }

    // A key twice: the last one counts (as when read as a value); the payload is written anew.
    let twice = r#"{"text":"first","text":"last"}"#;
    assert_eq!(a.call(&send_line(&s, "d1", twice)).await["status"], "ok");
    let delivered = b.next_of("message.send").await;
    let payload: Value = serde_json::from_str(&payload_text(&delivered)).unwrap();
    assert_eq!(payload["text"], "last");
    assert_eq!(payload["context_id"], "d1");
}
