//! The socket protocol suite: the real `weave-bus` binary on a temporary home, driven over its
//! socket by the transport's client and by raw bytes. `WEAVE_TEST_FRAMING=protobuf` runs it
//! again with binary frames (`scripts/test` runs both). One test binary: one link, and every
//! test shares the machine's cores.

mod bad_input;
mod binary;
mod conversations;
mod crash;
mod crash_load;
mod delivery;
mod disk_full;
mod events;
mod faults;
mod golden;
mod home;
mod idempotency;
mod lifecycle;
mod payload;
mod queued_bytes;
mod receipts;
mod runtime;
mod signals;
