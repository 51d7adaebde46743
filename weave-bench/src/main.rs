//! `weave-bench`: the bus against a raw baseline measured in the same run, printed as one table.
//!
//!     cargo run --release -p weave-bench            # the README's table
//!     cargo run --release -p weave-bench -- --help  # counts, sizes, window
//!
//! The baseline is a forwarder process (this binary, `forwarder` subcommand) that reads the
//! same JSON lines, parses and re-serializes each, and relays them between the same two
//! clients. The bus is the real `weave-bus` binary with its store on.

mod baseline;
mod bus;
mod lines;
mod stats;

use stats::Latencies;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "weave-bench",
    about = "Bus figures next to a raw forwarder baseline"
)]
pub struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Round trips measured (after warm-up).
    #[arg(long, default_value_t = 10_000)]
    trips: usize,
    /// Messages sent in the throughput runs.
    #[arg(long, default_value_t = 200_000)]
    count: usize,
    /// Messages in flight in the throughput runs.
    #[arg(long, default_value_t = 1_000)]
    window: usize,
    /// Bytes of text in each message.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// The `weave-bus` binary (default: next to this one).
    #[arg(long)]
    bus: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the baseline forwarder on SOCKET (used by the bench itself).
    Forwarder { socket: PathBuf },
}

/// One row of the table.
pub struct Row {
    pub figure: String,
    pub config: String,
    pub bus: f64,
    pub baseline: f64,
    pub unit: &'static str,
    pub target: String,
    pub met: bool,
    pub check: String,
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Some(Cmd::Forwarder { socket }) = &args.cmd {
        return rt.block_on(baseline::forwarder(socket.clone()));
    }
    let bus_bin = args.bus.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .expect("own path")
            .with_file_name("weave-bus")
    });
    rt.block_on(async move {
        let text = "x".repeat(args.size);
        eprintln!("baseline: throughput…");
        let base_tput = baseline::throughput(&text, args.count, args.window).await;
        let mut base_pp = baseline::PingPong::start().await;
        let mut rows = Vec::new();
        for durability in ["normal", "fsync"] {
            // The targets are for the default mode; fsync (power-loss safe) is reported beside it.
            let targeted = durability == "normal";
            eprintln!("bus ({durability}) and baseline: round trips, in alternating blocks…");
            let mut bus_pp = bus::PingPong::start(&bus_bin, durability).await;
            let (mut bus_lat, mut base_lat) = (Latencies::default(), Latencies::default());
            // Warm-up, then blocks of each in turn, so both see the same machine.
            bus_pp
                .trips(&text, args.trips / 10, &mut Latencies::default())
                .await;
            base_pp
                .trips(&text, args.trips / 10, &mut Latencies::default())
                .await;
            let block = (args.trips / RTT_BLOCKS).max(1);
            for _ in 0..RTT_BLOCKS {
                base_pp.trips(&text, block, &mut base_lat).await;
                bus_pp.trips(&text, block, &mut bus_lat).await;
            }
            let rtt_check = bus_pp.finish().await;
            eprintln!("bus ({durability}): throughput…");
            let tput = bus::throughput(&bus_bin, durability, &text, args.count, args.window).await;
            let cfg = |extra: &str| {
                format!(
                    "durability={durability}, ack=auto, policy=runtime, {} B text, {extra}",
                    args.size
                )
            };
            let rtt_cfg = cfg(&format!(
                "1 in flight, {} trips in {RTT_BLOCKS} blocks alternating with the baseline",
                block * RTT_BLOCKS
            ));
            for (name, q, factor) in [
                ("round trip p50", 0.50, 3.0),
                ("round trip p99", 0.99, 5.0),
                ("round trip p99.9", 0.999, 0.0),
            ] {
                let (b, r) = (bus_lat.quantile(q), base_lat.quantile(q));
                rows.push(Row {
                    figure: name.into(),
                    config: rtt_cfg.clone(),
                    bus: b,
                    baseline: r,
                    unit: "µs",
                    target: if factor > 0.0 && targeted {
                        format!("≤ {factor}× baseline")
                    } else {
                        "—".into()
                    },
                    met: factor == 0.0 || !targeted || b <= factor * r,
                    check: rtt_check.clone(),
                });
            }
            rows.push(Row {
                figure: "throughput, delivered + acked".into(),
                config: cfg(&format!(
                    "window {}, {} messages, 1 pair",
                    args.window, args.count
                )),
                bus: tput.rate,
                baseline: base_tput.rate,
                unit: "msg/s",
                target: if targeted {
                    "≥ 50,000 msg/s".into()
                } else {
                    "—".into()
                },
                met: !targeted || tput.rate >= 50_000.0,
                check: tput.check.clone(),
            });
        }
        let base_rtt_check = base_pp.check();
        print_table(&args, &rows, &base_rtt_check, &base_tput.check);
    });
}

fn print_table(args: &Args, rows: &[Row], base_rtt_check: &str, base_tput_check: &str) {
    #![allow(clippy::print_stdout)]
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!("weave-bench: {cores} cores; `cargo run --release -p weave-bench -- --trips {} --count {} --window {} --size {}`", args.trips, args.count, args.window, args.size);
    println!("baseline = forwarder process parsing and re-serializing every line between the same two clients ({base_rtt_check}; {base_tput_check})");
    println!();
    println!("| figure | configuration | bus | baseline | ratio | target | met | exactly once |");
    println!("|---|---|---:|---:|---:|---|---|---|");
    for r in rows {
        let ratio = r.bus / r.baseline;
        println!(
            "| {} | {} | {} {} | {} {} | {:.2}× | {} | {} | {} |",
            r.figure,
            r.config,
            fmt_num(r.bus),
            r.unit,
            fmt_num(r.baseline),
            r.unit,
            ratio,
            r.target,
            if r.met { "yes" } else { "NO" },
            r.check
        );
    }
}

fn fmt_num(x: f64) -> String {
    if x >= 1000.0 {
        let s = format!("{:.0}", x);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else {
        format!("{x:.1}")
    }
}

/// Round trips are measured in this many blocks, alternating bus and baseline.
const RTT_BLOCKS: usize = 10;

/// How long a run may take before the bench gives up on it.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);
