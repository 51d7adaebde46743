//! A repeated idempotency key (or envelope id) from the same sender gets the first response and
//! delivers nothing twice — also after a restart.

use std::time::Duration;

use serde_json::json;
use weave_test_kit::*;

#[tokio::test]
async fn repeated_key_or_id_returns_the_first_response_and_delivers_once_also_after_restart() {
    let mut bus = BusProcess::start();
    let (s, c, b) = bus.pair("s").await;
    drop(b); // b1 offline: its inbox counts what was queued

    let mut keyed = message(&s, "a1", "b1", "keyed");
    keyed.idempotency_key = Some("k-1".into());
    let first = c.call(keyed.clone()).await;
    let again = c.call(keyed.clone()).await; // new envelope id, same key
    assert_eq!(first.payload, again.payload);

    let mut by_id = message(&s, "a1", "b1", "same id");
    by_id.id = "fixed-envelope-id".into();
    let first_id = c.call(by_id.clone()).await;
    assert_eq!(c.call(by_id.clone()).await.payload, first_id.payload);

    let mut group = envelope(
        "action.submit",
        Some(&s),
        "a1",
        json!({
            "group_id": "g-1",
            "actions": [{ "type": "message", "dst": "b1", "action_id": "x", "action_index": 0, "text": "t", "kind": "user" }]
        }),
    );
    group.idempotency_key = Some("g-1".into());
    let g1 = c.call(group.clone()).await;
    assert_eq!(c.call(group.clone()).await.payload, g1.payload);

    bus.kill9();
    bus.spawn().unwrap();
    let c = bus.connect().await;
    c.add_agent(&s, "a1", "A").await;
    assert_eq!(c.call(keyed).await.payload, first.payload);
    assert_eq!(c.call(by_id).await.payload, first_id.payload);
    assert_eq!(c.call(group).await.payload, g1.payload);

    let mut b = bus.connect().await;
    let joined = b.add_agent(&s, "b1", "B").await;
    assert_eq!(joined.payload.unwrap()["queued"], 3);
    let mut texts = Vec::new();
    for _ in 0..3 {
        let d = b.next().await;
        texts.push(
            d.payload
                .unwrap()
                .get("text")
                .cloned()
                .unwrap_or(json!(d.kind)),
        );
    }
    assert_eq!(
        texts,
        [json!("keyed"), json!("same id"), json!("action.submit")]
    );
    b.none_of("message.send", Duration::from_millis(200)).await;
}

#[tokio::test]
async fn the_same_key_from_another_sender_is_a_different_request() {
    let bus = BusProcess::start();
    let c = bus.connect().await;
    let s = c.create_session("s").await;
    c.add_agent(&s, "a1", "A").await;
    c.add_agent(&s, "a2", "A2").await;
    let mut one = message(&s, "a1", "a2", "from a1");
    one.idempotency_key = Some("k".into());
    let mut two = message(&s, "a2", "a1", "from a2");
    two.idempotency_key = Some("k".into());
    let r1 = c.call(one).await.payload.unwrap();
    let r2 = c.call(two).await.payload.unwrap();
    assert_ne!(r1["id"], r2["id"]);
}
