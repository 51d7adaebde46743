//! `weaved`: the Weave daemon — bus, runtime and HTTP/SSE in one process, one per home.
//! Prints the socket path, the HTTP address and a one-time login URL on stdout; logs go to
//! stderr (`RUST_LOG`). A closed stdout or stderr is ignored (see `weave_bus::console`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use weave_bus::console::{complain, init_logs, say};
use weave_bus::{Durability, LimitFlags};
use weave_codex_daemon::{config, Daemon, Flags};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "weaved",
    version,
    about = "The Weave daemon: bus + runtime + HTTP/SSE"
)]
struct Args {
    /// Home directory (else $WEAVE_HOME, else ~/.weave).
    #[arg(long)]
    home: Option<PathBuf>,
    /// HTTP address (else $WEAVE_HTTP_ADDR, else `http_addr` in <home>/config.toml, else 127.0.0.1:8787; port 0 picks one).
    #[arg(long)]
    http: Option<String>,
    /// `normal` or `fsync` (else `durability` in config.toml, else normal).
    #[arg(long)]
    durability: Option<Durability>,
    /// Start with an empty store although this home had one that is now missing or empty
    /// (refused without it: pending work would be lost silently).
    #[arg(long)]
    new_store: bool,
    /// Every limit below is also a key of <home>/config.toml, named with underscores
    /// (`max_queue_per_agent = 500`); a flag wins over the file.
    #[command(
        flatten,
        next_help_heading = "Limits (flag, or key of <home>/config.toml)"
    )]
    limits: LimitFlags,
    /// Also keys of <home>/config.toml (`cluster = "nats://…"`); a flag wins over the file.
    #[command(
        flatten,
        next_help_heading = "Cluster (NATS JetStream; flag, or key of <home>/config.toml)"
    )]
    cluster: weave_bus::ClusterFlags,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let _logs = init_logs("weave_bus=info,weave_codex_daemon=info");
    raise_open_file_limit();
    let flags = Flags {
        home: args.home,
        http: args.http,
        durability: args.durability,
        new_store: args.new_store,
        limits: args.limits,
        cluster: args.cluster,
    };
    let cfg = match config::resolve(&flags) {
        Ok(cfg) => cfg,
        Err(e) => {
            complain(format_args!("weaved: {e}"));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            complain(format_args!("weaved: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let shutdown = weave_bus::shutdown_signal();
        let daemon = match Daemon::start(cfg).await {
            Ok(d) => d,
            Err(e) => {
                complain(format_args!("weaved: {e}"));
                return ExitCode::FAILURE;
            }
        };
        say(format_args!(
            "weaved: socket {}",
            daemon.socket_path().display()
        ));
        say(format_args!("weaved: http http://{}", daemon.http_addr));
        say(format_args!("weaved: login {}", daemon.login_url));
        daemon.run(shutdown).await;
        ExitCode::SUCCESS
    })
}

/// Every socket client and SSE stream holds a descriptor: take the soft open-file limit up to
/// the hard one (1,024 is a common default soft limit; 500 SSE clients alone need more).
fn raise_open_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "raised the open-file limit"),
            Err(e) => tracing::warn!(error = %e, soft, "could not raise the open-file limit"),
        },
        _ => {}
    }
}
