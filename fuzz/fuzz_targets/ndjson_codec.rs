//! The socket's line decoder, fed arbitrary bytes in arbitrary chunks: it never panics, never
//! yields a line longer than its limit or containing `\n`, and what it yields (plus what it
//! refused) accounts for the input in order.
#![no_main]

use codex_weave_transport_uds::NdjsonCodec;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use weave_fuzz::decode_in_chunks;

const MAX: usize = 64;

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (data, cuts) = input;
    let mut codec = NdjsonCodec::new(MAX);
    let mut lines = 0usize;
    let fed = decode_in_chunks(&mut codec, &data, &cuts, |line| {
        assert!(line.len() <= MAX, "a line over the limit");
        assert!(!line.contains(&b'\n'));
        lines += 1;
    });
    // An oversized line ends the connection.
    let Ok(mut buf) = fed else { return };
    if let Ok(Some(line)) = codec.decode_eof(&mut buf) {
        assert!(line.len() <= MAX && !line.contains(&b'\n'));
        lines += 1;
    }
    assert!(lines <= data.iter().filter(|b| **b == b'\n').count() + 1);
});
