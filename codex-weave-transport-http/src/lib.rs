//! Weave's HTTP/SSE facade: an axum router over the in-process `weave_bus::Bus` handle that
//! serves the very records the socket serves. Built in the daemon issue; empty until then.
