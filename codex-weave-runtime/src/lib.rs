//! Weave's bottom layer, free of IO: the wire v1 envelope and record types every transport
//! encodes, and the error vocabulary shared by the socket and (later) HTTP.
//!
//! The relay / ownership / loop-guard state machine lands here in the runtime issue; until then
//! this crate holds only plain data so that the bus, the client and the tests agree on one shape.

pub mod error;
pub mod wire;

pub use error::ErrorCode;
pub use wire::{Ack, AckMode, Envelope, ErrorBody, Record, Status, BUS_SRC, WIRE_VERSION};
