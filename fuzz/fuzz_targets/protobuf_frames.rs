//! The socket's binary framing, fed arbitrary bytes in arbitrary chunks: the length-delimited
//! decoder never panics and never yields a frame over its limit, and whatever a frame holds,
//! turning it into an envelope either fails with a message or gives an envelope that encodes
//! back into a frame decoding to the same envelope.
#![no_main]

use bytes::BytesMut;
use codex_weave_transport_uds::Framing;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

const MAX: usize = 4096;

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (data, cuts) = input;
    let mut codec = Framing::Protobuf.codec(MAX);
    let mut buf = BytesMut::new();
    let mut rest = &data[..];
    let mut cuts = cuts.iter().map(|c| 1 + *c as usize);
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let n = cuts.next().unwrap_or(rest.len()).min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(!frame.is_empty() && frame.len() <= MAX);
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(_) => return, // an oversized frame ends the connection
            }
        }
    }
    // Also the whole input as one frame's content, so the envelope decoder sees every input.
    frames.push(BytesMut::from(&data[..]));
    for frame in frames {
        let Ok(env) = Framing::Protobuf.decode(&frame) else {
            continue;
        };
        let again = Framing::Protobuf.encode(&env);
        let mut again = BytesMut::from(&again[..]);
        let content = Framing::Protobuf
            .codec(usize::MAX >> 1)
            .decode(&mut again)
            .unwrap();
        match content {
            // An envelope with every field at its zero value encodes to an empty frame.
            None => assert_eq!(env, codex_weave_runtime::Envelope { v: 0, ..Default::default() }),
            Some(content) => {
                let back = Framing::Protobuf.decode(&content).expect("re-decodes");
                assert_eq!(back, env);
            }
        }
    }
});
