//! The wire envelope parser (what the bus runs on every line), fed arbitrary bytes: it never
//! panics, and whatever it accepts encodes and parses back to the same envelope.
#![no_main]

use codex_weave_runtime::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(env) = serde_json::from_slice::<Envelope>(data) else {
        return;
    };
    let text = serde_json::to_vec(&env).expect("an accepted envelope encodes");
    let again: Envelope = serde_json::from_slice(&text).expect("its encoding parses");
    assert_eq!(
        serde_json::to_value(&again).unwrap(),
        serde_json::to_value(&env).unwrap()
    );
});
