//! `weavectl`: Weave from a terminal, over the socket (so it also works against a bare
//! `weave-bus`). Exit codes: 0 ok (also when the reader of its output went away), 1 the bus
//! refused (its code is printed) or another failure (`--json` tells them apart by `code`),
//! 2 usage, 3 no bus running. The commands
//! live in `weave_codex_daemon::cli`; this file is the command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use codex_weave_transport_uds::Client;
use serde_json::{json, Value};
use weave_codex_daemon::agents::link::{self, envelope as request};
use weave_codex_daemon::cli::output::{self, Failure, Out};
use weave_codex_daemon::cli::{chat, link_failure, login, messages, relay};

#[derive(Parser, Debug)]
#[command(
    name = "weavectl",
    version,
    about = "Weave from a terminal: sessions, agents, messages, the live event log"
)]
struct Args {
    /// Home directory (else $WEAVE_HOME, else ~/.weave).
    #[arg(long, global = true)]
    home: Option<PathBuf>,
    /// Print JSON (one object per line) for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Is a bus running? Its counters. With MESSAGE (and --session): how far that message got
    /// with each recipient — queued, delivered, read, answered.
    Status {
        message: Option<String>,
        /// The message's session (id, name or id prefix).
        #[arg(long, env = "WEAVE_SESSION")]
        session: Option<String>,
    },
    /// Search a session's records by words, sender and time, newest first.
    Search {
        /// The session (id, name or id prefix).
        session: String,
        /// Words that must all occur (`word*` a prefix); none: every record.
        text: Vec<String>,
        /// Only what this agent sent (name or id).
        #[arg(long)]
        from: Option<String>,
        /// Only at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Only records older than this seq (the next page).
        #[arg(long)]
        before: Option<u64>,
        #[arg(long, default_value_t = 20)]
        limit: u64,
    },
    /// Why has an agent not answered? Presence, unread messages, reads, held deliveries,
    /// loop-guard stops, dead letters, and whether its hooks are installed.
    Doctor {
        /// The session (id, name or id prefix).
        #[arg(long, env = "WEAVE_SESSION")]
        session: String,
        /// One agent (name or id); default: all of them.
        agent: Option<String>,
    },
    /// Sessions.
    Session {
        #[command(subcommand)]
        cmd: SessionCmd,
    },
    /// Agents of a session.
    Agent {
        #[command(subcommand)]
        cmd: AgentCmd,
    },
    /// Send TEXT to one or more agents (ids or names), as a new conversation.
    Send {
        /// The session (id, name or id prefix).
        session: String,
        /// Target agents, comma-separated ids or names.
        #[arg(long, value_delimiter = ',', required = true)]
        to: Vec<String>,
        /// Send as this person or agent (default `cli`). An agent running elsewhere is refused.
        #[arg(long = "as", env = "WEAVE_AGENT", default_value = "cli")]
        as_agent: String,
        /// Act as the agent even if it is running elsewhere (that connection is displaced).
        #[arg(long)]
        force: bool,
        text: String,
    },
    /// Answer message ID (as `inbox` shows it: a message id or a relay step's id) inside its
    /// conversation.
    Reply {
        /// The session (id, name or id prefix).
        #[arg(long, env = "WEAVE_SESSION")]
        session: String,
        /// Who answers: the one the message was sent to.
        #[arg(long = "as", env = "WEAVE_AGENT")]
        as_agent: String,
        #[arg(long)]
        force: bool,
        id: String,
        text: String,
    },
    /// What waits for a person or agent: messages and relay steps not yet read.
    Inbox {
        /// The session (id, name or id prefix).
        #[arg(long, env = "WEAVE_SESSION")]
        session: String,
        /// Whose inbox (name or id).
        #[arg(long = "as", env = "WEAVE_AGENT")]
        as_agent: String,
        /// Wait up to SECS for something to arrive when nothing waits yet.
        #[arg(long, value_name = "SECS")]
        wait: Option<u64>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Mark what is shown as read.
        #[arg(long)]
        mark_read: bool,
    },
    /// A page of a session's event log, oldest first.
    History {
        /// The session (id, name or id prefix).
        session: String,
        /// Start after this seq.
        #[arg(long, default_value_t = 0)]
        since: u64,
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Follow a session's event log live.
    Tail {
        /// The session (id, name or id prefix).
        session: String,
        /// Start after this seq (default: the whole log).
        #[arg(long, default_value_t = 0)]
        since: u64,
    },
    /// Relays: work handed out in ordered steps, with waits.
    Relay {
        #[command(subcommand)]
        cmd: RelayCmd,
    },
    /// Print a fresh one-time login URL for the running daemon's web UI.
    Login,
    /// Print a completion script for SHELL (e.g. `weavectl completions bash > /etc/bash_completion.d/weavectl`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Be one agent on the bus as an MCP server over stdio, for as long as the MCP client (Claude
    /// Code, Codex CLI, Gemini CLI, any MCP client) runs it. Without a session and name the
    /// agent calls the `join` tool itself.
    Mcp {
        #[command(flatten)]
        join: JoinAs,
    },
    /// The doorbell an agent's own hooks ring: reads the hook's JSON on stdin and prints what
    /// that agent reads back — its new Weave messages as context, or at Stop a decision to take
    /// them up. Prints nothing (exit 0) when no daemon runs or the deadline passes.
    Hook {
        /// Whose hook this is.
        #[arg(value_enum)]
        agent: weave_codex_daemon::agents::hooks::AgentKind,
        /// The hook event (e.g. SessionStart, UserPromptSubmit, PostToolUse, Stop; Gemini:
        /// BeforeAgent, AfterTool, AfterAgent).
        event: String,
        #[command(flatten)]
        join: JoinAs,
        /// Messages listed at most.
        #[arg(long, default_value_t = weave_codex_daemon::agents::hooks::DEFAULT_MAX_MESSAGES)]
        max_messages: usize,
        /// Characters of one message shown at most.
        #[arg(long, default_value_t = weave_codex_daemon::agents::hooks::DEFAULT_MAX_CHARS)]
        max_chars: usize,
        /// The longest the hook takes, in milliseconds, whatever happens.
        #[arg(long, default_value_t = 300)]
        deadline_ms: u64,
    },
    /// Connect an agent to Weave: write the `weave` MCP server and the doorbell hooks into its
    /// configuration (idempotent; each changed file is first kept as FILE.weave-backup).
    Install(InstallArgs),
    /// Remove exactly what `install` wrote (the user's own entries stay).
    Uninstall(InstallArgs),
    /// Be a person in a session from this terminal: what arrives is numbered; typing answers
    /// the last message in its conversation, `#name text` starts a new one, `/reply N`,
    /// `/answer N`, `/approve N`, `/deny N`, `/inbox`, `/help`.
    Join {
        /// The session (id, name or id prefix).
        session: String,
        /// Your name in the session (your id is the name, lower-cased).
        #[arg(long, env = "WEAVE_AGENT")]
        name: String,
        /// Take the name over even if it is live in another terminal.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
enum RelayCmd {
    /// Hand out work: from a JSON file (`{targets?, actions}`) or from `--step`s in order
    /// (`--step 'bob: review it' --step 'wait: bob' --step 'ann: merge it'`).
    Submit {
        /// The session (id, name or id prefix).
        #[arg(long, env = "WEAVE_SESSION")]
        session: String,
        /// The relay's owner (who gets the results).
        #[arg(long = "as", env = "WEAVE_AGENT", default_value = "cli")]
        as_agent: String,
        #[arg(long)]
        force: bool,
        #[arg(long, conflicts_with = "step")]
        file: Option<PathBuf>,
        #[arg(long)]
        step: Vec<String>,
        /// The relay's id (default: a new one).
        #[arg(long)]
        relay_id: Option<String>,
    },
    /// How a relay goes (all relays of the session without RELAY_ID).
    Status {
        #[arg(long, env = "WEAVE_SESSION")]
        session: String,
        relay_id: Option<String>,
    },
    /// Cancel a relay (as its owner).
    Cancel {
        #[arg(long, env = "WEAVE_SESSION")]
        session: String,
        relay_id: String,
        #[arg(long)]
        force: bool,
    },
}

/// Which session and name an adapter joins as: flags, else `WEAVE_SESSION` / `WEAVE_AGENT`.
#[derive(clap::Args, Debug, Clone)]
struct JoinAs {
    /// The session: its id, its name, or a unique prefix of its id.
    #[arg(long, env = "WEAVE_SESSION")]
    session: Option<String>,
    /// The agent's name in the session (its id is the name, lower-cased).
    #[arg(long, env = "WEAVE_AGENT")]
    name: Option<String>,
    /// Create the session if no open session has that id or name.
    #[arg(long)]
    create: bool,
}

#[derive(clap::Args, Debug, Clone)]
struct InstallArgs {
    /// The agent whose configuration to change.
    #[arg(value_enum)]
    agent: weave_codex_daemon::agents::hooks::AgentKind,
    /// The project directory (default: the current one).
    #[arg(long, conflicts_with = "user")]
    project: Option<PathBuf>,
    /// The user's configuration (in the home directory) instead of a project's.
    #[arg(long)]
    user: bool,
    /// The session the agent joins (else WEAVE_SESSION when it runs, else it calls `join`).
    #[arg(long)]
    session: Option<String>,
    /// The agent's name in the session (else WEAVE_AGENT when it runs).
    #[arg(long)]
    name: Option<String>,
    /// Print the diff, write nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Subcommand, Debug)]
enum SessionCmd {
    /// List sessions.
    List {
        /// Include closed sessions.
        #[arg(long)]
        all: bool,
    },
    /// Create a session named NAME.
    Create { name: String },
    /// Close a session (id, name or id prefix).
    Close { id: String },
}

#[derive(Subcommand, Debug)]
enum AgentCmd {
    /// List the agents of SESSION (id, name or id prefix).
    List { session: String },
    /// Be a headless agent: for each message delivered, run CMD with the text on stdin
    /// (WEAVE_SESSION, WEAVE_AGENT, WEAVE_FROM, WEAVE_MESSAGE_ID, WEAVE_CONTEXT_ID,
    /// WEAVE_RELAY_ID in its environment); its stdout is the reply, a non-zero exit an error.
    /// E.g. `weavectl agent run --session demo --name reviewer -- claude -p`.
    Run {
        #[command(flatten)]
        join: JoinAs,
        /// Longest a command may run (e.g. 90s, 10m, 1h) before it is killed.
        #[arg(long, default_value = "600s", value_parser = parse_duration)]
        timeout: Duration,
        /// Commands run at once (later messages wait their turn).
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// `90`, `90s`, `10m`, `1h`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90s, 10m, 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("`{s}`: the unit is s, m or h")),
    };
    Ok(Duration::from_secs(secs.max(1)))
}

fn print(line: impl std::fmt::Display) {
    output::human(&line.to_string());
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => return usage_error(e),
    };
    if let Cmd::Hook { .. } = &args.cmd {
        return hook(args);
    }
    let json_out = args.json;
    // Logs go to stderr (stdout carries MCP and hook answers), quiet unless RUST_LOG says.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(false)
        .try_init();
    let home = match codex_weave_transport_uds::home::resolve_home(args.home.as_deref()) {
        Ok(h) => h,
        Err(e) => return ExitCode::from(Failure::Usage(e.to_string()).report(json_out)),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return ExitCode::from(Failure::Other(e.to_string()).report(json_out)),
    };
    match rt.block_on(run(args, home)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => ExitCode::from(failure.report(json_out)),
    }
}

/// A command line clap refused: its own message, or with `--json` a JSON error line too.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json_out = std::env::args().any(|a| a == "--json");
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) || !json_out
    {
        let _ = e.print();
        return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
    }
    let message = e.to_string();
    let first = message
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ");
    ExitCode::from(Failure::Usage(first.to_owned()).report(true))
}

/// `weavectl install` / `uninstall`.
fn install(a: InstallArgs, remove: bool, json_out: bool) -> Out {
    use weave_codex_daemon::agents::install::{self, InstallOptions, Scope};
    let scope = if a.user {
        Scope::User(dirs::home_dir().ok_or_else(|| Failure::Other("no home directory".into()))?)
    } else {
        let dir = match a.project {
            Some(d) => d,
            None => std::env::current_dir().map_err(|e| Failure::Other(e.to_string()))?,
        };
        Scope::Project(dir)
    };
    let weavectl = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "weavectl".into());
    let opts = InstallOptions {
        agent: a.agent,
        scope,
        session: a.session,
        name: a.name,
        weavectl,
    };
    let changes = install::plan(&opts, remove).map_err(Failure::Other)?;
    if a.dry_run {
        for c in &changes {
            print(c.diff());
        }
        if changes.is_empty() {
            codex_weave_transport_uds::console::complain(format_args!(
                "weavectl: nothing to change"
            ));
        }
        return Ok(());
    }
    install::apply(&changes).map_err(Failure::Other)?;
    for c in &changes {
        if json_out {
            print(
                json!({ "changed": c.path, "backup": c.before.as_ref().map(|_| install::backup_path(&c.path)) }),
            );
        } else {
            print(format!(
                "{} {}",
                if remove { "updated" } else { "wrote" },
                c.path.display()
            ));
        }
    }
    if changes.is_empty() && !json_out {
        print(format!(
            "{} is already {}",
            a.agent.as_str(),
            if remove {
                "without Weave"
            } else {
                "connected to Weave"
            }
        ));
    }
    Ok(())
}

/// `weavectl hook`: whatever happens, exit 0 and print only what the agent can read.
fn hook(args: Args) -> ExitCode {
    let Cmd::Hook {
        agent,
        event,
        join,
        max_messages,
        max_chars,
        deadline_ms,
    } = args.cmd
    else {
        return ExitCode::SUCCESS;
    };
    let started = std::time::Instant::now();
    let deadline = Duration::from_millis(deadline_ms);
    let Ok(home) = codex_weave_transport_uds::home::resolve_home(args.home.as_deref()) else {
        return ExitCode::SUCCESS;
    };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::SUCCESS;
    };
    let opts = weave_codex_daemon::agents::hooks::HookOptions {
        agent,
        event,
        session: join.session,
        name: join.name,
        max_messages,
        max_chars,
        deadline,
    };
    let socket = home.join(codex_weave_transport_uds::SOCKET_FILE);
    let out = rt.block_on(async {
        let input = weave_codex_daemon::agents::hooks::read_input(deadline).await;
        let mut opts = opts;
        opts.deadline = deadline.saturating_sub(started.elapsed());
        weave_codex_daemon::agents::hooks::run(&socket, &opts, &input).await
    });
    if let Some(out) = out {
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{out}");
    }
    // Do not wait for a stdin reader still blocked: the process ends here.
    rt.shutdown_background();
    ExitCode::SUCCESS
}

async fn connect(
    socket: &PathBuf,
) -> Result<(Client, codex_weave_transport_uds::client::Events), Failure> {
    Client::connect(socket)
        .await
        .map_err(|_| Failure::NoBus(socket.clone()))
}

async fn run(args: Args, home: PathBuf) -> Out {
    let json_out = args.json;
    let socket = home.join(codex_weave_transport_uds::SOCKET_FILE);
    match args.cmd {
        Cmd::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Args::command(), "weavectl", &mut out);
            output::line(String::from_utf8_lossy(&out).trim_end());
        }
        Cmd::Login => login::run(&home, &socket, json_out).await?,
        Cmd::Reply {
            session,
            as_agent,
            force,
            id,
            text,
        } => messages::reply(&socket, &session, &as_agent, force, &id, &text, json_out).await?,
        Cmd::Inbox {
            session,
            as_agent,
            wait,
            limit,
            mark_read,
        } => {
            let q = messages::InboxQuery {
                session: &session,
                name: &as_agent,
                wait: wait.map(Duration::from_secs),
                limit,
                mark_read,
            };
            messages::inbox(&socket, q, json_out).await?
        }
        Cmd::History {
            session,
            since,
            limit,
        } => messages::history(&socket, &session, since, limit, json_out).await?,
        Cmd::Relay { cmd } => match cmd {
            RelayCmd::Submit {
                session,
                as_agent,
                force,
                file,
                step,
                relay_id,
            } => {
                let payload = relay::payload(file.as_deref(), &step, relay_id)?;
                relay::submit(&socket, &session, &as_agent, force, payload, json_out).await?
            }
            RelayCmd::Status { session, relay_id } => {
                relay::status(&socket, &session, relay_id.as_deref(), json_out).await?
            }
            RelayCmd::Cancel {
                session,
                relay_id,
                force,
            } => relay::cancel(&socket, &session, &relay_id, force, json_out).await?,
        },
        // Served by `hook` before any of this.
        Cmd::Hook { .. } => {}
        Cmd::Install(a) => install(a, false, json_out)?,
        Cmd::Uninstall(a) => install(a, true, json_out)?,
        Cmd::Mcp { join } => {
            let opts = weave_codex_daemon::agents::mcp::McpOptions {
                socket,
                session: join.session,
                name: join.name,
                create: join.create,
            };
            weave_codex_daemon::agents::mcp::serve(opts)
                .await
                .map_err(Failure::Other)?;
        }
        Cmd::Status {
            message: Some(message),
            session,
        } => {
            let session =
                session.ok_or_else(|| Failure::Usage("status MESSAGE needs --session".into()))?;
            let (c, _) = connect(&socket).await?;
            let s = link::resolve_session(&c, &session, false)
                .await
                .map_err(|e| link_failure(e, &socket))?;
            let r = c
                .call(request(
                    "message.receipts",
                    Some(&s.id),
                    "weavectl",
                    json!({ "ids": [message] }),
                ))
                .await?
                .payload
                .unwrap_or_default();
            let receipts = r["receipts"].as_array().cloned().unwrap_or_default();
            if receipts.is_empty() {
                return Err(Failure::refused(
                    "unknown_message",
                    format!("no message {message} with receipts in session {}", s.id),
                ));
            }
            for rc in receipts {
                if json_out {
                    print(rc);
                } else {
                    print(format!(
                        "{:<24} {}",
                        rc["agent"].as_str().unwrap_or(""),
                        rc["state"].as_str().unwrap_or("")
                    ));
                }
            }
        }
        Cmd::Search {
            session,
            text,
            from,
            since,
            until,
            before,
            limit,
        } => {
            let (c, _) = connect(&socket).await?;
            let s = link::resolve_session(&c, &session, false)
                .await
                .map_err(|e| link_failure(e, &socket))?;
            let text = (!text.is_empty()).then(|| text.join(" "));
            let found = c
                .call(request(
                    "events.search",
                    Some(&s.id),
                    "weavectl",
                    json!({ "text": text, "from": from, "since": since, "until": until, "before": before, "limit": limit }),
                ))
                .await?
                .payload
                .unwrap_or_default();
            for r in found["records"].as_array().into_iter().flatten() {
                if json_out {
                    print(r);
                } else {
                    print(shown(&describe(r)));
                }
            }
            if let (false, Some(next)) = (json_out, found["next_before"].as_u64()) {
                codex_weave_transport_uds::console::complain(format_args!(
                    "weavectl: more with --before {next}"
                ));
            }
        }
        Cmd::Doctor { session, agent } => {
            let (c, _) = connect(&socket).await?;
            let s = link::resolve_session(&c, &session, false)
                .await
                .map_err(|e| link_failure(e, &socket))?;
            let cwd = std::env::current_dir().unwrap_or_default();
            let home = dirs::home_dir().unwrap_or_default();
            let found = weave_codex_daemon::agents::doctor::diagnose(
                &c,
                &s,
                agent.as_deref(),
                &[&cwd, &home],
            )
            .await
            .map_err(|e| link_failure(e, &socket))?;
            if found.is_empty() {
                return Err(Failure::refused(
                    "unknown_agent",
                    "no such agent in the session",
                ));
            }
            for d in found {
                if json_out {
                    print(serde_json::to_value(&d).unwrap_or_default());
                } else {
                    print(format!(
                        "{} ({}, {}, {} unread)",
                        d.name, d.agent, d.presence, d.unread
                    ));
                    for f in d.findings {
                        print(format!("  - {f}"));
                    }
                }
            }
        }
        Cmd::Status { message: None, .. } => {
            let (c, _) = connect(&socket).await?;
            let stats = c
                .call(request("bus.stats", None, "weavectl", Value::Null))
                .await?
                .payload
                .unwrap_or_default();
            if json_out {
                print(json!({ "socket": socket, "running": true, "stats": stats }));
            } else {
                print(format!(
                    "bus running at {}: {} sessions, {} connections, {} deliveries pending",
                    socket.display(),
                    stats["sessions"],
                    stats["connections"],
                    stats["pending_deliveries"]
                ));
            }
        }
        Cmd::Session { cmd } => {
            let (c, _) = connect(&socket).await?;
            match cmd {
                SessionCmd::List { all } => {
                    let resp = c
                        .call(request(
                            "session.list",
                            None,
                            "weavectl",
                            json!({ "include_closed": all }),
                        ))
                        .await?;
                    let sessions = resp.payload.unwrap_or_default()["sessions"].clone();
                    for s in sessions.as_array().into_iter().flatten() {
                        if json_out {
                            print(s);
                        } else {
                            print(format!(
                                "{}  {:<20} {:<6} {} agents",
                                s["id"].as_str().unwrap_or(""),
                                s["name"].as_str().unwrap_or("-"),
                                s["status"].as_str().unwrap_or(""),
                                s["agent_count"]
                            ));
                        }
                    }
                }
                SessionCmd::Create { name } => {
                    let resp = c
                        .call(request(
                            "session.create",
                            None,
                            "weavectl",
                            json!({ "name": name }),
                        ))
                        .await?;
                    if json_out {
                        print(resp.payload.unwrap_or_default());
                    } else {
                        print(resp.session.unwrap_or_default());
                    }
                }
                SessionCmd::Close { id: wanted } => {
                    let id = link::resolve_session(&c, &wanted, false)
                        .await
                        .map_err(|e| link_failure(e, &socket))?
                        .id;
                    let resp = c
                        .call(request("session.close", Some(&id), "weavectl", Value::Null))
                        .await?;
                    if json_out {
                        print(resp.payload.unwrap_or_default());
                    } else {
                        print(format!("closed {id}"));
                    }
                }
            }
        }
        Cmd::Agent {
            cmd:
                AgentCmd::Run {
                    join,
                    timeout,
                    concurrency,
                    command,
                },
        } => {
            let (Some(session), Some(name)) = (join.session, join.name) else {
                return Err(Failure::Usage(
                    "agent run needs --session and --name (or WEAVE_SESSION and WEAVE_AGENT)"
                        .into(),
                ));
            };
            let opts = weave_codex_daemon::agents::runner::RunnerOptions {
                socket: socket.clone(),
                session,
                name,
                create: join.create,
                timeout,
                concurrency,
                command,
            };
            weave_codex_daemon::agents::runner::run(opts)
                .await
                .map_err(|e| link_failure(e, &socket))?;
        }
        Cmd::Agent {
            cmd: AgentCmd::List { session },
        } => {
            let (c, _) = connect(&socket).await?;
            let s = link::resolve_session(&c, &session, false)
                .await
                .map_err(|e| link_failure(e, &socket))?;
            let resp = c
                .call(request("agent.list", Some(&s.id), "weavectl", Value::Null))
                .await?;
            for a in resp.payload.unwrap_or_default()["agents"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if json_out {
                    print(a);
                } else {
                    print(format!(
                        "{:<24} {:<16} {:<6} {:<7} queued {}",
                        a["id"].as_str().unwrap_or(""),
                        a["name"].as_str().unwrap_or("-"),
                        a["kind"].as_str().unwrap_or(""),
                        a["status"].as_str().unwrap_or(""),
                        a["queued"]
                    ));
                }
            }
        }
        Cmd::Send {
            session,
            to,
            as_agent,
            force,
            text,
        } => {
            let send = messages::Send {
                session: &session,
                to: &to,
                as_name: &as_agent,
                force,
                text: &text,
            };
            messages::send(&socket, send, json_out).await?
        }
        Cmd::Tail { session, since } => messages::tail(&socket, &session, since, json_out).await?,
        Cmd::Join {
            session,
            name,
            force,
        } => chat::run(&socket, &session, &name, force, json_out).await?,
    }
    Ok(())
}

/// Text from others as it may be shown on a terminal.
fn shown(text: &str) -> String {
    weave_codex_daemon::agents::inbox::escape_controls(text)
}

fn describe(record: &Value) -> String {
    messages::describe(record)
}
