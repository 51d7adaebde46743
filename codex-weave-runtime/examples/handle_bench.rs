//! The runtime alone, as the bus's throughput run drives it: one agent sends new work to
//! another, message after message, each id a fresh UUID-like string.
//!
//!     cargo run --release -p codex-weave-runtime --example handle_bench -- 300000 [memory budget]

#![allow(clippy::print_stdout)]

use std::time::Instant;

use codex_weave_runtime::{Input, Message, MessageKind, Runtime, RuntimeConfig};

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(300_000);
    let budget = std::env::args().nth(2).and_then(|n| n.parse().ok());
    let mut runtime = Runtime::new(RuntimeConfig {
        memory_budget: budget.unwrap_or(codex_weave_runtime::DEFAULT_MEMORY_BUDGET),
        ..RuntimeConfig::default()
    });
    // Ids shaped like the bus's (36-character UUID text), made up front so only the runtime is timed.
    let ids: Vec<String> = (0..count)
        .map(|i| {
            format!(
                "{:08x}-0000-4000-8000-{:012x}",
                i.wrapping_mul(2_654_435_761),
                i
            )
        })
        .collect();
    let started = Instant::now();
    for id in ids {
        runtime.handle(Input::Message(Message {
            session: "2f6c1a52-8d7e-4c1b-9a55-0d3e6f1b2c4d".into(),
            id,
            from: "a".into(),
            to: vec!["b".into()],
            kind: MessageKind::User,
            context_id: None,
            parent_message_id: None,
            reply_to_action_id: None,
        }));
    }
    let elapsed = started.elapsed();
    println!(
        "{count} messages in {:.1} ms: {:.2} µs per message, {} remembered",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / count as f64,
        runtime.remembered()
    );
}
