//! `weave-bus`: the bus with the runtime's rules (socket + store + runtime), no HTTP. Logs go to stderr
//! (`RUST_LOG`); one line on stdout says where it listens once it accepts connections.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// mimalloc: the engine allocates and frees many small envelopes per message; glibc's malloc
/// spent a measurable share of the engine's time consolidating free lists.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use weave_bus::{home, BusConfig, BusServer, Durability, Limits};

#[derive(Parser, Debug)]
#[command(
    name = "weave-bus",
    version,
    about = "The Weave bus on <home>/coord.sock"
)]
struct Args {
    /// Home directory (default: $WEAVE_HOME, else ~/.weave).
    #[arg(long)]
    home: Option<PathBuf>,
    /// `normal`: an ok survives kill -9 of the bus; `fsync`: it also survives power loss.
    #[arg(long, default_value = "normal")]
    durability: Durability,
    /// Longest accepted line, in bytes.
    #[arg(long)]
    max_line: Option<usize>,
    /// Simultaneous connections.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Open sessions.
    #[arg(long)]
    max_sessions: Option<usize>,
    /// Registered agents per session.
    #[arg(long)]
    max_agents_per_session: Option<usize>,
    /// Deliveries waiting per agent before senders get `inbox_full`.
    #[arg(long)]
    max_queue_per_agent: Option<usize>,
    /// Unacked deliveries per agent before the rest wait in its queue.
    #[arg(long)]
    max_inflight_per_agent: Option<usize>,
    /// Deliveries of one message in all before it is dead-lettered.
    #[arg(long)]
    max_deliver: Option<u32>,
    /// Bytes queued for one connection before it is paused.
    #[arg(long)]
    max_conn_buffer: Option<usize>,
    /// Seconds an idempotency key is kept at least.
    #[arg(long)]
    idempotency_ttl_secs: Option<u64>,
    /// Idempotency keys kept at most.
    #[arg(long)]
    max_idempotency_keys: Option<usize>,
    /// Records kept per session (older ones are pruned).
    #[arg(long)]
    retain_events: Option<u64>,
    /// Records written between two snapshots of the runtime's state (bounds replay at start).
    #[arg(long)]
    snapshot_every: Option<u64>,
    /// Loop guard: a message at hop max_hops + 1 of its causal chain is stopped.
    #[arg(long, default_value_t = 16)]
    max_hops: u32,
    /// Loop guard: the new-work message completing this many strict alternations between two
    /// agents in one chain is stopped.
    #[arg(long, default_value_t = 6)]
    max_ping_pong: u32,
    /// Conversations, message references, loop-guard nodes and runs, and relays the runtime
    /// remembers across all sessions; past it the oldest are forgotten.
    #[arg(long, default_value_t = codex_weave_runtime::DEFAULT_MEMORY_BUDGET)]
    runtime_memory: usize,
}

fn limits(args: &Args) -> Limits {
    let mut l = Limits::default();
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = args.$f { l.$f = v; } )* };
    }
    set!(
        max_line,
        max_connections,
        max_sessions,
        max_agents_per_session,
        max_queue_per_agent,
        max_inflight_per_agent,
        max_deliver,
        max_conn_buffer,
        max_idempotency_keys,
        retain_events,
        snapshot_every
    );
    if let Some(s) = args.idempotency_ttl_secs {
        l.idempotency_ttl = Duration::from_secs(s);
    }
    l
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "weave_bus=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let home = match home::resolve_home(args.home.as_deref()) {
        Ok(home) => home,
        Err(e) => {
            eprintln!("weave-bus: {e}");
            return ExitCode::from(2);
        }
    };
    let mut cfg = BusConfig::new(home);
    cfg.durability = args.durability;
    cfg.limits = limits(&args);
    cfg.runtime.max_hops = args.max_hops;
    cfg.runtime.max_ping_pong = args.max_ping_pong;
    cfg.runtime.memory_budget = args.runtime_memory;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weave-bus: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let shutdown = weave_bus::shutdown_signal();
        let server = match BusServer::bind(cfg) {
            Ok(server) => server,
            Err(e) => {
                eprintln!("weave-bus: {e}");
                return ExitCode::FAILURE;
            }
        };
        #[allow(clippy::print_stdout)]
        {
            println!("weave-bus listening on {}", server.socket_path().display());
        }
        server.run(shutdown).await;
        ExitCode::SUCCESS
    })
}
