//! The Weave test kit: what every test that drives the real binaries uses.
//!
//! - [`program`]: where the workspace's binaries are, refusing one older than its sources;
//!   [`Process`], a child killed when dropped, with SIGTERM and kill -9;
//! - [`BusProcess`]: `weave-bus` on a temporary home (or its own tmpfs); [`Weaved`]: `weaved`
//!   on a temporary home and a free port, with its token and login URL;
//! - [`Conn`]: a socket connection through the transport's client, in the suite's framing
//!   (`WEAVE_TEST_FRAMING`); [`RawConn`]: bytes on the socket as any client writes them;
//! - [`SseReader`]: Server-Sent Events read off a streaming response;
//! - [`Peaks`]: a process's resident memory and a file's size, at their highest during a test;
//! - [`Deadline`] and [`eventually`]: waiting for a condition with a bound, never a bare sleep;
//! - [`test_python`]: the Python with the MCP SDK and openapi-python-client;
//! - [`NatsCluster`]: a NATS JetStream cluster on loopback (Debian's `nats-server`).
//!
//! The suites live beside it: `bus/` (the socket protocol, against `weave-bus`), `daemon/`
//! (`weaved` and `weavectl`) and `cluster/` (what the cluster design relies on, against a real
//! NATS cluster). Build the binaries first: `cargo build --workspace --bins`
//! (`scripts/test` does).

mod backing;
mod bus;
mod clock;
mod conn;
mod cut;
mod nats;
mod peaks;
mod program;
mod python;
mod raw;
mod sse;
mod weaved;

use std::time::Duration;

pub use backing::cluster_mode;
pub use bus::{agent_options, framing, spawn_bus, BusProcess};
pub use clock::{eventually, Deadline};
pub use conn::{envelope, message, meta_weave, text_of, Conn};
pub use cut::Cuttable;
pub use nats::{NatsCluster, MAX_PAYLOAD};
pub use peaks::{rss_kb, Peak, Peaks};
pub use program::{program, Process};
pub use python::test_python;
pub use raw::{raw_agent, request_line, RawConn};
pub use sse::{SseEvent, SseReader};
pub use weaved::Weaved;

/// How long a test waits for anything it expects (a line, a response, a state).
pub const WAIT: Duration = Duration::from_secs(10);
