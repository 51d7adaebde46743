//! The socket's binary framing, fed arbitrary bytes in arbitrary chunks: the length-delimited
//! decoder never panics and never yields a frame over its limit, and whatever a frame holds,
//! turning it into an envelope either fails with a message or gives an envelope that encodes
//! back into a frame decoding to the same envelope.
#![no_main]

use bytes::BytesMut;
use codex_weave_transport_uds::Framing;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use weave_fuzz::decode_in_chunks;

const MAX: usize = 4096;

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (data, cuts) = input;
    let mut codec = Framing::Protobuf.codec(MAX);
    let mut frames = Vec::new();
    let fed = decode_in_chunks(&mut codec, &data, &cuts, |frame| {
        assert!(!frame.is_empty() && frame.len() <= MAX);
        frames.push(frame);
    });
    if fed.is_err() {
        return; // an oversized frame ends the connection
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
