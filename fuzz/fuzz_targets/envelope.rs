//! The wire envelope parser, fed arbitrary bytes: it never panics, and whatever it accepts
//! encodes and parses back to the same envelope. What the bus runs on every line (the payload
//! kept as the JSON text it came in) refuses exactly what it refuses and holds the same payload.
#![no_main]

use codex_weave_runtime::Envelope;
use codex_weave_transport_uds::Framing;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let raw = Framing::Ndjson.decode_request(data);
    let Ok(env) = serde_json::from_slice::<Envelope>(data) else {
        assert!(raw.is_err(), "the bus accepted a line a parser refuses");
        return;
    };
    let raw = raw.expect("the bus refused a line a parser accepts");
    let payload = raw
        .payload
        .map(|p| serde_json::from_str::<Value>(p.get()).expect("a kept payload parses"));
    assert_eq!(payload, env.payload);
    let text = serde_json::to_vec(&env).expect("an accepted envelope encodes");
    let again: Envelope = serde_json::from_slice(&text).expect("its encoding parses");
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&env).unwrap()
    );
});
