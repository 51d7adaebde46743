//! The binaries users run: `weaved` (bus + runtime + HTTP in one process) and `weavectl`
//! (a terminal client over the socket). Built in the daemon issue; empty until then.
