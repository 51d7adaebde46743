//! What the cluster design (`docs/weave/cluster.md`, issue 18) relies on, checked against a
//! real NATS JetStream cluster of three servers on loopback, with the `nats-server` this machine
//! has (Debian's 2.9.10 under `scripts/test`): appends fenced per session, submits counted once,
//! names taken once, leases that move only when they expire, deliveries in order per target
//! within a window, and nothing acknowledged lost when a server is killed. Each test skips,
//! saying so, where `nats-server` is not installed. `daemon.rs` drives `weave-bus --cluster`
//! itself (build the binaries first: `cargo build --workspace --bins`).

mod daemon;
mod daemons;
mod jetstream;
