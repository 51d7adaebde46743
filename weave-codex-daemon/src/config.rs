//! `weaved`'s configuration, layered: command-line flags, then the environment (`WEAVE_HOME`,
//! `WEAVE_HTTP_ADDR`), then `<home>/config.toml`, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use weave_bus::{BusConfig, ClusterFlags, Durability, LimitFlags};

/// Where HTTP listens unless told otherwise.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8787";

/// Keys of `<home>/config.toml`; every one optional. Besides `http_addr` and `durability`,
/// every limit of the bus is a key named like its flag (`max_queue_per_agent = 500`), and so
/// is every cluster setting (`cluster = "nats://…"`, `cluster_name`, `cluster_replicas`).
#[derive(Debug, Default)]
pub struct FileConfig {
    pub http_addr: Option<String>,
    pub durability: Option<String>,
    pub limits: LimitFlags,
    pub cluster: ClusterFlags,
}

/// What the flags said (unset: `None`).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub home: Option<PathBuf>,
    pub http: Option<String>,
    pub durability: Option<Durability>,
    pub new_store: bool,
    pub limits: LimitFlags,
    pub cluster: ClusterFlags,
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub bus: BusConfig,
    pub http_addr: SocketAddr,
}

/// Reads `<home>/config.toml` if it exists; an unknown key or a value of the wrong type is an
/// error naming the file and the key.
pub fn read_file(home: &Path) -> Result<FileConfig, String> {
    let path = home.join("config.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let bad = |e: String| format!("{}: {e}", path.display());
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut text_key = |key: &str| match table.remove(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(bad(format!(
            "`{key}` must be a string, not {}",
            other.type_str()
        ))),
    };
    let http_addr = text_key("http_addr")?;
    let durability = text_key("durability")?;
    let mut cluster = toml::Table::new();
    for key in ["cluster", "cluster_name", "cluster_replicas"] {
        if let Some(value) = table.remove(key) {
            cluster.insert(key.to_owned(), value);
        }
    }
    let cluster = ClusterFlags::deserialize(cluster).map_err(|e| bad(e.to_string()))?;
    let limits = LimitFlags::deserialize(table).map_err(|e| bad(e.to_string()))?;
    Ok(FileConfig {
        http_addr,
        durability,
        limits,
        cluster,
    })
}

/// Layers flags, environment, file and defaults.
pub fn resolve(flags: &Flags) -> Result<DaemonConfig, String> {
    let home = weave_bus::home::resolve_home(flags.home.as_deref()).map_err(|e| e.to_string())?;
    let file = read_file(&home)?;
    let env_http = std::env::var("WEAVE_HTTP_ADDR")
        .ok()
        .filter(|v| !v.is_empty());
    let http = flags
        .http
        .clone()
        .or(env_http)
        .or(file.http_addr.clone())
        .unwrap_or_else(|| DEFAULT_HTTP_ADDR.to_owned());
    let http_addr = http
        .parse()
        .map_err(|_| format!("`{http}` is not an address like 127.0.0.1:8787"))?;
    let mut bus = BusConfig::new(home);
    bus.durability = match (flags.durability, &file.durability) {
        (Some(d), _) => d,
        (None, Some(d)) => d.parse()?,
        (None, None) => Durability::default(),
    };
    bus.new_store = flags.new_store;
    flags.cluster.clone().or(file.cluster).apply(&mut bus)?;
    flags.limits.clone().or(file.limits).apply(&mut bus)?;
    Ok(DaemonConfig { bus, http_addr })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flags, then the environment, then `<home>/config.toml`, then the default.
    #[test]
    fn http_address_layers_flag_env_file_default() {
        let tmp = tempfile::TempDir::new().unwrap();
        let home = tmp.path().to_owned();
        let flags = |http: Option<&str>| Flags {
            home: Some(home.clone()),
            http: http.map(str::to_owned),
            durability: None,
            new_store: false,
            limits: LimitFlags::default(),
            cluster: ClusterFlags::default(),
        };
        std::env::remove_var("WEAVE_HTTP_ADDR");
        assert_eq!(
            resolve(&flags(None)).unwrap().http_addr.to_string(),
            DEFAULT_HTTP_ADDR
        );
        std::fs::write(
            home.join("config.toml"),
            "http_addr = \"127.0.0.1:7001\"\ndurability = \"fsync\"\nmax_hops = 9\nruntime_memory = 5000\n",
        )
        .unwrap();
        let from_file = resolve(&flags(None)).unwrap();
        assert_eq!(from_file.http_addr.to_string(), "127.0.0.1:7001");
        assert_eq!(from_file.bus.durability, Durability::Fsync);
        assert_eq!(from_file.bus.runtime.max_hops, 9);
        assert_eq!(from_file.bus.runtime.memory_budget, 5000);
        std::env::set_var("WEAVE_HTTP_ADDR", "127.0.0.1:7002");
        assert_eq!(
            resolve(&flags(None)).unwrap().http_addr.to_string(),
            "127.0.0.1:7002"
        );
        assert_eq!(
            resolve(&flags(Some("127.0.0.1:7003")))
                .unwrap()
                .http_addr
                .to_string(),
            "127.0.0.1:7003"
        );
        std::env::remove_var("WEAVE_HTTP_ADDR");
        std::fs::write(home.join("config.toml"), "bogus = 1\n").unwrap();
        assert!(
            resolve(&flags(None)).unwrap_err().contains("bogus"),
            "unknown keys are refused"
        );
        std::fs::write(home.join("config.toml"), "max_inflight_per_agent = \"3\"\n").unwrap();
        assert!(
            resolve(&flags(None))
                .unwrap_err()
                .contains("max_inflight_per_agent")
                || resolve(&flags(None)).unwrap_err().contains("string"),
            "a value of the wrong type is refused"
        );
        std::fs::write(
            home.join("config.toml"),
            "max_inflight_per_agent = 3\nmax_deliver = 2\nidempotency_ttl_secs = 60\n",
        )
        .unwrap();
        let limited = resolve(&flags(None)).unwrap();
        assert_eq!(limited.bus.limits.max_inflight_per_agent, 3);
        assert_eq!(limited.bus.limits.max_deliver, 2);
        assert_eq!(limited.bus.limits.idempotency_ttl.as_secs(), 60);
    }

    /// The cluster keys of `config.toml`, a flag winning over them, and a bad value refused
    /// naming it.
    #[test]
    fn cluster_settings_come_from_flags_or_the_file() {
        let tmp = tempfile::TempDir::new().unwrap();
        let home = tmp.path().to_owned();
        let flags = |cluster: Option<&str>| Flags {
            home: Some(home.clone()),
            http: None,
            durability: None,
            new_store: false,
            limits: LimitFlags::default(),
            cluster: ClusterFlags {
                cluster: cluster.map(str::to_owned),
                ..ClusterFlags::default()
            },
        };
        assert_eq!(resolve(&flags(None)).unwrap().bus.cluster, None);
        std::fs::write(
            home.join("config.toml"),
            "cluster = \"nats://a:4222,nats://b:4222\"\ncluster_name = \"team\"\nmax_deliver = 2\n",
        )
        .unwrap();
        let from_file = resolve(&flags(None)).unwrap().bus.cluster.unwrap();
        assert_eq!(
            (
                from_file.urls.as_str(),
                from_file.subject.as_str(),
                from_file.replicas
            ),
            ("nats://a:4222,nats://b:4222", "team", 1)
        );
        let flag_wins = resolve(&flags(Some("nats://c:4222")))
            .unwrap()
            .bus
            .cluster
            .unwrap();
        assert_eq!(
            (flag_wins.urls.as_str(), flag_wins.subject.as_str()),
            ("nats://c:4222", "team")
        );
        std::fs::write(home.join("config.toml"), "cluster_replicas = \"3\"\n").unwrap();
        assert!(resolve(&flags(None)).unwrap_err().contains("config.toml"));
        std::fs::write(home.join("config.toml"), "cluster = \"10.0.0.1:4222\"\n").unwrap();
        assert!(resolve(&flags(None))
            .unwrap_err()
            .contains("not a NATS server URL"));
    }
}
