//! Every limit of the bus and its runtime as one set of optional settings: the flags of
//! `weave-bus` and `weaved` (`--max-queue-per-agent 500`) and the keys of `weaved`'s
//! `<home>/config.toml` (`max_queue_per_agent = 500`) are this one struct, so the three cannot
//! drift apart. Unset means the default of [`Limits`] / [`RuntimeConfig`], written in each
//! flag's help (a test holds the help to the defaults).

use std::time::Duration;

use serde::Deserialize;

use crate::{BusConfig, Limits, RuntimeConfig};

#[derive(Debug, Default, Clone, PartialEq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitFlags {
    /// Longest accepted line, in bytes [default: 1048576].
    #[arg(long)]
    pub max_line: Option<usize>,
    /// Simultaneous socket connections [default: 4096].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Open sessions [default: 10000].
    #[arg(long)]
    pub max_sessions: Option<usize>,
    /// Registered agents per session [default: 1024].
    #[arg(long)]
    pub max_agents_per_session: Option<usize>,
    /// Deliveries waiting per agent before senders get `inbox_full` [default: 100000].
    #[arg(long)]
    pub max_queue_per_agent: Option<usize>,
    /// Unacked deliveries per agent before the rest wait in its queue [default: 4096].
    #[arg(long)]
    pub max_inflight_per_agent: Option<usize>,
    /// Deliveries of one message in all before it is dead-lettered [default: 5].
    #[arg(long)]
    pub max_deliver: Option<u32>,
    /// Bytes queued for one connection before it is paused [default: 8388608].
    #[arg(long)]
    pub max_conn_buffer: Option<usize>,
    /// Bytes queued for a connection before its `events.stream` follows stop taking live
    /// records and catch up from the log as it drains [default: 262144].
    #[arg(long)]
    pub max_stream_buffer: Option<usize>,
    /// Payload bytes waiting per agent before senders get `inbox_full` [default: 1073741824].
    #[arg(long)]
    pub max_queue_bytes_per_agent: Option<usize>,
    /// Payload bytes of pending messages kept in memory, all agents together; the rest wait in
    /// the store and are read back when sent [default: 67108864].
    #[arg(long)]
    pub max_memory: Option<usize>,
    /// Seconds an idempotency key is kept at least [default: 86400].
    #[arg(long)]
    pub idempotency_ttl_secs: Option<u64>,
    /// Idempotency keys kept at most [default: 100000].
    #[arg(long)]
    pub max_idempotency_keys: Option<usize>,
    /// Most records one history page returns [default: 10000].
    #[arg(long)]
    pub max_history_page: Option<usize>,
    /// Records kept per session; older ones are pruned [default: 1000000].
    #[arg(long)]
    pub retain_events: Option<u64>,
    /// Records written between two snapshots of the runtime's state (bounds replay at start)
    /// [default: 100000].
    #[arg(long)]
    pub snapshot_every: Option<u64>,
    /// Loop guard: a message at hop max_hops + 1 of its causal chain is stopped [default: 16].
    #[arg(long)]
    pub max_hops: Option<u32>,
    /// Loop guard: the new-work message completing this many strict alternations between two
    /// agents in one chain is stopped [default: 6].
    #[arg(long)]
    pub max_ping_pong: Option<u32>,
    /// Conversations, message references, loop-guard nodes and runs, and relays the runtime
    /// remembers across all sessions; past it the oldest are forgotten [default: 75000].
    #[arg(long)]
    pub runtime_memory: Option<usize>,
}

impl LimitFlags {
    /// Each setting of `self`, else of `fallback` (flags over the config file).
    pub fn or(self, fallback: LimitFlags) -> LimitFlags {
        macro_rules! pick {
            ($($f:ident),*) => { LimitFlags { $( $f: self.$f.or(fallback.$f), )* } };
        }
        pick!(
            max_line,
            max_connections,
            max_sessions,
            max_agents_per_session,
            max_queue_per_agent,
            max_inflight_per_agent,
            max_deliver,
            max_conn_buffer,
            max_stream_buffer,
            max_queue_bytes_per_agent,
            max_memory,
            idempotency_ttl_secs,
            max_idempotency_keys,
            max_history_page,
            retain_events,
            snapshot_every,
            max_hops,
            max_ping_pong,
            runtime_memory
        )
    }

    /// Writes every set value into `cfg`; refuses a zero where zero would stop the bus working.
    pub fn apply(&self, cfg: &mut BusConfig) -> Result<(), String> {
        self.check()?;
        let l: &mut Limits = &mut cfg.limits;
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { l.$f = v; } )* };
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
            max_stream_buffer,
            max_queue_bytes_per_agent,
            max_memory,
            max_idempotency_keys,
            max_history_page,
            retain_events,
            snapshot_every
        );
        if let Some(s) = self.idempotency_ttl_secs {
            l.idempotency_ttl = Duration::from_secs(s);
        }
        let r: &mut RuntimeConfig = &mut cfg.runtime;
        if let Some(v) = self.max_hops {
            r.max_hops = v;
        }
        if let Some(v) = self.max_ping_pong {
            r.max_ping_pong = v;
        }
        if let Some(v) = self.runtime_memory {
            r.memory_budget = v;
        }
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        let must_be_positive = [
            ("max_line", self.max_line.map(|v| v as u64)),
            ("max_connections", self.max_connections.map(|v| v as u64)),
            ("max_sessions", self.max_sessions.map(|v| v as u64)),
            (
                "max_agents_per_session",
                self.max_agents_per_session.map(|v| v as u64),
            ),
            (
                "max_queue_per_agent",
                self.max_queue_per_agent.map(|v| v as u64),
            ),
            (
                "max_inflight_per_agent",
                self.max_inflight_per_agent.map(|v| v as u64),
            ),
            ("max_deliver", self.max_deliver.map(u64::from)),
            ("max_conn_buffer", self.max_conn_buffer.map(|v| v as u64)),
            (
                "max_stream_buffer",
                self.max_stream_buffer.map(|v| v as u64),
            ),
            (
                "max_queue_bytes_per_agent",
                self.max_queue_bytes_per_agent.map(|v| v as u64),
            ),
            ("max_memory", self.max_memory.map(|v| v as u64)),
            ("max_history_page", self.max_history_page.map(|v| v as u64)),
            ("retain_events", self.retain_events),
            ("snapshot_every", self.snapshot_every),
            ("max_hops", self.max_hops.map(u64::from)),
            ("max_ping_pong", self.max_ping_pong.map(u64::from)),
            ("runtime_memory", self.runtime_memory.map(|v| v as u64)),
        ];
        match must_be_positive.iter().find(|(_, v)| *v == Some(0)) {
            Some((name, _)) => Err(format!("`{name}` must be at least 1")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        limits: LimitFlags,
    }

    /// The help text states each default; it must be the default the bus really uses.
    #[test]
    fn every_flag_s_help_states_the_default_in_force() {
        let l = Limits::default();
        let r = RuntimeConfig::default();
        let defaults: [(&str, u64); 19] = [
            ("max-line", l.max_line as u64),
            ("max-connections", l.max_connections as u64),
            ("max-sessions", l.max_sessions as u64),
            ("max-agents-per-session", l.max_agents_per_session as u64),
            ("max-queue-per-agent", l.max_queue_per_agent as u64),
            ("max-inflight-per-agent", l.max_inflight_per_agent as u64),
            ("max-deliver", u64::from(l.max_deliver)),
            ("max-conn-buffer", l.max_conn_buffer as u64),
            ("max-stream-buffer", l.max_stream_buffer as u64),
            (
                "max-queue-bytes-per-agent",
                l.max_queue_bytes_per_agent as u64,
            ),
            ("max-memory", l.max_memory as u64),
            ("idempotency-ttl-secs", l.idempotency_ttl.as_secs()),
            ("max-idempotency-keys", l.max_idempotency_keys as u64),
            ("max-history-page", l.max_history_page as u64),
            ("retain-events", l.retain_events),
            ("snapshot-every", l.snapshot_every),
            ("max-hops", u64::from(r.max_hops)),
            ("max-ping-pong", u64::from(r.max_ping_pong)),
            ("runtime-memory", r.memory_budget as u64),
        ];
        let cmd = Cli::command();
        assert_eq!(
            cmd.get_arguments().count(),
            defaults.len(),
            "a flag without its default here"
        );
        for (flag, default) in defaults {
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(flag))
                .unwrap_or_else(|| panic!("no --{flag}"));
            let help = arg.get_help().unwrap().to_string();
            assert!(
                help.trim_end_matches('.')
                    .ends_with(&format!("[default: {default}]")),
                "--{flag}: `{help}` should end with [default: {default}]."
            );
        }
    }

    #[test]
    fn flags_win_over_the_file_and_zero_is_refused() {
        let flags = LimitFlags {
            max_deliver: Some(2),
            ..LimitFlags::default()
        };
        let file: LimitFlags =
            serde_json::from_str(r#"{"max_deliver": 9, "max_hops": 3}"#).unwrap();
        let both = flags.or(file);
        let mut cfg = BusConfig::new("/tmp/x");
        both.apply(&mut cfg).unwrap();
        assert_eq!(cfg.limits.max_deliver, 2);
        assert_eq!(cfg.runtime.max_hops, 3);
        let zero = LimitFlags {
            max_inflight_per_agent: Some(0),
            ..LimitFlags::default()
        };
        assert!(zero
            .apply(&mut cfg)
            .unwrap_err()
            .contains("max_inflight_per_agent"));
    }
}
