//! Normalization: every record maps to a `RuntimeEvent` (with its seq and stable id) and back
//! to the very same record.

use codex_weave_runtime::{Envelope, EventRecord, Record, RuntimeEvent};
use proptest::prelude::*;
use serde_json::{json, Value};

fn record(kind: &str, payload: Option<Value>) -> Record {
    let mut envelope: Envelope =
        Envelope::new(kind, "id-1".into(), "2026-01-01T00:00:00Z".into(), "weave");
    envelope.session = Some("s".into());
    envelope.dst = Some("a".into());
    envelope.payload = payload;
    Record {
        seq: 7,
        ts: "2026-01-01T00:00:01Z".into(),
        envelope,
    }
}

#[test]
fn runtime_events_are_typed_and_round_trip() {
    let cases = [
        (
            "relay.done",
            json!({ "relay_id": "r", "owner_id": "o", "status": "done", "summary": "ok" }),
        ),
        (
            "task.updated",
            json!({ "task_id": "t", "relay_id": "r", "agent_id": "a", "owner_id": "o", "context_id": "c", "status": "running" }),
        ),
        (
            "task.done",
            json!({ "task_id": "t", "relay_id": "r", "agent_id": "a", "owner_id": "o", "context_id": "c" }),
        ),
        (
            "loop.suppressed",
            json!({ "message_id": "m", "from": "a", "to": ["b"], "owner_id": "a", "chain_id": "m0", "hop": 17, "rule": "max_hops", "limit": 16 }),
        ),
        (
            "relay.accepted",
            json!({ "relay_id": "r", "owner_id": "o", "accepted": { "status": "accepted" } }),
        ),
    ];
    for (kind, payload) in cases {
        let r = record(kind, Some(payload));
        let e = EventRecord::from_record(&r);
        assert!(
            !matches!(e.event, RuntimeEvent::Bus { .. }),
            "{kind} is typed"
        );
        assert_eq!((e.seq, e.id.as_str()), (7, "id-1"));
        assert_eq!(e.to_record(), r);
    }
}

#[test]
fn a_malformed_runtime_payload_is_kept_not_dropped() {
    let r = record("relay.done", Some(json!({ "nonsense": true })));
    let e = EventRecord::from_record(&r);
    assert!(matches!(e.event, RuntimeEvent::Bus { .. }));
    assert_eq!(e.to_record(), r);
}

proptest! {
    #[test]
    fn any_bus_record_round_trips(
        kind in "(message\\.send|action\\.submit|agent\\.added|session\\.created|[a-z]{1,8}\\.[a-z]{1,8})",
        text in ".{0,20}",
        n in any::<i64>(),
    ) {
        let r = record(&kind, Some(json!({ "text": text, "n": n, "nested": { "list": [1, 2] } })));
        prop_assert_eq!(EventRecord::from_record(&r).to_record(), r);
    }
}
