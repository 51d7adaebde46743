//! `weave-bus`: the bus with the runtime's rules (socket + store + runtime), no HTTP. Logs go to stderr
//! (`RUST_LOG`); one line on stdout says where it listens once it accepts connections.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the engine allocates and frees many small envelopes per message; glibc's malloc
/// spent a measurable share of the engine's time consolidating free lists.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use weave_bus::console::{complain, init_logs, say};
use weave_bus::{home, BusConfig, BusServer, Durability, LimitFlags};

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
    /// Start with an empty store although this home had one that is now missing or empty
    /// (refused without it: pending work would be lost silently).
    #[arg(long)]
    new_store: bool,
    #[command(flatten)]
    limits: LimitFlags,
    #[command(flatten, next_help_heading = "Cluster (NATS JetStream)")]
    cluster: weave_bus::ClusterFlags,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let _logs = init_logs("weave_bus=info");
    let home = match home::resolve_home(args.home.as_deref()) {
        Ok(home) => home,
        Err(e) => {
            complain(format_args!("weave-bus: {e}"));
            return ExitCode::from(2);
        }
    };
    let mut cfg = BusConfig::new(home);
    cfg.durability = args.durability;
    cfg.new_store = args.new_store;
    if let Err(e) = args.cluster.apply(&mut cfg) {
        complain(format_args!("weave-bus: {e}"));
        return ExitCode::from(2);
    }
    if let Err(e) = args.limits.apply(&mut cfg) {
        complain(format_args!("weave-bus: {e}"));
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            complain(format_args!(
                "weave-bus: cannot start the async runtime: {e}"
            ));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let shutdown = weave_bus::shutdown_signal();
        let server = match BusServer::bind(cfg).await {
            Ok(server) => server,
            Err(e) => {
                complain(format_args!("weave-bus: {e}"));
                return ExitCode::FAILURE;
            }
        };
        say(format_args!(
            "weave-bus listening on {}",
            server.socket_path().display()
        ));
        server.run(shutdown).await;
        ExitCode::SUCCESS
    })
}
