//! The binary framing's own edges, against the real binary: the preamble, frames that are not
//! envelopes, a frame over the limit, a frame cut off by a disconnect, a full bus, and NDJSON
//! and protobuf clients talking to each other in one session. (The rest of the suite runs in
//! both framings: `WEAVE_TEST_FRAMING=protobuf`.)

use std::time::Duration;

use codex_weave_runtime::pb::PbEnvelope;
use codex_weave_transport_uds::{Client, Framing, PREAMBLE};
use prost::Message;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use weave_test_kit::*;

async fn connect(bus: &BusProcess, framing: Framing) -> Conn {
    Conn::open_with(&bus.socket(), framing).await
}

/// A raw socket that has sent the preamble and read it back.
async fn raw_binary(bus: &BusProcess) -> UnixStream {
    let mut raw = UnixStream::connect(bus.socket()).await.unwrap();
    raw.write_all(&PREAMBLE).await.unwrap();
    let mut echo = [0u8; PREAMBLE.len()];
    raw.read_exact(&mut echo).await.unwrap();
    assert_eq!(echo, PREAMBLE);
    raw
}

/// The next error response, its `corr` and code.
async fn next_error(conn: &mut Conn) -> (Option<String>, String) {
    let env = conn.next_of("response").await;
    (env.corr.clone(), env.error_code().unwrap().to_owned())
}

#[tokio::test]
async fn ndjson_and_protobuf_agents_exchange_the_same_envelopes() {
    let bus = BusProcess::start();
    let mut json_side = connect(&bus, Framing::Ndjson).await;
    let mut pb_side = connect(&bus, Framing::Protobuf).await;
    let s = json_side.create_session("s").await;
    json_side.add_agent(&s, "j", "Json").await;
    pb_side.add_agent(&s, "p", "Proto").await;
    let mut msg = message(&s, "j", "p", "to proto");
    msg.meta = Some(json!({ "trace": [1, "two", null] }));
    json_side.call(msg).await;
    pb_side.call(message(&s, "p", "j", "to json")).await;
    let at_pb = pb_side.next_of("message.send").await;
    let at_json = json_side.next_of("message.send").await;
    assert_eq!(text_of(&at_pb), "to proto");
    assert_eq!(text_of(&at_json), "to json");
    assert_eq!(
        at_pb.meta.as_ref().unwrap()["trace"],
        json!([1, "two", null])
    );
    assert!(meta_weave(&at_pb, "seq").is_some() && meta_weave(&at_json, "seq").is_some());
    // Both see one history, whatever their framing.
    let a = json_side
        .ok("events.history", Some(&s), "j", json!({}))
        .await
        .payload;
    let b = pb_side
        .ok("events.history", Some(&s), "p", json!({}))
        .await
        .payload;
    assert_eq!(a, b);
}

#[tokio::test]
async fn frames_that_are_not_envelopes_get_bad_request_and_the_connection_stays_usable() {
    let bus = BusProcess::start();
    let mut c = connect(&bus, Framing::Protobuf).await;
    c.client.send_raw(vec![0xff, 0xff, 0xff].into()).unwrap();
    let (corr, code) = next_error(&mut c).await;
    assert_eq!((corr, code.as_str()), (None, "bad_request"));
    // A well-formed message whose payload is not JSON: refused with its id as `corr`.
    let mut pb = PbEnvelope::from_envelope(&envelope("session.create", None, "t", json!({})));
    pb.id = "bad-payload".into();
    pb.payload_json = Some(b"{nope".to_vec());
    c.client.send_raw(pb.encode_to_vec().into()).unwrap();
    let (corr, code) = next_error(&mut c).await;
    assert_eq!(
        (corr.as_deref(), code.as_str()),
        (Some("bad-payload"), "bad_request")
    );
    // An empty frame is a keep-alive: no answer. Then a normal request still works.
    c.client.send_raw(Vec::new().into()).unwrap();
    c.create_session("after").await;
    c.none_of("response", Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_bad_preamble_gets_one_clear_error_line_then_the_connection_closes() {
    let bus = BusProcess::start();
    let mut raw = UnixStream::connect(bus.socket()).await.unwrap();
    raw.write_all(b"\0WEAVEP9").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, raw.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let line: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(line["error"]["code"], "bad_request", "{line}");
    assert!(
        line["error"]["message"]
            .as_str()
            .unwrap()
            .contains("preamble"),
        "{line}"
    );
}

#[tokio::test]
async fn a_frame_over_the_limit_gets_frame_too_large_and_the_connection_closes() {
    let bus = BusProcess::start_with(&["--max-line", "1024"]);
    let mut raw = raw_binary(&bus).await;
    raw.write_all(&2000u32.to_be_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, raw.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let len = u32::from_be_bytes(answer[..4].try_into().unwrap()) as usize;
    assert_eq!(answer.len(), 4 + len, "one frame, then the end");
    let env = PbEnvelope::decode(&answer[4..])
        .unwrap()
        .into_envelope()
        .unwrap();
    assert_eq!(env.error_code(), Some("frame_too_large"));
    assert!(env
        .error
        .unwrap()
        .message
        .contains("frame longer than 1024 bytes"));
}

#[tokio::test]
async fn a_half_written_frame_then_a_disconnect_is_dropped() {
    let bus = BusProcess::start();
    let (s, c, mut b) = bus.pair("s").await;
    let mut frame = Framing::Protobuf
        .encode(&message(&s, "a1", "b1", "never"))
        .to_vec();
    frame.pop();
    for cut in [2, 4, 10, frame.len()] {
        let mut raw = raw_binary(&bus).await;
        raw.write_all(&frame[..cut]).await.unwrap();
        drop(raw);
    }
    c.send(&s, "a1", "b1", "whole").await;
    assert_eq!(text_of(&b.next_of("message.send").await), "whole");
    b.none_of("message.send", Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_full_bus_refuses_a_protobuf_client_with_its_reason() {
    let bus = BusProcess::start_with(&["--max-connections", "1"]);
    let one = bus.connect().await;
    one.create_session("s").await;
    let err = Client::connect_with(bus.socket(), Framing::Protobuf)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("limit_reached"), "{err}");
}
