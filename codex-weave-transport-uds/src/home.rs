//! Where a Weave home is, for every program that needs one: the bus that owns it and every
//! client that connects to its socket (`weavectl` included, which so needs nothing of the bus).

use std::path::{Path, PathBuf};

/// Why no home can be named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeDirError {
    /// `$WEAVE_HOME` is set but empty.
    EmptyEnv,
    /// Neither a flag, `$WEAVE_HOME` nor a home directory is available.
    NoHomeDir,
}

impl std::fmt::Display for HomeDirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EmptyEnv => f.write_str("WEAVE_HOME is set but empty"),
            Self::NoHomeDir => f.write_str("no home directory: pass --home or set WEAVE_HOME"),
        }
    }
}

impl std::error::Error for HomeDirError {}

/// Resolves the home: the flag, else `$WEAVE_HOME` (a leading `~` expands; set-but-empty is an
/// error), else `~/.weave`.
pub fn resolve_home(flag: Option<&Path>) -> Result<PathBuf, HomeDirError> {
    if let Some(p) = flag {
        return Ok(expand_tilde(p));
    }
    match std::env::var_os("WEAVE_HOME") {
        Some(v) if v.is_empty() => Err(HomeDirError::EmptyEnv),
        Some(v) => Ok(expand_tilde(Path::new(&v))),
        None => dirs::home_dir()
            .map(|h| h.join(".weave"))
            .ok_or(HomeDirError::NoHomeDir),
    }
}

fn expand_tilde(p: &Path) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => dirs::home_dir()
            .map(|h| h.join(rest))
            .unwrap_or_else(|| p.to_owned()),
        Err(_) => p.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_wins_and_a_tilde_expands() {
        assert_eq!(
            resolve_home(Some(Path::new("/tmp/h"))).unwrap(),
            PathBuf::from("/tmp/h")
        );
        if let Some(home) = dirs::home_dir() {
            assert_eq!(
                resolve_home(Some(Path::new("~/w"))).unwrap(),
                home.join("w")
            );
        }
    }
}
