//! `weave-bench`: the bus against a raw baseline measured in the same run, printed as one table.
//!
//!     cargo run --release -p weave-bench            # the table in docs/weave/benchmarks.md
//!     cargo run --release -p weave-bench -- --help  # counts, sizes, window
//!
//! The baseline is a forwarder process (this binary, `forwarder` subcommand) that reads the
//! same JSON lines, parses and re-serializes each, and relays them between the same two
//! clients. The bus is the real `weave-bus` binary with its store on.

mod baseline;
mod bus;
mod daemon;
mod fanout;
mod lines;
mod nats;
mod ops;
mod soak;
mod stats;

use stats::Latencies;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use codex_weave_transport_uds::Framing;

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
    /// The `weaved` binary (default: next to this one).
    #[arg(long)]
    weaved: Option<PathBuf>,
    /// SSE clients following one session in the fan-out run.
    #[arg(long, default_value_t = 500)]
    sse_clients: usize,
    /// Messages per second in the fan-out run.
    #[arg(long, default_value_t = 200)]
    sse_rate: u32,
    /// Seconds of the fan-out run.
    #[arg(long, default_value_t = 5)]
    sse_seconds: u32,
    /// Busy sessions beside the fan-out (each a pair of socket agents, sending and acking).
    #[arg(long, default_value_t = 4)]
    sse_busy: usize,
    /// Messages per second in each busy session.
    #[arg(long, default_value_t = 500)]
    sse_busy_rate: u32,
    /// Messages posted in the HTTP throughput run.
    #[arg(long, default_value_t = 5_000)]
    http_count: usize,
    /// Idle agent connections in the memory run.
    #[arg(long, default_value_t = 1_000)]
    idle_agents: usize,
    /// Complete relays timed in the relay fan-out run.
    #[arg(long, default_value_t = 200)]
    relays: usize,
    /// Records written before the recovery run (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    recovery_records: usize,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the baseline forwarder on SOCKET (used by the bench itself).
    Forwarder { socket: PathBuf },
    /// Soak: agents in sessions exchanging messages and relays against `weaved` for a while,
    /// sampling RSS, open file descriptors and store size.
    Soak {
        #[arg(long, default_value_t = 600)]
        seconds: u64,
        #[arg(long, default_value_t = 20)]
        sessions: usize,
        #[arg(long, default_value_t = 10)]
        agents_per_session: usize,
    },
    /// Only the 1-pair throughput row: the baseline, then the bus (`--count`, `--window`,
    /// `--size`), `rounds` times each, alternating. For profiling and quick comparisons.
    Throughput {
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, default_value = "ndjson")]
        framing: String,
    },
    /// Only the round-trip rows (`--trips`), in blocks alternating with the baseline, one line
    /// per percentile. For quick comparisons.
    Trips {
        #[arg(long, default_value = "ndjson")]
        framing: String,
    },
    /// Only the SSE fan-out rows (`--sse-*`), with the CPU per record received of the daemon
    /// and of this process (its clients).
    Fanout,
    /// Only the many-pairs throughput row (`--count`, `--window` in flight in all), with the
    /// CPU the bus and this process (the clients) spent per message. For profiling.
    Pairs {
        #[arg(long, default_value_t = 16)]
        pairs: usize,
    },
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
    let weaved = args
        .weaved
        .clone()
        .unwrap_or_else(|| bus_bin.with_file_name("weaved"));
    if let Some(Cmd::Soak {
        seconds,
        sessions,
        agents_per_session,
    }) = args.cmd
    {
        return rt.block_on(soak::run(&weaved, seconds, sessions, agents_per_session));
    }
    if let Some(Cmd::Trips { framing }) = &args.cmd {
        let framing = Framing::parse(framing).expect("--framing ndjson|protobuf");
        return rt.block_on(trips_only(&args, &bus_bin, framing));
    }
    let fanout_load = daemon::FanoutLoad {
        clients: args.sse_clients,
        rate: args.sse_rate,
        seconds: args.sse_seconds,
        busy: args.sse_busy,
        busy_rate: args.sse_busy_rate,
    };
    if let Some(Cmd::Fanout) = &args.cmd {
        return rt.block_on(daemon::fanout_only(&weaved, fanout_load));
    }
    if let Some(Cmd::Pairs { pairs }) = &args.cmd {
        return rt.block_on(bus::pairs_only(&bus_bin, *pairs, args.count, args.window));
    }
    if let Some(Cmd::Throughput { rounds, framing }) = &args.cmd {
        let framing = Framing::parse(framing).expect("--framing ndjson|protobuf");
        return rt.block_on(throughput_only(&args, &bus_bin, *rounds, framing));
    }
    rt.block_on(async move {
        let text = "x".repeat(args.size);
        eprintln!("baseline: throughput…");
        let base_tput = baseline::throughput(&text, args.count, args.window).await;
        let mut base_pp = baseline::PingPong::start().await;
        let mut rows = Vec::new();
        for (durability, framing) in [
            ("normal", Framing::Ndjson),
            ("normal", Framing::Protobuf),
            ("fsync", Framing::Ndjson),
        ] {
            // The targets are for the default mode; fsync (power-loss safe) is reported beside it.
            let targeted = durability == "normal";
            let f = framing.as_str();
            eprintln!("bus ({durability}, {f}) and baseline: round trips, in alternating blocks…");
            let mut bus_pp = bus::PingPong::start(&bus_bin, durability, framing).await;
            let (bus_lat, base_lat) =
                alternating_trips(&mut bus_pp, &mut base_pp, &text, args.trips).await;
            let block = (args.trips / RTT_BLOCKS).max(1);
            let rtt_check = bus_pp.finish().await;
            eprintln!("bus ({durability}, {f}) and baseline: throughput, in alternating rounds…");
            let (tput, base) =
                paired_throughput(&bus_bin, durability, framing, &text, args.count, args.window)
                    .await;
            let cfg = |extra: &str| {
                format!(
                    "durability={durability}, framing={f}, ack=auto, policy=runtime, {} B text, {extra}",
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
            // The bus's default mode beside NATS, measured in the same run.
            if durability == "normal" && framing == Framing::Ndjson {
                let bus = (bus_lat.quantile(0.5), bus_lat.quantile(0.99), tput.rate);
                nats_rows(&mut rows, &text, &args, bus).await;
            }
            rows.push(Row {
                figure: "throughput, delivered + acked".into(),
                config: cfg(&format!(
                    "window {}, {} messages, 1 pair; median of {THROUGHPUT_ROUNDS} rounds, each a baseline run then a bus run",
                    args.window, args.count
                )),
                bus: tput.rate,
                baseline: base.rate,
                unit: "msg/s",
                target: if targeted {
                    "≥ 0.4× baseline".into()
                } else {
                    "—".into()
                },
                met: !targeted || tput.rate >= 0.4 * base.rate,
                check: format!("{}; {}", tput.check, cpu_per_message(&tput.cpu)),
            });
        }
        eprintln!("weaved: SSE fan-out to {} clients…", args.sse_clients);
        let fan = daemon::sse_fanout(&weaved, fanout_load).await;
        let fan_cfg = fanout_load.describe();
        for (name, q, target) in [("SSE fan-out latency p50", 0.50, f64::NAN), ("SSE fan-out latency p99", 0.99, 20.0)] {
            let ms = fan.latencies.quantile(q) / 1000.0;
            rows.push(Row {
                figure: name.into(),
                config: fan_cfg.clone(),
                bus: ms,
                baseline: f64::NAN,
                unit: "ms",
                target: if target.is_nan() { "—".into() } else { format!("< {target} ms") },
                met: target.is_nan() || ms < target,
                check: fan.check.clone(),
            });
        }
        rows.push(Row {
            figure: "daemon RSS during fan-out".into(),
            config: fan_cfg.clone(),
            bus: fan.rss_mb,
            baseline: f64::NAN,
            unit: "MB",
            target: "< 100 MB".into(),
            met: fan.rss_mb < 100.0,
            check: fan.check.clone(),
        });
        eprintln!("weaved: HTTP POST .../messages throughput…");
        let (http_rate, http_check) = daemon::http_throughput(&weaved, args.http_count, 16).await;
        rows.push(Row {
            figure: "HTTP POST .../messages".into(),
            config: format!("weaved, sdk agent → socket agent (auto-ack), 16 requests in flight, {} messages", args.http_count),
            bus: http_rate,
            baseline: f64::NAN,
            unit: "msg/s",
            target: "—".into(),
            met: true,
            check: http_check,
        });
        {
            eprintln!("bus (normal): 16 pairs, relay fan-out…");
            let dir = tempfile::TempDir::new().expect("tmp");
            let home = dir.path().join("home");
            let mut child = std::process::Command::new(&bus_bin)
                .arg("--home")
                .arg(&home)
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("weave-bus");
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().expect("stdout")), &mut line).expect("ready");
            let socket = home.join("coord.sock");
            let (rate, check) = fanout::pairs_throughput(&socket, 16, args.count, args.window).await;
            rows.push(Row {
                figure: "throughput, 16 pairs".into(),
                config: format!("durability=normal, ack=auto, policy=runtime, 16 sender/receiver pairs, {} in flight in all, {} messages", args.window, args.count),
                bus: rate,
                baseline: base_tput.rate,
                unit: "msg/s",
                target: "—".into(),
                met: true,
                check,
            });
            let (per, check) = fanout::relay_fanout(&socket, args.relays).await;
            rows.push(Row {
                figure: "relay fan-out: time per complete relay".into(),
                config: format!("owner → 8 agents who each reply, then done; {} relays in a row", args.relays),
                bus: per.as_secs_f64() * 1000.0,
                baseline: f64::NAN,
                unit: "ms",
                target: "—".into(),
                met: true,
                check,
            });
            let _ = child.kill();
            let _ = child.wait();
        }
        eprintln!("cold start…");
        let (cold, status) = ops::cold_start(&weaved, &weaved.with_file_name("weavectl")).await;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        rows.push(Row { figure: "cold start: weaved launch → socket answers".into(), config: "fresh home, median of 5".into(), bus: ms(cold), baseline: f64::NAN, unit: "ms", target: "< 50 ms".into(), met: ms(cold) < 50.0, check: "—".into() });
        rows.push(Row { figure: "weavectl status wall time".into(), config: "process start to exit, median of 5".into(), bus: ms(status), baseline: f64::NAN, unit: "ms", target: "—".into(), met: true, check: "—".into() });
        eprintln!("idle memory with {} agents…", args.idle_agents);
        let (idle_mb, per_conn_kb) = ops::idle_memory(&bus_bin, args.idle_agents).await;
        rows.push(Row { figure: "memory per idle agent connection".into(), config: format!("weave-bus, {} agents connected and idle", args.idle_agents), bus: per_conn_kb, baseline: f64::NAN, unit: "KB", target: "< 16 KB".into(), met: per_conn_kb < 16.0, check: format!("RSS idle {idle_mb:.1} MB") });
        rows.push(Row { figure: "bus RSS, idle".into(), config: "weave-bus, one session, no agents".into(), bus: idle_mb, baseline: f64::NAN, unit: "MB", target: "—".into(), met: true, check: "—".into() });
        if args.recovery_records > 0 {
            eprintln!("recovery with {} records…", args.recovery_records);
            let (after_kill, after_stop, cfg) = ops::recovery(&bus_bin, args.recovery_records).await;
            rows.push(Row { figure: "recovery after kill -9: restart → socket answers".into(), config: format!("{cfg}, replays since the last snapshot (every 100,000 records)"), bus: ms(after_kill), baseline: f64::NAN, unit: "ms", target: "< 2,000 ms".into(), met: ms(after_kill) < 2000.0, check: "—".into() });
            rows.push(Row { figure: "recovery after SIGTERM: restart → socket answers".into(), config: format!("{cfg}, from the shutdown snapshot"), bus: ms(after_stop), baseline: f64::NAN, unit: "ms", target: "< 2,000 ms".into(), met: ms(after_stop) < 2000.0, check: "—".into() });
        }
        let base_rtt_check = base_pp.check();
        print_table(&args, &rows, &base_rtt_check, &base_tput.check);
    });
}

/// The bus's default mode next to NATS measured in the same run, when `nats-server` is
/// installed: `bus` = (round trip p50, p99 in µs, acked msg/s).
async fn nats_rows(rows: &mut Vec<Row>, text: &str, args: &Args, bus: (f64, f64, f64)) {
    let (trips, count, window) = (args.trips, args.count, args.window);
    let Some(server) = nats::Server::start().await else {
        eprintln!("nats-server not found (Debian: apt install nats-server): no NATS rows");
        return;
    };
    let version = nats::Server::version();
    eprintln!("NATS ({version}): request-reply, JetStream trips and throughput…");
    let (core, core_check) = nats::request_reply(&server.url, text, trips).await;
    let (js, js_check) = nats::jetstream_trips(&server.url, text, trips).await;
    let js_tput = nats::jetstream_throughput(&server.url, text, count, window).await;
    let (p50, p99, rate) = bus;
    let same = format!(
        "bus: durability=normal, framing=ndjson, {} B text; baseline column: {version} on loopback, same run (async-nats)",
        args.size
    );
    for (name, q, b) in [
        ("round trip p50 vs NATS core request-reply", 0.5, p50),
        ("round trip p99 vs NATS core request-reply", 0.99, p99),
    ] {
        rows.push(Row {
            figure: name.into(),
            config: format!("{same}; core request → reply, 1 in flight, {trips} trips"),
            bus: b,
            baseline: core.quantile(q),
            unit: "µs",
            target: "—".into(),
            met: true,
            check: core_check.clone(),
        });
    }
    for (name, q, b) in [
        ("round trip p50 vs NATS JetStream", 0.5, p50),
        ("round trip p99 vs NATS JetStream", 0.99, p99),
    ] {
        let n = js.quantile(q);
        rows.push(Row { figure: name.into(), config: format!("{same}; JetStream publish (stored, acked) → pull consumer → ack, file storage, 1 in flight, {trips} trips"), bus: b, baseline: n, unit: "µs", target: "< NATS JetStream".into(), met: b < n, check: js_check.clone() });
    }
    rows.push(Row { figure: "throughput vs NATS JetStream".into(), config: format!("{same}; JetStream publish with {window} awaiting the stream's ack → pull consumer (max {window} unacked) → ack, file storage, {count} messages"), bus: rate, baseline: js_tput.rate, unit: "msg/s", target: "> NATS JetStream".into(), met: rate > js_tput.rate, check: js_tput.check });
}

/// Throughput rounds per configuration: the machine is shared and its speed drifts, so each
/// round measures the baseline and then the bus, and the round with the median ratio is shown.
const THROUGHPUT_ROUNDS: usize = 3;

/// The bus's throughput and the baseline's measured just before it: the median round of
/// [`THROUGHPUT_ROUNDS`] by ratio.
async fn paired_throughput(
    bus_bin: &std::path::Path,
    durability: &str,
    framing: Framing,
    text: &str,
    count: usize,
    window: usize,
) -> (stats::Throughput, stats::Throughput) {
    let mut rounds = Vec::new();
    for _ in 0..THROUGHPUT_ROUNDS {
        let base = baseline::throughput(text, count, window).await;
        let bus = bus::throughput(bus_bin, durability, framing, text, count, window).await;
        rounds.push((bus, base));
    }
    rounds.sort_by(|a, b| (a.0.rate / a.1.rate).total_cmp(&(b.0.rate / b.1.rate)));
    rounds.swap_remove(rounds.len() / 2)
}

/// `weave-bench throughput`: baseline and bus throughput in alternating rounds.
async fn throughput_only(args: &Args, bus_bin: &std::path::Path, rounds: usize, framing: Framing) {
    #![allow(clippy::print_stdout)]
    let text = "x".repeat(args.size);
    for round in 1..=rounds {
        let base = baseline::throughput(&text, args.count, args.window).await;
        let bus = bus::throughput(bus_bin, "normal", framing, &text, args.count, args.window).await;
        println!(
            "round {round}: bus {} msg/s, baseline {} msg/s, ratio {:.2}× ({}; {}; {})",
            fmt_num(bus.rate),
            fmt_num(base.rate),
            bus.rate / base.rate,
            bus.check,
            cpu_per_message(&bus.cpu),
            base.check
        );
    }
}

async fn trips_only(args: &Args, bus_bin: &std::path::Path, framing: Framing) {
    #![allow(clippy::print_stdout)]
    let text = "x".repeat(args.size);
    let mut base_pp = baseline::PingPong::start().await;
    let mut bus_pp = bus::PingPong::start(bus_bin, "normal", framing).await;
    let (bus_lat, base_lat) = alternating_trips(&mut bus_pp, &mut base_pp, &text, args.trips).await;
    let check = bus_pp.finish().await;
    for (name, q) in [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)] {
        let (b, r) = (bus_lat.quantile(q), base_lat.quantile(q));
        println!(
            "round trip {name}: bus {b:.1} µs, baseline {r:.1} µs, ratio {:.2}×",
            b / r
        );
    }
    println!("{check}");
}

/// Warm-up, then `trips` round trips of each in blocks taken in turn, so both see the same
/// machine: (bus latencies, baseline latencies).
async fn alternating_trips(
    bus_pp: &mut bus::PingPong,
    base_pp: &mut baseline::PingPong,
    text: &str,
    trips: usize,
) -> (Latencies, Latencies) {
    let (mut bus_lat, mut base_lat) = (Latencies::default(), Latencies::default());
    bus_pp
        .trips(text, trips / 10, &mut Latencies::default())
        .await;
    base_pp
        .trips(text, trips / 10, &mut Latencies::default())
        .await;
    let block = (trips / RTT_BLOCKS).max(1);
    for _ in 0..RTT_BLOCKS {
        base_pp.trips(text, block, &mut base_lat).await;
        bus_pp.trips(text, block, &mut bus_lat).await;
    }
    (bus_lat, base_lat)
}

/// The bus's CPU time per message by thread, busiest first, e.g. `bus CPU per message: engine
/// 6.1 µs, store 2.5 µs, …`.
fn cpu_per_message(cpu: &[(String, f64)]) -> String {
    let mut cpu: Vec<&(String, f64)> = cpu.iter().filter(|(_, us)| *us >= 0.05).collect();
    cpu.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = cpu.iter().map(|(_, us)| us).sum();
    let parts: Vec<String> = cpu
        .iter()
        .map(|(name, us)| format!("{} {us:.1} µs", name.strip_prefix("weave-").unwrap_or(name)))
        .collect();
    format!("bus CPU per message {total:.1} µs: {}", parts.join(", "))
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
        let ratio = if r.baseline.is_nan() {
            "—".to_owned()
        } else {
            format!("{:.2}×", r.bus / r.baseline)
        };
        let baseline = if r.baseline.is_nan() {
            "—".to_owned()
        } else {
            format!("{} {}", fmt_num(r.baseline), r.unit)
        };
        println!(
            "| {} | {} | {} {} | {} | {} | {} | {} | {} |",
            r.figure,
            r.config,
            fmt_num(r.bus),
            r.unit,
            baseline,
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
