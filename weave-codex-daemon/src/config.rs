//! `weaved`'s configuration, layered: command-line flags, then the environment (`WEAVE_HOME`,
//! `WEAVE_HTTP_ADDR`), then `<home>/config.toml`, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use weave_bus::{BusConfig, Durability};

/// Where HTTP listens unless told otherwise.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8787";

/// Keys of `<home>/config.toml`; every one optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub http_addr: Option<String>,
    pub durability: Option<String>,
    pub max_hops: Option<u32>,
    pub max_ping_pong: Option<u32>,
    pub max_line: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_queue_per_agent: Option<usize>,
    pub retain_events: Option<u64>,
    pub runtime_memory: Option<usize>,
}

/// What the flags said (unset: `None`).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub home: Option<PathBuf>,
    pub http: Option<String>,
    pub durability: Option<Durability>,
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub bus: BusConfig,
    pub http_addr: SocketAddr,
}

/// Reads `<home>/config.toml` if it exists.
pub fn read_file(home: &Path) -> Result<FileConfig, String> {
    let path = home.join("config.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
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
    if let Some(v) = file.max_hops {
        bus.runtime.max_hops = v;
    }
    if let Some(v) = file.max_ping_pong {
        bus.runtime.max_ping_pong = v;
    }
    if let Some(v) = file.max_line {
        bus.limits.max_line = v;
    }
    if let Some(v) = file.max_connections {
        bus.limits.max_connections = v;
    }
    if let Some(v) = file.max_queue_per_agent {
        bus.limits.max_queue_per_agent = v;
    }
    if let Some(v) = file.retain_events {
        bus.limits.retain_events = v;
    }
    if let Some(v) = file.runtime_memory {
        bus.runtime.memory_budget = v;
    }
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
    }
}
