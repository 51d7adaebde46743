//! `--cluster`: the store replicated through a NATS JetStream cluster
//! (`docs/weave/cluster.md`): the flags of `weave-bus` and `weaved`, and the keys of `weaved`'s
//! `<home>/config.toml` (`cluster = "nats://…"`, `cluster_name`, `cluster_replicas`).

use serde::Deserialize;

use crate::config::LogConfig;
use crate::BusConfig;

/// The stream every Weave store of a NATS cluster writes to (one subject per store).
pub const CLUSTER_STREAM: &str = "WEAVE";

#[derive(Debug, Default, Clone, PartialEq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFlags {
    /// NATS servers, comma-separated (`nats://10.0.0.1:4222,nats://10.0.0.2:4222`): every
    /// transaction is also stored, replicated, in JetStream before it is acknowledged, and a
    /// daemon on a fresh home with the same `--cluster` and `--cluster-name` starts with all of
    /// it. One daemon writes a store at a time [default: none, the local store only].
    #[arg(long)]
    pub cluster: Option<String>,
    /// The store's name in the cluster: letters, digits, `-`, `_` [default: weave].
    #[arg(long)]
    pub cluster_name: Option<String>,
    /// Copies JetStream keeps, 1 to 5 [default: 3 with three servers or more, else 1].
    #[arg(long)]
    pub cluster_replicas: Option<usize>,
}

impl ClusterFlags {
    /// These flags where set, else `other`'s.
    pub fn or(self, other: ClusterFlags) -> ClusterFlags {
        ClusterFlags {
            cluster: self.cluster.or(other.cluster),
            cluster_name: self.cluster_name.or(other.cluster_name),
            cluster_replicas: self.cluster_replicas.or(other.cluster_replicas),
        }
    }

    /// Sets `cfg.cluster`, or says which value is wrong.
    pub fn apply(self, cfg: &mut BusConfig) -> Result<(), String> {
        let Some(urls) = self.cluster else {
            if self.cluster_name.is_some() || self.cluster_replicas.is_some() {
                return Err("`cluster_name` and `cluster_replicas` need `--cluster`".into());
            }
            return Ok(());
        };
        let servers: Vec<&str> = urls.split(',').map(str::trim).collect();
        if let Some(bad) = servers
            .iter()
            .find(|u| !u.starts_with("nats://") || u.len() <= 7)
        {
            return Err(format!(
                "`--cluster`: `{bad}` is not a NATS server URL like nats://10.0.0.1:4222"
            ));
        }
        let name = self.cluster_name.unwrap_or_else(|| "weave".into());
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "`--cluster-name`: `{name}` must be 1 to 64 letters, digits, `-` or `_`"
            ));
        }
        let replicas = self
            .cluster_replicas
            .unwrap_or(if servers.len() >= 3 { 3 } else { 1 });
        if !(1..=5).contains(&replicas) {
            return Err(format!(
                "`--cluster-replicas`: {replicas} is not between 1 and 5"
            ));
        }
        cfg.cluster = Some(LogConfig {
            urls: servers.join(","),
            stream: CLUSTER_STREAM.into(),
            subject: name,
            replicas,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(flags: ClusterFlags) -> Result<Option<LogConfig>, String> {
        let mut cfg = BusConfig::new("/tmp/none");
        flags.apply(&mut cfg).map(|()| cfg.cluster)
    }

    #[test]
    fn cluster_flags_are_checked_and_default_sensibly() {
        assert_eq!(applied(ClusterFlags::default()).unwrap(), None);
        let three = applied(ClusterFlags {
            cluster: Some("nats://a:4222, nats://b:4222,nats://c:4222".into()),
            ..ClusterFlags::default()
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            (three.urls.as_str(), three.subject.as_str(), three.replicas),
            ("nats://a:4222,nats://b:4222,nats://c:4222", "weave", 3)
        );
        let bad = |flags: ClusterFlags| applied(flags).unwrap_err();
        assert!(bad(ClusterFlags {
            cluster: Some("10.0.0.1:4222".into()),
            ..ClusterFlags::default()
        })
        .contains("not a NATS server URL"));
        assert!(bad(ClusterFlags {
            cluster: Some("nats://a:1".into()),
            cluster_name: Some("a.b".into()),
            ..ClusterFlags::default()
        })
        .contains("letters, digits"));
        assert!(bad(ClusterFlags {
            cluster: Some("nats://a:1".into()),
            cluster_replicas: Some(7),
            ..ClusterFlags::default()
        })
        .contains("between 1 and 5"));
        assert!(bad(ClusterFlags {
            cluster_name: Some("x".into()),
            ..ClusterFlags::default()
        })
        .contains("need `--cluster`"));
    }
}
