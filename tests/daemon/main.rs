//! The daemon suite: the real `weaved` and `weavectl` — socket and HTTP serving one brain,
//! SSE, the web routes, MCP through the official Python SDK, hooks with each agent's documented
//! input, install, the headless runner, compatibility with unchanged clients and the faults a
//! daily user meets.

mod agents;
mod compat;
mod daemon;
mod hooks;
mod install;
mod live;
mod mcp;
mod openapi_client;
mod people;
mod security;
mod slow_readers;
mod sse;
mod weavectl;
