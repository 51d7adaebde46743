//! Weave's Unix-socket transport: the NDJSON framing codec (one envelope per `\n`-terminated
//! line, with a maximum line length) and the async client that terminal agents, `weavectl`,
//! tests and benchmarks use to talk to the bus.

pub mod agent;
pub mod client;
pub mod codec;
pub mod time;

pub use agent::{Agent, AgentOptions, Delivery};
pub use client::{Client, ClientError};
pub use codec::{CodecError, NdjsonCodec, DEFAULT_MAX_LINE};
pub use codex_weave_runtime::{Ack, AckMode, Envelope, ErrorBody, Record, Status};

/// The socket file inside a Weave home.
pub const SOCKET_FILE: &str = "coord.sock";
