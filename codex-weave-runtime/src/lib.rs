//! Weave's bottom layer, free of IO: the wire v1 envelope and record types every transport
//! encodes, the error vocabulary, and the runtime — the one brain that decides conversation
//! ownership, relay lifecycles and the loop guard for every client, whatever its transport.
//!
//! `Runtime::handle(input) -> Vec<Output>`: the bus feeds it validated requests and applies
//! what comes out. Nothing here does IO, reads a clock or draws randomness.

pub mod error;
pub mod event;
pub mod guard;
mod ids;
mod memory;
pub mod model;
mod pairs;
pub mod pb;
pub mod receipt;
pub mod runtime;
pub mod wire;

pub use error::ErrorCode;
pub use event::{EventRecord, RuntimeEvent};
pub use memory::DEFAULT_MEMORY_BUDGET;
pub use model::{
    ActionType, AgentId, Conversation, MessageKind, Relay, RelayStatus, ResultStatus, TaskStatus,
};
pub use receipt::ReceiptState;
pub use runtime::relay::RelayReply;
pub use runtime::{Input, Message, Output, Runtime, RuntimeConfig, Stamp};
pub use wire::{
    check_json, Ack, AckMode, Envelope, ErrorBody, RawRequest, Record, Status, BUS_SRC,
    WIRE_VERSION,
};
