//! Stock agents join Weave: as an MCP server (`weavectl mcp`, [`mcp`]), through their own hooks
//! (`weavectl hook` and `weavectl install`, [`hooks`], [`install`]), or as a headless command run
//! per message (`weavectl agent run`, [`runner`]). Each is a plain client of the socket
//! ([`link`]); the bus knows nothing of MCP or hooks. [`inbox`] is what they share of a message.

pub mod doctor;
pub mod hooks;
pub mod inbox;
pub mod install;
pub mod link;
pub mod mcp;
pub mod runner;
pub mod secrets;
