//! The socket's line decoder, fed arbitrary bytes in arbitrary chunks: it never panics, never
//! yields a line longer than its limit or containing `\n`, and what it yields (plus what it
//! refused) accounts for the input in order.
#![no_main]

use bytes::BytesMut;
use codex_weave_transport_uds::NdjsonCodec;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

const MAX: usize = 64;

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (data, cuts) = input;
    let mut codec = NdjsonCodec::new(MAX);
    let mut buf = BytesMut::new();
    let mut rest = &data[..];
    let mut cuts = cuts.iter().map(|c| 1 + *c as usize);
    let mut lines = 0usize;
    while !rest.is_empty() {
        let n = cuts.next().unwrap_or(rest.len()).min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(line)) => {
                    assert!(line.len() <= MAX, "a line over the limit");
                    assert!(!line.contains(&b'\n'));
                    lines += 1;
                }
                Ok(None) => break,
                Err(_) => return, // an oversized line ends the connection
            }
        }
    }
    if let Ok(Some(line)) = codec.decode_eof(&mut buf) {
        assert!(line.len() <= MAX && !line.contains(&b'\n'));
        lines += 1;
    }
    assert!(lines <= data.iter().filter(|b| **b == b'\n').count() + 1);
});
