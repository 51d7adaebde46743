//! Weave's Unix-socket transport: the framing codecs (NDJSON, one envelope per `\n`-terminated
//! line; or, after a preamble, length-delimited protobuf frames) and the async client that
//! terminal agents, `weavectl`, tests and benchmarks use to talk to the bus; and what every
//! client of a home shares with the bus: where the home is (`home`), console lines a closed pipe
//! cannot hurt (`console`), and stopping on a signal (`signals`).

pub mod agent;
pub mod client;
pub mod codec;
pub mod console;
pub mod frame;
pub mod home;
pub mod signals;
pub mod time;

pub use agent::{Agent, AgentOptions, Delivery};
pub use client::{Client, ClientError};
pub use codec::{CodecError, NdjsonCodec, DEFAULT_MAX_LINE};
pub use codex_weave_runtime::{Ack, AckMode, Envelope, ErrorBody, Record, Status};
pub use frame::{BadFrame, FrameCodec, Framing, PREAMBLE};
pub use signals::shutdown_signal;

/// The socket file inside a Weave home.
pub const SOCKET_FILE: &str = "coord.sock";
